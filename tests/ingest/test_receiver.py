"""The ingest's MQTT subscriber against a real Mosquitto, on MQTT 5 and 3.1.1."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.mqtt import BrokerAddress
from ingest import metrics
from ingest.mqtt_packets import Publish
from ingest.receiver import Receiver
from tests.processes import MOSQUITTO, Mosquitto
from tests.support import eventually

needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto")


class Inbox:
    """What a receiver delivered, with the connection (session) each message came on."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, Publish]] = []
        self._lock = threading.Lock()

    def __call__(self, session: int, publishes: list[Publish]) -> None:
        with self._lock:
            self.messages += [(session, p) for p in publishes]

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p.payload for _, p in self.messages]

    def take(self) -> list[tuple[int, Publish]]:
        with self._lock:
            taken, self.messages = self.messages, []
            return taken


MakeReceiver = Callable[..., tuple[Receiver, Inbox]]


@pytest.fixture(params=["5", "3.1.1"])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_receiver(topic_prefix: str, protocol: str) -> Iterator[MakeReceiver]:
    """Start receivers subscribed to the test's topics; all are stopped when the test ends."""
    started: list[Receiver] = []

    def start(url: str, *, client_id: str | None = None, **options: Any) -> tuple[Receiver, Inbox]:
        inbox = Inbox()
        receiver = Receiver(
            BrokerAddress.parse(f"{url}?protocol={protocol}"),
            client_id=client_id or f"receiver-{uuid.uuid4().hex[:12]}",
            subscriptions=[(f"{topic_prefix}/#", 1)],
            on_messages=inbox,
            **options,
        )
        receiver.start()
        started.append(receiver)
        assert receiver.wait_ready(10)
        return receiver, inbox

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if MOSQUITTO is None:
        pytest.skip("needs mosquitto")
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def publish_all(url: str, topic_prefix: str, payloads: list[bytes], *, qos: int = 1) -> None:
    address = BrokerAddress.parse(url)
    client = address.client(client_id=f"gw-{uuid.uuid4().hex[:10]}", persistent=False)
    client.connect(address.host, address.port)
    client.loop_start()
    infos = [client.publish(f"{topic_prefix}/devices/d/readings", p, qos=qos) for p in payloads]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def numbered(n: int) -> list[bytes]:
    return [f"message {i}".encode() for i in range(n)]


def test_published_messages_arrive_in_order_with_topic_qos_and_packet_id(
    make_receiver: MakeReceiver, mqtt_server_url: str, topic_prefix: str
) -> None:
    receiver, inbox = make_receiver(mqtt_server_url)
    publish_all(mqtt_server_url, topic_prefix, numbered(300))
    arrived: list[Publish] = []

    def acknowledged_all() -> bool:
        """Acknowledge as they come: on 3.1.1 the broker's in-flight limit is 20."""
        for session, message in inbox.take():
            receiver.acknowledge(session, [message.packet_id])
            arrived.append(message)
        return len(arrived) == 300

    eventually(acknowledged_all)
    assert [m.payload for m in arrived] == numbered(300)
    assert {m.topic for m in arrived} == {f"{topic_prefix}/devices/d/readings"}
    assert {(m.qos, m.dup) for m in arrived} == {(1, False)}
    assert all(m.packet_id for m in arrived)
    assert receiver.ready


def test_qos_0_messages_arrive_without_a_packet_id(
    make_receiver: MakeReceiver, mqtt_server_url: str, topic_prefix: str
) -> None:
    _, inbox = make_receiver(mqtt_server_url)
    publish_all(mqtt_server_url, topic_prefix, numbered(5), qos=0)
    eventually(lambda: len(inbox.payloads()) == 5)
    assert {(p.qos, p.packet_id) for _, p in inbox.messages} == {(0, 0)}


def test_what_was_not_acknowledged_comes_back_to_the_next_connection_marked_dup(
    make_receiver: MakeReceiver, mqtt_server_url: str, topic_prefix: str
) -> None:
    client_id = f"receiver-{uuid.uuid4().hex[:12]}"
    first, inbox = make_receiver(mqtt_server_url, client_id=client_id)
    publish_all(mqtt_server_url, topic_prefix, numbered(20))
    eventually(lambda: len(inbox.payloads()) == 20)
    first.acknowledge(inbox.messages[0][0], [p.packet_id for _, p in inbox.messages[:12]])
    first.stop()

    _, again = make_receiver(mqtt_server_url, client_id=client_id)
    eventually(lambda: len(again.payloads()) == 8)
    time.sleep(0.3)
    assert again.payloads() == numbered(20)[12:]
    assert all(p.dup for _, p in again.messages)


@needs_mosquitto
def test_acknowledgements_for_an_earlier_connection_are_never_sent_on_a_new_one(
    make_receiver: MakeReceiver, own_broker: Mosquitto, topic_prefix: str
) -> None:
    client_id = f"receiver-{uuid.uuid4().hex[:12]}"
    receiver, inbox = make_receiver(own_broker.url(), client_id=client_id)
    publish_all(own_broker.url(), topic_prefix, numbered(10))
    eventually(lambda: len(inbox.payloads()) == 10)
    before = inbox.take()

    own_broker.restart()
    eventually(lambda: len(inbox.payloads()) == 10, timeout=20)
    redelivered = inbox.take()
    assert redelivered[0][0] > before[0][0], "a new connection has a new session number"
    # The redelivered messages reuse the packet ids, so a stale ack would acknowledge them.
    assert {p.packet_id for _, p in redelivered} == {p.packet_id for _, p in before}
    receiver.acknowledge(before[0][0], [p.packet_id for _, p in before])
    time.sleep(0.3)
    receiver.stop()

    _, again = make_receiver(own_broker.url(), client_id=client_id)
    eventually(lambda: len(again.payloads()) == 10)
    assert again.payloads() == numbered(10)


def test_a_receiver_that_stops_reading_keeps_pinging_and_stays_connected(
    make_receiver: MakeReceiver, mqtt_server_url: str, topic_prefix: str
) -> None:
    reading = threading.Event()
    disconnects = metrics.RECONNECTS._value.get()
    receiver, inbox = make_receiver(
        mqtt_server_url, may_read=reading.is_set, keepalive=1, receive_maximum=10
    )
    publish_all(mqtt_server_url, topic_prefix, numbered(50), qos=0)
    time.sleep(3)  # twice the broker's patience (1.5 keepalives)
    assert inbox.payloads() == []
    assert receiver.ready

    reading.set()
    eventually(lambda: len(inbox.payloads()) == 50)
    assert metrics.RECONNECTS._value.get() == disconnects
