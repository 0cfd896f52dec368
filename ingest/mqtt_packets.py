"""The MQTT packets a subscriber needs (3.1.1 and 5), as bytes in and bytes out: no sockets here.

Only what the ingest's receive path uses is covered: it sends CONNECT, SUBSCRIBE, PUBACK,
PINGREQ and DISCONNECT, and reads CONNACK, SUBACK, PUBLISH (QoS 0 and 1), PINGRESP and a
broker's DISCONNECT. Anything else from the broker, or anything malformed, is a
`ProtocolError`: the caller drops the connection and starts again, as MQTT prescribes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"
"""Normal disconnection; the same two bytes in 3.1.1 and 5 (reason code 0 may be left out)."""

_PUBLISH = 3
_SESSION_EXPIRY, _RECEIVE_MAXIMUM, _SERVER_KEEP_ALIVE = 0x11, 0x21, 0x13
_MAX_REMAINING_LENGTH = 268_435_455
_PUBACK = struct.Struct(">BBH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class ProtocolError(Exception):
    """The broker sent something MQTT does not allow here; the connection cannot go on."""


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int
    """0 for QoS 0, which is never acknowledged."""
    dup: bool


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    reason: int
    """0 is success; 3.1.1 return codes and MQTT 5 reason codes alike."""
    server_keep_alive: int | None = None
    """MQTT 5: the keepalive the broker imposes instead of ours."""


@dataclass(frozen=True, slots=True)
class SubAck:
    packet_id: int
    reasons: bytes
    """One per subscription: the granted QoS, or a failure code (0x80 and above)."""


@dataclass(frozen=True, slots=True)
class PingResp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: int


Packet = Publish | ConnAck | SubAck | PingResp | Disconnect


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError("an MQTT string holds at most 65535 bytes")
    return _U16.pack(len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _varint(len(body)) + body


def connect(
    *,
    client_id: str,
    mqtt5: bool,
    keepalive: int,
    persistent: bool,
    session_expiry: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT for a subscriber whose session outlives the connection when `persistent`.

    MQTT 5 carries clean start off with a session expiry, and Receive Maximum (the broker's
    limit on unacknowledged messages in flight to us); 3.1.1 says the same with clean session
    off and leaves the in-flight limit to the broker.
    """
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    if not persistent:
        flags |= 0x02
    body = _string("MQTT") + bytes([5 if mqtt5 else 4, flags]) + _U16.pack(keepalive)
    if mqtt5:
        properties = bytes([_RECEIVE_MAXIMUM]) + _U16.pack(receive_maximum)
        if persistent:
            properties += bytes([_SESSION_EXPIRY]) + _U32.pack(session_expiry)
        body += _varint(len(properties)) + properties
    body += _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(0x10, body)


def subscribe(packet_id: int, filters: Sequence[tuple[str, int]], *, mqtt5: bool) -> bytes:
    """SUBSCRIBE to each (filter, QoS); on MQTT 5 the options byte is the QoS alone."""
    body = _U16.pack(packet_id) + (b"\x00" if mqtt5 else b"")
    for topic_filter, qos in filters:
        body += _string(topic_filter) + bytes([qos])
    return _packet(0x82, body)


def pubacks(packet_ids: Sequence[int]) -> bytes:
    """PUBACK for each packet id, ready for one send (success needs no reason code on MQTT 5)."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, packet_id) for packet_id in packet_ids])


class Parser:
    """Turns the bytes of a connection, in chunks of any size, into whole packets."""

    def __init__(self, *, mqtt5: bool) -> None:
        self._mqtt5 = mqtt5
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._needed = 0
        """Bytes the first incomplete packet needs: a large payload arriving in many chunks is
        joined once, when it is whole, not once per chunk."""

    def feed(self, data: bytes) -> list[Packet]:
        """Every packet completed by `data`, in order; a partial packet waits for more."""
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size < self._needed:
            return []
        buffer = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        packets: list[Packet] = []
        end = len(buffer)
        position = 0
        try:
            while True:
                header = _header(buffer, position, end)
                if header is None:
                    self._needed = 0
                    break
                start, length = header
                if end - start < length:
                    self._needed = start - position + length
                    break
                first = buffer[position]
                position = start + length
                if first >> 4 == _PUBLISH:
                    packets.append(self._publish(buffer, first, start, position))
                else:
                    packets.append(self._packet(first, buffer[start:position]))
        except (IndexError, UnicodeDecodeError) as error:
            raise ProtocolError(f"malformed packet: {error}") from error
        rest = buffer[position:] if position else buffer
        self._pending = [rest] if rest else []
        self._pending_size = len(rest)
        return packets

    def _packet(self, first: int, body: bytes) -> Packet:
        if first == 0xD0 and not body:
            return PingResp()
        if first == 0x20:
            return self._connack(body)
        if first == 0x90:
            return self._suback(body)
        if first == 0xE0 and self._mqtt5:
            return Disconnect(body[0] if body else 0)
        raise ProtocolError(f"unexpected packet: first byte {first:#04x}, {len(body)} bytes")

    def _publish(self, buffer: bytes, first: int, start: int, end: int) -> Publish:
        qos = (first >> 1) & 0x03
        if qos > 1:
            raise ProtocolError(f"PUBLISH with QoS {qos}; the subscriptions asked for 1")
        if end - start < 2:
            raise ProtocolError("PUBLISH too short for its topic length")
        topic_end = start + 2 + ((buffer[start] << 8) | buffer[start + 1])
        position = topic_end + 2 * qos
        if position > end:
            raise ProtocolError("PUBLISH shorter than its topic and packet id")
        if topic_end == start + 2:
            raise ProtocolError("PUBLISH without a topic (topic aliases are not enabled)")
        packet_id = (buffer[topic_end] << 8) | buffer[topic_end + 1] if qos else 0
        if qos and not packet_id:
            raise ProtocolError("QoS 1 PUBLISH with packet id 0")
        if self._mqtt5:
            position, length = _read_varint(buffer, position, end)
            position += length
            if position > end:
                raise ProtocolError("PUBLISH properties run past the packet")
        return Publish(
            buffer[start + 2 : topic_end].decode(),
            buffer[position:end],
            qos,
            packet_id,
            bool(first & 0x08),
        )

    def _connack(self, body: bytes) -> ConnAck:
        if len(body) < 2 or body[0] > 1:
            raise ProtocolError(f"malformed CONNACK {body!r}")
        keep_alive = None
        if self._mqtt5 and len(body) > 2:
            keep_alive = _properties(body, 2).get(_SERVER_KEEP_ALIVE)
        elif len(body) != 2:
            raise ProtocolError(f"malformed CONNACK {body!r}")
        return ConnAck(session_present=bool(body[0]), reason=body[1], server_keep_alive=keep_alive)

    def _suback(self, body: bytes) -> SubAck:
        position = 2
        if self._mqtt5:
            position, length = _read_varint(body, position, len(body))
            position += length
        if len(body) <= position:
            raise ProtocolError(f"SUBACK without reason codes: {body!r}")
        return SubAck(packet_id=(body[0] << 8) | body[1], reasons=body[position:])


def _header(buffer: bytes, position: int, end: int) -> tuple[int, int] | None:
    """(start of the body, its length), or None while the fixed header is incomplete."""
    index = position + 1
    length = shift = 0
    while index < end:
        byte = buffer[index]
        index += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return index, length
        shift += 7
        if shift > 21:
            raise ProtocolError("remaining length longer than four bytes")
    return None


def _read_varint(buffer: bytes, position: int, end: int) -> tuple[int, int]:
    value = 0
    for shift in (0, 7, 14, 21):
        if position >= end:
            raise ProtocolError("variable byte integer runs past the packet")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return position, value
    raise ProtocolError("variable byte integer longer than four bytes")


_BYTE, _TWO, _FOUR, _VARINT, _BINARY, _PAIR = range(6)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _BINARY, 0x08: _BINARY, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _FOUR, 0x12: _BINARY, 0x13: _TWO, 0x15: _BINARY, 0x16: _BINARY, 0x17: _BYTE,
    0x19: _BYTE, 0x1A: _BINARY, 0x1C: _BINARY, 0x1F: _BINARY, 0x21: _TWO, 0x22: _TWO,
    0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR, 0x28: _BYTE, 0x29: _BYTE,
    0x2A: _BYTE,
}  # fmt: skip
"""MQTT 5 property identifiers and how their values are encoded (strings count as binary)."""


def _properties(body: bytes, position: int) -> dict[int, int]:
    """The integer properties of an MQTT 5 property list, checking that it is well formed."""
    position, length = _read_varint(body, position, len(body))
    end = position + length
    if end > len(body):
        raise ProtocolError("properties run past the packet")
    found: dict[int, int] = {}
    while position < end:
        identifier = body[position]
        kind = _PROPERTY_TYPES.get(identifier)
        position += 1
        if kind is None:
            raise ProtocolError(f"unknown property {identifier:#04x}")
        if kind == _VARINT:
            position, found[identifier] = _read_varint(body, position, end)
            continue
        if kind in (_BYTE, _TWO, _FOUR):
            size = {_BYTE: 1, _TWO: 2, _FOUR: 4}[kind]
            found[identifier] = int.from_bytes(body[position : position + size], "big")
        else:
            size = 0
            for _ in range(2 if kind == _PAIR else 1):
                if position + size + 2 > end:
                    raise ProtocolError("property string runs past the properties")
                size += 2 + ((body[position + size] << 8) | body[position + size + 1])
        position += size
        if position > end:
            raise ProtocolError("property runs past the properties")
    return found
