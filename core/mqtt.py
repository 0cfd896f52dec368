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
        """A paho client for this broker; connect it with `connect_options`.

        The ingest's hot path has its own subscriber (`ingest.receiver`); paho serves the rest:
        publishers, the simulator, tools.
        """
        client = paho.Client(
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
