"""The home gateway keeps every measurement through a broker outage and its own kill -9, and
the ingest stores each exactly once with the time it was measured."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from core import catalog
from devices.gateway import Measurement, Outbox, read_measurements, simulated_measurements
from devices.simulator import TYPICAL
from tests.ingest.conftest import make_ingest
from tests.processes import MOSQUITTO, Mosquitto
from tests.support import eventually, seed_patient_with_device

DEVICE = "gw-ox-1"


def line(measured_at: datetime, value: float) -> str:
    return json.dumps(
        {
            "measured_at": measured_at.isoformat(),
            "readings": [{"code": "spo2", "value": value, "unit": "%"}],
        }
    )


class GatewayProcess:
    """`heimvakt gateway` reading its standard input, so the test can kill it with -9."""

    def __init__(self, outbox: Path, *, broker: Mosquitto, prefix: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "heimvakt", "gateway", DEVICE, str(outbox),
                "--broker", broker.url(DEVICE),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HEIMVAKT_MQTT_TOPIC_PREFIX": prefix},
        )  # fmt: skip

    def measure(self, *lines: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{text}\n" for text in lines).encode())
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


def waiting_in(outbox: Path) -> int:
    with sqlite3.connect(outbox) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def stored(conn: psycopg.Connection) -> list[datetime]:
    rows = conn.execute(
        "SELECT measured_at FROM readings WHERE device_id = %s ORDER BY measured_at", (DEVICE,)
    )
    return [at for (at,) in rows]


def status(conn: psycopg.Connection) -> tuple[bool, int] | None:
    """What the gateway last reported: online, and measurements waiting."""
    return conn.execute(
        "SELECT online, backlog FROM device_status WHERE device_id = %s", (DEVICE,)
    ).fetchone()


@pytest.mark.slow
@pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt-get install mosquitto)")
def test_an_outage_and_a_kill_9_during_it_lose_nothing_and_duplicate_nothing(
    tmp_path: Path,
    conn: psycopg.Connection,
    pool: ConnectionPool,
    broker: Mosquitto,
    topic_prefix: str,
) -> None:
    seed_patient_with_device(conn, device_id=DEVICE)
    ingest = make_ingest(pool, broker.url(), topic_prefix)
    ingest.start()
    assert ingest.wait_connected(10)
    outbox = tmp_path / "outbox.sqlite"
    first_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    times = [first_at + timedelta(minutes=i) for i in range(25)]
    lines = [line(at, 90 + i % 8) for i, at in enumerate(times)]
    gateway = GatewayProcess(outbox, broker=broker, prefix=topic_prefix)
    try:
        gateway.measure(*lines[:5])
        eventually(lambda: len(stored(conn)) == 5, timeout=30)

        broker.stop()
        gateway.measure(*lines[5:15])
        eventually(lambda: waiting_in(outbox) == 10, timeout=30)
        gateway.kill()
        gateway = GatewayProcess(outbox, broker=broker, prefix=topic_prefix)
        gateway.measure(*lines[15:])
        eventually(lambda: waiting_in(outbox) == 20, timeout=30)
        broker.start()

        eventually(lambda: len(stored(conn)) >= 25, timeout=60)
        eventually(lambda: waiting_in(outbox) == 0, timeout=30)
        time.sleep(0.5)  # a late duplicate would have arrived by now
        rows = stored(conn)
        assert rows == times, "each measurement once, with its own time"
        messages = conn.execute(
            "SELECT count(DISTINCT msg_id) FROM ingest_messages WHERE device_id = %s", (DEVICE,)
        ).fetchone()
        assert messages == (25,), "each measurement in a message of its own"
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
        assert quarantined == (0,)
        eventually(lambda: status(conn) == (True, 0), timeout=10)
        gateway.kill()
        eventually(lambda: status(conn) == (False, 0), timeout=10)  # its last will
        gateway = GatewayProcess(outbox, broker=broker, prefix=topic_prefix)
        eventually(lambda: status(conn) == (True, 0), timeout=10)
        assert gateway.stop() == 0
    finally:
        if gateway.process.poll() is None:
            gateway.kill()
        ingest.stop()


def test_a_full_outbox_keeps_the_oldest_and_refuses_the_newest(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", capacity=2)
    assert outbox.put("t", b"first")
    assert outbox.put("t", b"second")
    assert not outbox.put("t", b"third")
    assert [payload for _, _, payload in outbox.after(0, limit=10)] == [b"first", b"second"]


def test_what_the_outbox_holds_survives_reopening_and_is_sent_in_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    before = Outbox(path)
    for payload in (b"a", b"b", b"c"):
        before.put("t", payload)
    (first, *_), *_ = before.after(0, limit=1)
    before.remove([first])
    before.close()
    after = Outbox(path)
    assert [payload for _, _, payload in after.after(0, limit=10)] == [b"b", b"c"]
    assert len(after) == 2


def test_bad_lines_are_named_and_the_good_ones_kept() -> None:
    good = line(datetime(2026, 11, 30, 8, tzinfo=UTC), 95)
    first, second, third = read_measurements([good, "", "{not json", '{"readings": []}'])
    assert isinstance(first, Measurement)
    assert isinstance(second, str)
    assert second.startswith("line 3:")
    assert isinstance(third, str)
    assert third.startswith("line 4: readings:")


@pytest.mark.parametrize("kind", sorted(TYPICAL))
def test_a_simulated_attached_device_measures_what_the_catalog_accepts(kind: str) -> None:
    stop = threading.Event()
    measurements = simulated_measurements(kind, every=0.01, stop=stop)
    first, second = next(measurements), next(measurements)
    stop.set()
    assert list(measurements) == [], "it stops when told"
    for reading in (*first.readings, *second.readings):
        measurement = catalog.lookup(reading.code)
        assert measurement is not None
        accepted = catalog.accepted(reading.code, reading.unit)
        assert accepted is not None, (reading.code, reading.unit)
        assert measurement.is_plausible(
            catalog.to_canonical(measurement, reading.value, reading.unit)
        )
