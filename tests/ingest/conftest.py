"""A running ingest worker and a device-side publisher, both on the real test broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import paho.mqtt.client as paho
import pytest
from psycopg_pool import ConnectionPool

from alerts.engine import engine_hook
from core.clock import SystemClock
from core.mqtt import BrokerAddress
from ingest.limits import Limits
from ingest.service import IngestConfig, MqttIngest
from ingest.store import AfterStore

Publish = Callable[..., None]

TEST_LIMITS = Limits(
    max_payload_bytes=16_384,
    max_readings=20,
    max_future=timedelta(minutes=5),
    max_age=timedelta(days=30),
    device_rate=1.0,
    device_burst=50,
)


def make_ingest(
    pool: ConnectionPool,
    broker_url: str,
    topic_prefix: str,
    *,
    after_store: Sequence[AfterStore] | None = None,
    keepalive_seconds: int = 30,
    queue_size: int = 1000,
) -> MqttIngest:
    """An in-process worker with its own client id, the test limits and, unless `after_store`
    is given (e.g. to hold the writer), the rules."""
    clock = SystemClock()
    return MqttIngest(
        broker=BrokerAddress.parse(broker_url),
        pool=pool,
        config=IngestConfig(
            topic_prefix=topic_prefix,
            client_id=f"ingest-{uuid.uuid4().hex[:12]}",
            batch_size=100,
            flush_seconds=0.02,
            queue_size=queue_size,
            limits=TEST_LIMITS,
            keepalive_seconds=keepalive_seconds,
        ),
        clock=clock,
        after_store=[engine_hook(clock=clock)] if after_store is None else after_store,
    )


@pytest.fixture
def ingest(pool: ConnectionPool, mqtt_server_url: str, topic_prefix: str) -> Iterator[MqttIngest]:
    worker = make_ingest(pool, mqtt_server_url, topic_prefix)
    worker.start()
    assert worker.wait_connected(10)
    yield worker
    worker.stop()


@pytest.fixture
def device_client(mqtt_server_url: str) -> Iterator[paho.Client]:
    address = BrokerAddress.parse(mqtt_server_url)
    client = address.client(client_id=f"gateway-{uuid.uuid4().hex[:12]}", persistent=False)
    client.connect(address.host, address.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def publish(device_client: paho.Client, topic_prefix: str) -> Publish:
    """Publish as a device would (QoS 1), waiting until the broker has the message."""

    def send(device_id: str, payload: bytes | dict[str, Any], *, kind: str = "readings") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = device_client.publish(f"{topic_prefix}/devices/{device_id}/{kind}", body, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    return send
