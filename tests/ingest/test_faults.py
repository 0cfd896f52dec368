"""Crashes and restarts of every part around the ingest: nothing lost, nothing stored twice.

Each test starts the processes it breaks (its own Mosquitto, PostgreSQL cluster or ingest
workers), runs a bounded number of readings through them, and counts what arrived.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from core.migrate import migrate
from core.mqtt import BrokerAddress
from core.readings import Reading
from ingest import metrics
from tests.ingest.conftest import TEST_LIMITS, make_ingest
from tests.ingest.test_service import ingest_with, reading_message
from tests.processes import MOSQUITTO, IngestWorker, Mosquitto, PostgresCluster
from tests.support import eventually, seed_patient_with_device

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt-get install mosquitto)"),
]

DEVICES = [f"dev-{i:03d}" for i in range(20)]
START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., IngestWorker]]:
    """Start `heimvakt ingest` processes; any still running when the test ends are killed."""
    started: list[IngestWorker] = []

    def start(*, env: dict[str, str], name: str) -> IngestWorker:
        worker = IngestWorker(tmp_path, env=env, name=name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


class Publisher:
    """A gateway for many devices: QoS 1 with a persistent session, so it rides out restarts."""

    def __init__(self, url: str, prefix: str) -> None:
        self.address = BrokerAddress.parse(url)
        self.prefix = prefix
        self.client = self.address.client(client_id=f"gw-{uuid.uuid4().hex[:10]}", persistent=True)
        self.client.max_inflight_messages_set(1000)
        self.acknowledged = 0
        self.client.on_publish = self._on_publish
        self.client.connect(
            self.address.host, self.address.port, **self.address.connect_options(persistent=True)
        )
        self.client.loop_start()

    def _on_publish(self, *args: object) -> None:
        self.acknowledged += 1

    def publish(self, n: int, *, per_second: float | None = None, offset: int = 0) -> list[str]:
        """Publish readings n of (device, minute) pairs; returns their msg_ids."""
        msg_ids = []
        for i in range(offset, offset + n):
            msg_id = str(uuid.uuid4())
            device = DEVICES[i % len(DEVICES)]
            at = START + timedelta(minutes=i // len(DEVICES))
            body = (
                f'{{"msg_id":"{msg_id}","measured_at":"{at.isoformat()}",'
                f'"readings":[{{"code":"spo2","value":{90 + i % 9},"unit":"%"}}]}}'
            )
            self.client.publish(f"{self.prefix}/devices/{device}/readings", body, qos=1)
            msg_ids.append(msg_id)
            if per_second:
                time.sleep(1 / per_second)
        return msg_ids

    def wait_acknowledged(self, n: int, timeout: float = 60) -> None:
        eventually(lambda: self.acknowledged >= n, timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def seed(conn: psycopg.Connection) -> None:
    for device in DEVICES:
        seed_patient_with_device(conn, device_id=device, name=f"Patient {device}")


def stored(conn: psycopg.Connection) -> tuple[int, int]:
    """Rows in readings, and messages recorded (`ingest_messages`, written in the transaction
    that stores a message's readings; each message here carries one reading)."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM ingest_messages)"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def worker_env(database_url: str, broker: Mosquitto, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "HEIMVAKT_DATABASE_URL": database_url,
        "HEIMVAKT_MQTT_URL": broker.url(),
        "HEIMVAKT_MQTT_TOPIC_PREFIX": prefix,
        **extra,
    }


def test_killing_the_ingest_mid_backlog_loses_nothing_and_stores_nothing_twice(
    spawn: Callable[..., IngestWorker],
    conn: psycopg.Connection,
    database_url: str,
    broker: Mosquitto,
    topic_prefix: str,
) -> None:
    seed(conn)
    env = worker_env(database_url, broker, topic_prefix)
    publisher = Publisher(broker.url(), topic_prefix)
    try:
        first = spawn(env=env, name="ingest-a")
        eventually(first.broker_connected)
        probe = publisher.publish(1)
        eventually(lambda: stored(conn) == (1, 1), timeout=30)
        first.kill()  # its persistent session stays with the broker

        n = 6000
        sent = probe + publisher.publish(n, offset=1)
        publisher.wait_acknowledged(n + 1)

        second = spawn(env=env, name="ingest-a")
        eventually(lambda: stored(conn)[0] >= 1500, timeout=60)
        second.kill()
        assert stored(conn)[0] < n + 1, "the backlog was drained before the kill; raise n"

        third = spawn(env=env, name="ingest-a")
        eventually(lambda: stored(conn)[0] >= n + 1, timeout=120)
        time.sleep(0.5)
        assert stored(conn) == (n + 1, n + 1)
        found = {row[0] for row in conn.execute("SELECT msg_id::text FROM ingest_messages")}
        assert found == set(sent)
        assert third.stop() == 0
    finally:
        publisher.close()


def test_a_postgresql_crash_mid_stream_loses_nothing_and_the_ingest_recovers_by_itself(
    tmp_path: Path, broker: Mosquitto, topic_prefix: str
) -> None:
    cluster = PostgresCluster(tmp_path)
    try:
        url = cluster.url()
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            seed(conn)
            started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        with ConnectionPool(
            url, min_size=1, max_size=2, check=ConnectionPool.check_connection
        ) as pool:
            ingest = make_ingest(pool, broker.url(), topic_prefix)
            ingest.start()
            assert ingest.wait_connected(10)
            publisher = Publisher(broker.url(), topic_prefix)
            n = 3000
            sending = threading.Thread(
                target=publisher.publish, args=(n,), kwargs={"per_second": 500}
            )
            sending.start()
            time.sleep(2)
            cluster.crash_restart()
            sending.join(timeout=60)
            publisher.wait_acknowledged(n)
            with psycopg.connect(url, autocommit=True) as conn:
                eventually(lambda: stored(conn)[0] >= n, timeout=60)
                time.sleep(0.5)
                assert stored(conn) == (n, n)
                restarted = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
            assert restarted != started, "the server never went down"
            assert ingest.connected
            ingest.stop()
            publisher.close()
    finally:
        cluster.stop()


def test_a_broker_restart_mid_stream_is_ridden_out_and_the_ingest_resumes(
    pool: ConnectionPool, conn: psycopg.Connection, broker: Mosquitto, topic_prefix: str
) -> None:
    seed(conn)
    ingest = make_ingest(pool, broker.url(), topic_prefix)
    ingest.start()
    assert ingest.wait_connected(10)
    publisher = Publisher(broker.url(), topic_prefix)
    disconnects_before = metrics.RECONNECTS._value.get()
    try:
        n = 2000
        sending = threading.Thread(target=publisher.publish, args=(n,), kwargs={"per_second": 400})
        sending.start()
        time.sleep(2)
        broker.restart()
        sending.join(timeout=60)
        publisher.wait_acknowledged(n, timeout=90)
        eventually(lambda: stored(conn)[0] >= n, timeout=90)
        time.sleep(0.5)
        assert stored(conn) == (n, n)
        eventually(lambda: ingest.connected, timeout=30)
        assert metrics.RECONNECTS._value.get() > disconnects_before, "the broker never went away"
    finally:
        publisher.close()
        ingest.stop()


def test_two_workers_on_a_shared_subscription_store_a_stream_once_and_both_take_part(
    spawn: Callable[..., IngestWorker],
    conn: psycopg.Connection,
    database_url: str,
    broker: Mosquitto,
    topic_prefix: str,
) -> None:
    seed(conn)
    env = worker_env(database_url, broker, topic_prefix, HEIMVAKT_INGEST_SHARED_GROUP="ingest")
    workers = [spawn(env=env, name=f"ingest-{i}") for i in range(2)]
    publisher = Publisher(broker.url(), topic_prefix)
    try:
        for worker in workers:
            eventually(worker.broker_connected)
        n = 10_000
        publisher.publish(n)
        publisher.wait_acknowledged(n, timeout=120)
        eventually(lambda: stored(conn)[0] >= n, timeout=180, every=0.5)
        time.sleep(0.5)
        assert stored(conn) == (n, n)
        shares = [w.metric("heimvakt_readings_stored_total") for w in workers]
        assert all(share > 0 for share in shares), shares
        assert sum(shares) == n
    finally:
        publisher.close()
        for worker in workers:
            worker.stop()


def test_a_burst_redelivered_after_a_reconnect_is_stored_once_and_never_rate_limited(
    pool: ConnectionPool, conn: psycopg.Connection, broker: Mosquitto, topic_prefix: str
) -> None:
    """The broker redelivers what was not acknowledged when the connection dropped. Judged
    afresh, those copies would find the device's bucket emptied by their own first delivery."""
    seed_patient_with_device(conn, device_id="burst")
    held, release = threading.Event(), threading.Event()

    def hold_first_commit(_: psycopg.Connection, __: Sequence[Reading]) -> None:
        if not held.is_set():
            held.set()
            release.wait(30)

    ingest = ingest_with(pool, broker.url(), topic_prefix, after_store=[hold_first_commit])
    publisher = Publisher(broker.url(), topic_prefix)
    duplicates = metrics.READINGS_DUPLICATE._value.get()
    try:
        burst = TEST_LIMITS.device_burst - 10
        now = datetime.now(UTC)
        for i in range(burst):
            body = reading_message(93, at=now - timedelta(seconds=1) + timedelta(milliseconds=i))
            publisher.client.publish(
                f"{topic_prefix}/devices/burst/readings", json.dumps(body), qos=1
            )
        publisher.wait_acknowledged(burst)
        assert held.wait(10)
        time.sleep(0.5)  # the whole burst is decoded and admitted; none is acknowledged

        broker.restart()
        eventually(lambda: ingest.connected, timeout=20)
        time.sleep(1)  # the burst arrives again, marked DUP, while the first commit is held
        release.set()

        eventually(lambda: metrics.READINGS_DUPLICATE._value.get() - duplicates >= burst)
        assert stored(conn) == (burst, burst)
        assert conn.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    finally:
        release.set()
        publisher.close()
        ingest.stop()
