"""MQTT connection settings shared by everything that talks to the broker."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
"""How long the broker keeps a persistent MQTT 5 session (and its queue) while we are away."""


class _BufferedClient(paho.Client):
    """paho-mqtt, reading the socket in large chunks and every whole packet it holds per wake-up.

    Stock paho reads a packet with several small ``recv`` calls and one ``select`` per packet,
    which is most of a busy subscriber's time. This overrides two of its internals
    (``_sock_recv`` and ``loop_read``); ``tests/ingest`` exercises them, so a paho release that
    changes them fails there, not in production.
    """

    _read_buffer: bytes = b""
    _buffered_socket: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._buffered_socket is not self._sock:  # a new connection: nothing carries over
            self._read_buffer, self._buffered_socket = b"", self._sock
        if not self._read_buffer:
            data = super()._sock_recv(_READ_CHUNK)
            if not data:
                return data
            self._read_buffer = data
        chunk = self._read_buffer[:bufsize]
        self._read_buffer = self._read_buffer[bufsize:]
        return chunk

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        """Handle packets until the socket would block; the buffer is then empty."""
        while True:
            if self._sock is None:
                return paho.MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == paho.MQTTErrorCode.MQTT_ERR_AGAIN:
                return paho.MQTTErrorCode.MQTT_ERR_SUCCESS


_READ_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    protocol: str
    """'5' (the default) or '3.1.1', for brokers that speak nothing newer."""

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Read ``mqtt://user:pass@host:port[?protocol=3.1.1]`` or ``mqtts://`` (TLS, 8883)."""
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError(f"not an mqtt:// or mqtts:// URL: {url!r}")
        protocol = parse_qs(parts.query).get("protocol", ["5"])[-1]
        if protocol not in {"5", "3.1.1"}:
            raise ValueError(f"MQTT protocol {protocol!r} is not '5' or '3.1.1'")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            protocol=protocol,
        )

    @property
    def mqtt5(self) -> bool:
        return self.protocol == "5"

    def client(self, *, client_id: str, persistent: bool, manual_ack: bool = False) -> paho.Client:
        """A paho client for this broker; connect it with `connect_options`."""
        client = _BufferedClient(
            callback_api_version=paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if self.mqtt5 else not persistent,
            protocol=paho.MQTTv5 if self.mqtt5 else paho.MQTTv311,
            manual_ack=manual_ack,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        return client

    def connect_options(
        self, *, persistent: bool, receive_maximum: int | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for paho's connect: session and flow control as the protocol allows.

        With MQTT 5 the client tells the broker how many unacknowledged messages it may send at
        once (Receive Maximum); MQTT 3.1.1 leaves that to the broker's own setting.
        """
        if not self.mqtt5:
            return {}
        properties = Properties(PacketTypes.CONNECT)
        if persistent:
            properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        return {"clean_start": not persistent, "properties": properties}
