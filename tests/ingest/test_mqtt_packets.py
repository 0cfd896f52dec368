"""The subscriber's packet codec: whatever the broker sends, the parser yields packets or refuses.

The broker side is encoded here, independently of the module under test, so a round trip checks
the parser against the specification's layout rather than against itself.
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.mqtt import SESSION_EXPIRY_SECONDS
from ingest import mqtt_packets
from ingest.mqtt_packets import (
    ConnAck,
    Disconnect,
    Packet,
    Parser,
    PingResp,
    ProtocolError,
    Publish,
    SubAck,
)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        out.append(byte + (128 if value else 0))
        if not value:
            return bytes(out)


def string(raw: bytes) -> bytes:
    return struct.pack(">H", len(raw)) + raw


def frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def encode(packet: Packet, *, mqtt5: bool, properties: bytes = b"") -> bytes:
    """What a broker would send; `properties` is a raw MQTT 5 property list to carry."""
    props = varint(len(properties)) + properties if mqtt5 else b""
    if isinstance(packet, Publish):
        first = 0x30 | (0x08 if packet.dup else 0) | packet.qos << 1
        packet_id = struct.pack(">H", packet.packet_id) if packet.qos else b""
        return frame(first, string(packet.topic.encode()) + packet_id + props + packet.payload)
    if isinstance(packet, ConnAck):
        return frame(0x20, bytes([packet.session_present, packet.reason]) + props)
    if isinstance(packet, SubAck):
        return frame(0x90, struct.pack(">H", packet.packet_id) + props + packet.reasons)
    if isinstance(packet, Disconnect):
        return frame(0xE0, bytes([packet.reason]) + props)
    return b"\xd0\x00"


publishes = st.builds(
    lambda topic, payload, qos, packet_id, dup: Publish(
        topic, payload, qos, packet_id if qos else 0, dup
    ),
    topic=st.text(min_size=1, max_size=40),
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1]),
    packet_id=st.integers(1, 0xFFFF),
    dup=st.booleans(),
)
connacks = st.builds(
    ConnAck, session_present=st.booleans(), reason=st.sampled_from([0, 0x86, 0x87])
)
subacks = st.builds(
    SubAck,
    packet_id=st.integers(1, 0xFFFF),
    reasons=st.lists(st.sampled_from([0, 1, 0x80, 0x87]), min_size=1, max_size=5).map(bytes),
)
packets = st.one_of(publishes, connacks, subacks, st.just(PingResp()))
properties = st.sampled_from(
    [
        b"",
        b"\x01\x01",  # payload format indicator
        b"\x02\x00\x00\x00\x3c",  # message expiry
        b"\x03" + string(b"application/json"),  # content type
        b"\x26" + string(b"key") + string(b"value"),  # user property
        b"\x0b\x81\x01",  # subscription identifier 129
    ]
)


def parse_in_pieces(data: bytes, cut: list[int], *, mqtt5: bool) -> list[Packet]:
    parser = Parser(mqtt5=mqtt5)
    parsed: list[Packet] = []
    for start, end in zip([0, *cut], [*cut, len(data)], strict=True):
        parsed += parser.feed(data[start:end])
    return parsed


@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_yield_packets_or_a_protocol_error_and_nothing_else(
    data: bytes, mqtt5: bool
) -> None:
    parser = Parser(mqtt5=mqtt5)
    with contextlib.suppress(ProtocolError):
        for offset in range(0, len(data), 7):
            parser.feed(data[offset : offset + 7])


@given(st.lists(packets, min_size=1, max_size=3), st.data(), st.booleans())
def test_corrupted_packets_yield_packets_or_a_protocol_error_and_nothing_else(
    sent: list[Packet], data: st.DataObject, mqtt5: bool
) -> None:
    raw = bytearray(b"".join(encode(p, mqtt5=mqtt5) for p in sent))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ProtocolError):
        Parser(mqtt5=mqtt5).feed(bytes(raw))


@given(st.lists(packets, min_size=1, max_size=5), properties, st.booleans())
def test_broker_packets_round_trip_whatever_the_properties(
    sent: list[Packet], props: bytes, mqtt5: bool
) -> None:
    data = b"".join(encode(p, mqtt5=mqtt5, properties=props) for p in sent)
    assert Parser(mqtt5=mqtt5).feed(data) == sent


@given(st.lists(packets, min_size=1, max_size=3), st.booleans())
def test_packets_split_at_every_byte_boundary_parse_the_same(
    sent: list[Packet], mqtt5: bool
) -> None:
    data = b"".join(encode(p, mqtt5=mqtt5) for p in sent)
    whole = Parser(mqtt5=mqtt5).feed(data)
    for cut in range(1, len(data)):
        assert parse_in_pieces(data, [cut], mqtt5=mqtt5) == whole
    assert parse_in_pieces(data, list(range(1, len(data))), mqtt5=mqtt5) == whole


def test_a_large_payload_in_many_chunks_is_returned_once_it_is_whole() -> None:
    payload = bytes(range(256)) * 4000
    data = encode(Publish("t/big", payload, 1, 7, False), mqtt5=True)
    parser = Parser(mqtt5=True)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert all(parser.feed(chunk) == [] for chunk in chunks[:-1])
    assert parser.feed(chunks[-1]) == [Publish("t/big", payload, 1, 7, False)]


def test_the_server_keep_alive_of_an_mqtt5_connack_is_read() -> None:
    data = encode(ConnAck(True, 0), mqtt5=True, properties=b"\x13\x00\x0f\x21\x00\x14")
    assert Parser(mqtt5=True).feed(data) == [ConnAck(True, 0, server_keep_alive=15)]


def test_a_broker_disconnect_carries_its_reason_on_mqtt5() -> None:
    assert Parser(mqtt5=True).feed(encode(Disconnect(0x8B), mqtt5=True)) == [Disconnect(0x8B)]


@pytest.mark.parametrize(
    ("data", "mqtt5"),
    [
        pytest.param(b"\x34\x05\x00\x01t\x00\x01", False, id="QoS 2 PUBLISH"),
        pytest.param(b"\x32\x05\x00\x01t\x00\x00", False, id="QoS 1 with packet id 0"),
        pytest.param(b"\x30\x03\x00\x00x", True, id="empty topic (an alias we never allowed)"),
        pytest.param(b"\x30\x04\x00\x02\xff\xfe", False, id="topic not UTF-8"),
        pytest.param(b"\x30\x05\x00\x01t\x09x", True, id="properties past the end"),
        pytest.param(b"\xe0\x00", False, id="DISCONNECT from a 3.1.1 broker"),
        pytest.param(b"\x40\x02\x00\x01", True, id="PUBACK to a subscriber"),
        pytest.param(b"\x30\xff\xff\xff\xff\x01", False, id="remaining length of five bytes"),
        pytest.param(b"\x20\x03\x00\x00\x05", True, id="CONNACK properties past the end"),
        pytest.param(b"\x20\x04\x00\x00\x02\x7f\x00", True, id="unknown property"),
        pytest.param(b"\x90\x03\x00\x01\x00", True, id="SUBACK without reason codes"),
    ],
)
def test_malformed_or_unexpected_packets_are_protocol_errors(data: bytes, mqtt5: bool) -> None:
    with pytest.raises(ProtocolError):
        Parser(mqtt5=mqtt5).feed(data)


def test_connect_asks_for_a_persistent_session_and_flow_control_on_mqtt5() -> None:
    packet = mqtt_packets.connect(
        client_id="ingest-1",
        mqtt5=True,
        keepalive=30,
        persistent=True,
        session_expiry=SESSION_EXPIRY_SECONDS,
        receive_maximum=4000,
        username="u",
        password="p",
    )
    properties = b"\x21" + struct.pack(">H", 4000) + b"\x11" + struct.pack(">I", 604_800)
    body = (
        string(b"MQTT")
        + bytes([5, 0xC0])
        + struct.pack(">H", 30)
        + varint(len(properties))
        + properties
        + string(b"ingest-1")
        + string(b"u")
        + string(b"p")
    )
    assert packet == frame(0x10, body)


def test_connect_on_3_1_1_turns_clean_session_off_and_has_no_properties() -> None:
    packet = mqtt_packets.connect(
        client_id="c",
        mqtt5=False,
        keepalive=10,
        persistent=True,
        session_expiry=SESSION_EXPIRY_SECONDS,
        receive_maximum=4000,
    )
    assert packet == frame(0x10, string(b"MQTT") + bytes([4, 0]) + b"\x00\x0a" + string(b"c"))


def test_subscribe_and_pubacks_are_laid_out_as_the_specification_says() -> None:
    assert mqtt_packets.subscribe(9, [("a/+", 1), ("b", 1)], mqtt5=True) == frame(
        0x82, b"\x00\x09\x00" + string(b"a/+") + b"\x01" + string(b"b") + b"\x01"
    )
    assert mqtt_packets.pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
