"""Receive and acknowledge only: µs of CPU per message, paho-mqtt against ingest.receiver.

Run by hand (not a test): ``.venv/bin/python -m bench.receive [--messages 50000]``. It starts
its own Mosquitto, queues the messages (QoS 1, ~150-byte readings) for a persistent session,
then drains that backlog with each client in turn: messages go to an inbox, a second thread
takes up to 1,000 at a time and acknowledges them, as the ingest's writer does after a commit.
Nothing is decoded or stored. Printed: this process's CPU time and the wall time per message.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

from core.mqtt import BrokerAddress
from ingest.mqtt_packets import Publish
from ingest.receiver import Receiver
from tests.processes import Mosquitto

RECEIVE_MAXIMUM = 4000
BATCH = 1000


def queue_backlog(address: BrokerAddress, topic: str, n: int) -> None:
    client = address.client(client_id=f"bench-gw-{uuid.uuid4().hex[:8]}", persistent=False)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port)
    client.loop_start()
    infos = []
    for i in range(n):
        body = (
            f'{{"msg_id":"{uuid.uuid4()}","measured_at":"2026-11-01T08:{i // 60 % 60:02d}:00Z",'
            f'"readings":[{{"code":"spo2","value":{90 + i % 9},"unit":"%"}}]}}'
        )
        infos.append(client.publish(topic, body, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def acknowledge_until(n: int, inbox: deque[int], ack: Callable[[list[int]], None]) -> None:
    acknowledged = 0
    while acknowledged < n:
        take = min(BATCH, len(inbox))
        if not take:
            time.sleep(0.0005)
            continue
        ack([inbox.popleft() for _ in range(take)])
        acknowledged += take


def drain_with_paho(address: BrokerAddress, client_id: str, topic: str, n: int) -> None:
    inbox: deque[int] = deque()
    client = address.client(client_id=client_id, persistent=True, manual_ack=True)
    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda c, u, message: inbox.append(message.mid)
    client.connect(
        address.host,
        address.port,
        **address.connect_options(persistent=True, receive_maximum=RECEIVE_MAXIMUM),
    )
    client.loop_start()
    assert subscribed.wait(10)

    def ack(mids: list[int]) -> None:
        for mid in mids:
            client.ack(mid, 1)

    acknowledge_until(n, inbox, ack)
    client.disconnect()
    client.loop_stop()


def drain_with_receiver(address: BrokerAddress, client_id: str, topic: str, n: int) -> None:
    inbox: deque[int] = deque()
    sessions: list[int] = []

    def on_messages(session: int, publishes: list[Publish]) -> None:
        sessions.append(session)
        inbox.extend([p.packet_id for p in publishes])

    receiver = Receiver(
        address,
        client_id=client_id,
        subscriptions=[(topic, 1)],
        on_messages=on_messages,
        receive_maximum=RECEIVE_MAXIMUM,
    )
    receiver.start()
    assert receiver.wait_ready(10)
    acknowledge_until(n, inbox, lambda ids: receiver.acknowledge(sessions[-1], ids))
    receiver.stop()


def measure(
    name: str, drain: Callable[..., None], address: BrokerAddress, n: int
) -> tuple[float, float]:
    client_id = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    topic = f"bench/{client_id}/readings"
    drain(address, client_id, topic, 0)  # the persistent session, subscribed, before the backlog
    queue_backlog(address, topic, n)
    time.sleep(0.5)
    cpu, wall = time.process_time(), time.perf_counter()
    drain(address, client_id, topic, n)
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        broker = Mosquitto(
            Path(workdir),
            persistence=False,
            extra=("set_tcp_nodelay true", "max_inflight_messages 4000"),
        )
        broker.start()
        try:
            address = BrokerAddress.parse(f"{broker.url()}?protocol={args.protocol}")
            for name, drain in (("paho", drain_with_paho), ("receiver", drain_with_receiver)):
                for _ in range(args.rounds):
                    cpu, wall = measure(name, drain, address, args.messages)
                    print(f"{name:9} {cpu:6.2f} µs CPU/message  {wall:6.2f} µs wall/message")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
