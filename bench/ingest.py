"""Ingest benchmark: backlog drain, a naive baseline and steady latency, on real services.

Run by ``make bench-ingest`` (``python -m bench.ingest``). One run starts a Mosquitto of its own
on a free loopback port and creates a database of its own on the machine's PostgreSQL
(``HEIMVAKT_BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``),
seeds patients and devices through the care and device services, and then measures:

1. **Naive baseline**: a paho subscriber that does one INSERT per message with autocommit
   (PUBACK when its callback returns), draining a backlog held by the broker.
2. **Backlog drain**: ``python -m heimvakt ingest``, started against a backlog the broker kept
   in the worker's persistent session; from process start until every reading is committed.
3. **Steady latency**: with that worker running, readings published at a paced rate; the time
   from each publish to the commit holding it (a trigger sends ``pg_notify`` per row, and
   PostgreSQL delivers notifications at commit).

It writes the figures into the "Ingest" section of docs/benchmarks.md, with the CPU each
process used during the drain: on a shared machine that shows what else competed. Every process
it starts is stopped and the database dropped, also when a step fails, and every wait is bounded.
It is never part of the test suite: timings belong here, not in asserts.

Needs ``mosquitto`` on the machine and psutil (installed with the embedded services). With
``--profile FILE`` it runs the drain alone under py-spy (``pip install py-spy`` into the venv;
not a project dependency) and prints where the worker spends its time instead of writing docs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

import paho.mqtt.client as paho
import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient, do_set_threshold
from core.migrate import migrate
from core.mqtt import BrokerAddress
from core.settings import Settings
from devices.service import do_assign_device, do_register_device
from heimvakt.embedded import free_port
from tests.processes import MOSQUITTO, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)

INGEST_CLIENT_ID = "bench-ingest"
INGEST_PREFIX = "bench/heimvakt"
INGEST_APPLICATION = "heimvakt-ingest"
"""The application_name of the worker's database connections (core.db.open_pool)."""
NAIVE_CLIENT_ID = "bench-naive"
NAIVE_PREFIX = "bench/naive"
NOTIFY_CHANNEL = "bench_commit"

TARGET_DRAIN_PER_SECOND = 20_000
TARGET_RATIO = 12.0
TARGET_P99_MS = 100.0
TARGET_RSS_MB = 250.0

SPAWN = multiprocessing.get_context("spawn")
"""Child processes start clean: forking a process that runs paho and psycopg threads is unsafe."""


# --- What devices send ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    kind: str
    code: str
    unit: str
    low: float
    high: float
    """Values are spread over [low, high]: plausible, some outside the seeded thresholds."""


MEASUREMENTS = (
    Measurement("pulse_oximeter", "59408-5", "%", 86, 99),
    Measurement("pulse_meter", "8867-4", "/min", 48, 118),
    Measurement("scale", "29463-7", "kg", 55, 110),
    Measurement("thermometer", "8310-5", "Cel", 36.0, 38.6),
    Measurement("respiration_sensor", "9279-1", "/min", 10, 26),
)


def native_message(device_index: int, step: int, measured_at: datetime) -> tuple[str, bytes]:
    """A native payload with one reading of the device's measurement; returns (msg_id, body)."""
    measurement = MEASUREMENTS[device_index % len(MEASUREMENTS)]
    spread = ((device_index * 7919 + step * 104_729) % 1000) / 1000
    value = round(measurement.low + spread * (measurement.high - measurement.low), 1)
    msg_id = str(uuid.uuid4())
    body = (
        f'{{"msg_id":"{msg_id}","measured_at":"{measured_at.isoformat()}","readings":'
        f'[{{"code":"{measurement.code}","value":{value},"unit":"{measurement.unit}"}}]}}'
    )
    return msg_id, body.encode()


def readings_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/readings"


@dataclass(frozen=True, slots=True)
class Backlog:
    """`count` messages; message i comes from device i % devices, `spacing` after its previous.

    Each device's readings are measured apart in time and arrive in measured order, so neither
    the dedupe key (device, code, measured_at) nor the measured-time rate limiter refuses any.
    """

    broker_url: str
    prefix: str
    devices: tuple[str, ...]
    count: int
    first_measured_at: datetime
    spacing: timedelta

    def indices(self, share: int, shares: int) -> Iterator[int]:
        """The messages of one publisher: all those of the devices it speaks for, in order."""
        return (i for i in range(self.count) if (i % len(self.devices)) % shares == share)

    def message(self, i: int) -> tuple[str, bytes]:
        device_index, step = i % len(self.devices), i // len(self.devices)
        measured_at = self.first_measured_at + step * self.spacing
        _, body = native_message(device_index, step, measured_at)
        return readings_topic(self.prefix, self.devices[device_index]), body


def backlog_for(broker_url: str, prefix: str, devices: Sequence[str], count: int) -> Backlog:
    """A backlog measured over the past days: ten minutes apart per device, ending an hour ago."""
    spacing = timedelta(minutes=10)
    steps = math.ceil(count / len(devices))
    first = datetime.now(UTC) - timedelta(hours=1) - steps * spacing
    return Backlog(broker_url, prefix, tuple(devices), count, first, spacing)


class _Acknowledged:
    """Counts the broker's PUBACKs to a publisher (paho's on_publish)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: object) -> None:
        self.count += 1


def publish_share(backlog: Backlog, share: int, shares: int, timeout: float) -> int:
    """Publish one publisher's part of the backlog with QoS 1; returns how many were acknowledged.

    Runs in a child process. paho is driven by hand (no network thread): publish writes to the
    socket directly, and acknowledgements are read every few hundred messages.
    """
    address = BrokerAddress.parse(backlog.broker_url)
    client = paho.Client(
        callback_api_version=paho.CallbackAPIVersion.VERSION2,
        client_id=f"bench-publisher-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )
    client.max_inflight_messages_set(0)
    acknowledged = _Acknowledged()
    client.on_publish = acknowledged
    client.connect(address.host, address.port, keepalive=60)
    deadline = time.monotonic() + timeout
    while not client.is_connected() and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    sent = 0
    for i in backlog.indices(share, shares):
        topic, body = backlog.message(i)
        client.publish(topic, body, qos=1)
        sent += 1
        if sent % 200 == 0:
            client.loop(timeout=0)
        # Packet ids wrap at 65,535: keep far fewer than that unacknowledged.
        while sent - acknowledged.count > 20_000 and time.monotonic() < deadline:
            client.loop(timeout=0.01)
    while acknowledged.count < sent and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    return acknowledged.count


def publish_backlog(backlog: Backlog, *, publishers: int, timeout: float) -> float:
    """Publish the backlog from several processes at once; returns the seconds it took."""
    started = time.monotonic()
    with SPAWN.Pool(publishers) as pool:  # leaving the block terminates the pool's processes
        pending = [
            pool.apply_async(publish_share, (backlog, share, publishers, timeout))
            for share in range(publishers)
        ]
        acknowledged = sum(p.get(timeout=timeout + 30) for p in pending)
    if acknowledged != backlog.count:
        raise RuntimeError(f"the broker acknowledged {acknowledged} of {backlog.count} messages")
    return time.monotonic() - started


# --- Processes and services ----------------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def log_tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def own_mosquitto(workdir: Path) -> Mosquitto:
    """The tests' Mosquitto runner, suited to a backlog benchmark.

    Persistence off: the ingest's session lives in the broker's memory, which is all one run
    needs, and no periodic store write disturbs the timing. ``sys_interval 1`` refreshes
    ``$SYS/broker/store/messages/count``, which shows the backlog the broker holds.
    """
    if MOSQUITTO is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    return Mosquitto(
        workdir,
        persistence=False,
        extra=(
            "max_inflight_messages 1000",
            "sys_interval 1",
            "set_tcp_nodelay true",  # as deploy/mosquitto/mosquitto.conf recommends
        ),
    )


class BrokerStore:
    """Follows ``$SYS/broker/store/messages/count``: how many messages Mosquitto holds."""

    def __init__(self, broker_url: str) -> None:
        self._changed = threading.Condition()
        self._count: int | None = None
        address = BrokerAddress.parse(broker_url)
        self._client = address.client(
            client_id=f"bench-sys-{uuid.uuid4().hex[:8]}", persistent=False
        )
        self._client.on_connect = lambda client, *_: client.subscribe(
            "$SYS/broker/store/messages/count"
        )
        self._client.on_message = self._on_message
        self._client.connect(
            address.host, address.port, **address.connect_options(persistent=False)
        )
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._changed:
            self._count = int(message.payload)
            self._changed.notify_all()

    def wait_at_least(self, count: int, *, timeout: float) -> int:
        """The store count once it reaches `count`, or the last one seen after `timeout`."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._count is not None and self._count >= count, timeout=timeout
            )
            if self._count is None:
                raise TimeoutError("Mosquitto published no $SYS store count")
            return self._count

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class IngestWorker:
    """``python -m heimvakt ingest``: the worker exactly as an operator runs it."""

    def __init__(self, env: dict[str, str], log: Path, *, metrics_port: int | None = None) -> None:
        self.log = log
        self.metrics_port = metrics_port
        extra = ["--metrics-port", str(metrics_port)] if metrics_port else []
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "heimvakt", "ingest", *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the ingest worker ended with status {self.process.returncode}:\n"
                + log_tail(self.log)
            )

    def wait_connected(self, timeout: float) -> None:
        """Until its metrics say it is connected (it subscribes in the same callback)."""
        assert self.metrics_port is not None
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError):
                text = urllib.request.urlopen(url, timeout=2).read().decode()
                if re.search(r"^heimvakt_ingest_broker_connected 1\.0$", text, re.MULTILINE):
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the ingest worker did not connect within {timeout}s")

    def stop(self) -> None:
        stop_process(self.process)


# --- Database ------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    """A fresh, migrated database, dropped afterwards whatever happened."""
    name = f"heimvakt_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(server_url, dbname=name)
        migrate(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def seed(conn: psycopg.Connection, *, patients: int, devices: int) -> list[str]:
    """Patients with spo2 and pulse limits, and devices assigned to them since long ago."""
    now = datetime.now(UTC)
    unit = do_create_organisation(
        conn, name="Benchmark kommune", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    patient_ids = []
    for i in range(patients):
        patient = do_create_patient(
            conn,
            display_name=f"Syntetisk pasient {i:04d}",
            conditions=[Condition.COPD],
            responsible_unit=unit,
            since=LONG_AGO,
        )
        do_set_threshold(conn, patient_id=patient, code="spo2", low=90, high=None, now=now)
        do_set_threshold(conn, patient_id=patient, code="pulse", low=None, high=110, now=now)
        patient_ids.append(patient)
    device_ids = []
    for i in range(devices):
        device_id = f"bench-{i:05d}"
        kind = MEASUREMENTS[i % len(MEASUREMENTS)].kind
        do_register_device(conn, device_id=device_id, kind=kind)
        do_assign_device(
            conn, device_id=device_id, patient_id=patient_ids[i % patients], valid_from=LONG_AGO
        )
        device_ids.append(device_id)
    conn.execute("ANALYZE")
    return device_ids


def checkpoints(conn: psycopg.Connection) -> int:
    """Checkpoints the server has run so far (each flushes dirty pages: commits slow down)."""
    query = (
        "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
        if conn.info.server_version >= 170000
        else "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def autovacuum_runs(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables"
        " WHERE relname = 'readings'"
    ).fetchone()
    return row[0] if row else 0


def empty_tables(conn: psycopg.Connection) -> None:
    """Start a phase from no readings, quarantine or alerts (the registry stays)."""
    conn.execute("TRUNCATE readings, quarantine, alerts")


@dataclass(frozen=True, slots=True)
class Stored:
    readings: int
    distinct_msg_ids: int
    quarantined: dict[str, int]
    alerts: int


def stored(conn: psycopg.Connection) -> Stored:
    row = conn.execute("SELECT count(*), count(DISTINCT msg_id) FROM readings").fetchone()
    assert row is not None
    reasons = dict(conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()
    assert alerts is not None
    return Stored(row[0], row[1], reasons, alerts[0])


def count_readings(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    return row[0]


@dataclass(frozen=True, slots=True)
class Drain:
    """When a drain started, when its first rows and its last row were seen committed."""

    count: int
    started: float
    first_seen: float
    first_count: int
    done: float
    polls: int

    @property
    def seconds(self) -> float:
        return self.done - self.started

    @property
    def startup_seconds(self) -> float:
        return self.first_seen - self.started

    @property
    def rate(self) -> float:
        """Readings per second including process start-up."""
        return self.count / self.seconds

    @property
    def running_rate(self) -> float:
        """Readings per second from the first committed rows on (start-up excluded)."""
        return (self.count - self.first_count) / (self.done - self.first_seen)


def wait_committed(
    conn: psycopg.Connection,
    count: int,
    *,
    started: float,
    timeout: float,
    check: Callable[[], None],
) -> Drain:
    """Poll ``count(*)`` until `count` readings are committed.

    Each observation is stamped before its query, whose snapshot can only hold rows committed
    by then. Polling is every 50 ms until the first rows and near the end, and rarer while
    the table grows, so the end is seen within about 50 ms at a small cost to the database.
    """
    first: tuple[float, int] | None = None
    polls = 0
    while True:
        observed = time.monotonic()
        committed = count_readings(conn)
        polls += 1
        if first is None and committed > 0:
            first = (observed, committed)
        if committed >= count:
            assert first is not None
            return Drain(count, started, first[0], first[1], observed, polls)
        if observed - started > timeout:
            raise TimeoutError(f"{committed} of {count} readings committed after {timeout}s")
        check()
        time.sleep(_poll_interval(first, observed, committed, count))


def _poll_interval(first: tuple[float, int] | None, now: float, committed: int, n: int) -> float:
    if first is None or now <= first[0] or committed <= first[1]:
        return 0.05
    rate = (committed - first[1]) / (now - first[0])
    return min(1.0, max(0.05, (n - committed) / rate / 4))


# --- Resource use --------------------------------------------------------------------------


class ProcessSampler:
    """Samples a process every 100 ms in a thread: the peak resident set size, and its CPU
    seconds over time (to tell the CPU of start-up from that of the drain)."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self._process = psutil.Process(pid)
        self._every = every
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self.cpu: list[tuple[float, float]] = []
        """(time.monotonic(), CPU seconds so far) at each sample."""
        self._thread = threading.Thread(target=self._run, name="process-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._process.memory_info().rss
                cpu = self._process.cpu_times()
            except psutil.Error:
                return
            self.cpu.append((time.monotonic(), cpu.user + cpu.system))
            self.peak = max(self.peak, rss)
            self.samples += 1
            self._stop.wait(self._every)

    def cpu_at(self, moment: float) -> float:
        """CPU seconds at the last sample taken at or before `moment`."""
        return next((cpu for t, cpu in reversed(self.cpu) if t <= moment), 0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


_SERVING_PIDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database()
   OR backend_type IN ('walwriter', 'checkpointer', 'background writer')
"""


def serving_processes(conn: psycopg.Connection) -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL processes working for the benchmark database.

    Its backends (the worker's, the benchmark's polling one, autovacuum on it) and the shared
    WAL writer, checkpointer and background writer; empty when the server is not local. Other
    databases on the same server (tests running meanwhile) are left out.
    """
    found = {}
    for (pid,) in conn.execute(_SERVING_PIDS).fetchall():
        with contextlib.suppress(psutil.Error):
            found[pid] = cpu_seconds(psutil.Process(pid))
    return found


def all_processes() -> dict[int, float]:
    """CPU seconds so far of every process on the machine."""
    return {process.pid: cpu_seconds(process) for process in psutil.process_iter()}


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds spent during one interval, by whom."""

    wall: float
    cores: int
    ingest: float
    ingest_backends: float
    postgres: float
    mosquitto: float
    bench: float
    """This process: polling, RSS sampling, and in the latency phase publishing and listening."""
    others: float
    """Every other process alive at the end of the interval (other work, kernel threads)."""

    @property
    def machine(self) -> float:
        return self.ingest + self.postgres + self.mosquitto + self.bench + self.others


class CpuMeter:
    """CPU used during an interval by each part of the benchmark and by everything else.

    Counted per process (from the kernel's per-task run time), not from /proc/stat, whose
    machine-wide counters lose time on some virtual machines. A process that started and
    ended within the interval is missed.
    """

    def __init__(self, conn: psycopg.Connection, mosquitto_pid: int) -> None:
        self._conn = conn
        self._mosquitto_pid = mosquitto_pid
        self._started = time.monotonic()
        self._before = all_processes()

    def measure(self, ingest_pid: int, backend_pids: Sequence[int]) -> CpuUse:
        """CPU seconds since the meter started (processes started since: all they used)."""
        postgres_now = serving_processes(self._conn)
        now = all_processes()

        def used(pid: int) -> float:
            return now.get(pid, 0.0) - self._before.get(pid, 0.0)

        ours = {ingest_pid, self._mosquitto_pid, os.getpid(), *postgres_now}
        return CpuUse(
            wall=time.monotonic() - self._started,
            cores=psutil.cpu_count() or 1,
            ingest=used(ingest_pid),
            ingest_backends=sum(used(pid) for pid in backend_pids),
            postgres=sum(used(pid) for pid in postgres_now),
            mosquitto=used(self._mosquitto_pid),
            bench=used(os.getpid()),
            others=sum(used(pid) for pid in now if pid not in ours),
        )


def ingest_backends(conn: psycopg.Connection) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = %s",
        (INGEST_APPLICATION,),
    ).fetchall()
    return [row[0] for row in rows]


# --- Naive baseline ------------------------------------------------------------------------

_NAIVE_INSERT = """
INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, msg_id, received_at)
SELECT %(device)s, %(code)s, %(at)s::timestamptz, a.patient_id, %(value)s, %(unit)s,
       %(msg_id)s::uuid, now()
FROM device_assignments a
WHERE a.device_id = %(device)s AND a.valid_from <= %(at)s::timestamptz
  AND (a.valid_to IS NULL OR a.valid_to > %(at)s::timestamptz)
ON CONFLICT DO NOTHING
"""


def naive_subscriber(
    broker_url: str,
    database_url: str,
    receive_maximum: int,
    subscribed: ProcessEvent,
    stop: ProcessEvent,
) -> None:
    """The baseline a first version might be: one INSERT per message, committed on its own.

    Same session as the ingest (persistent MQTT 5 session, QoS 1, Receive Maximum) and the same
    durability (paho sends PUBACK when on_message returns, after the commit); the same
    attribution and dedupe in SQL; no validation, no batching. Runs in a child process.
    """
    address = BrokerAddress.parse(broker_url)
    with psycopg.connect(database_url, autocommit=True) as conn:

        def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            device = message.topic.split("/")[-2]
            body = json.loads(message.payload)
            for reading in body["readings"]:
                conn.execute(
                    _NAIVE_INSERT,
                    {
                        "device": device,
                        "at": body["measured_at"],
                        "msg_id": body["msg_id"],
                        "code": reading["code"],
                        "value": reading["value"],
                        "unit": reading["unit"],
                    },
                )

        client = address.client(client_id=NAIVE_CLIENT_ID, persistent=True)
        client.on_connect = lambda client, *_: client.subscribe(
            readings_topic(NAIVE_PREFIX, "+"), qos=1
        )
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = on_message
        client.connect(
            address.host,
            address.port,
            **address.connect_options(persistent=True, receive_maximum=receive_maximum),
        )
        client.loop_start()
        stop.wait(timeout=3600)
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def naive_process(
    broker_url: str, database_url: str, receive_maximum: int
) -> Iterator[tuple[multiprocessing.process.BaseProcess, ProcessEvent]]:
    """The naive subscriber in its own process, stopped (or killed) on the way out."""
    subscribed, stop = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(
        target=naive_subscriber,
        args=(broker_url, database_url, receive_maximum, subscribed, stop),
        name="naive-subscriber",
    )
    process.start()
    try:
        yield process, subscribed
    finally:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


# --- Steady latency ------------------------------------------------------------------------

_NOTIFY_TRIGGER = f"""
CREATE FUNCTION bench_notify_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{NOTIFY_CHANNEL}', NEW.msg_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify_commit AFTER INSERT ON readings
    FOR EACH ROW EXECUTE FUNCTION bench_notify_commit();
"""


class CommitListener:
    """LISTENs in a thread and stamps each msg_id when its commit's notification arrives."""

    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(database_url, autocommit=True)
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        self.committed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for note in self._conn.notifies(timeout=0.2):
                self.committed[note.payload] = time.monotonic()

    def wait_for(self, msg_ids: Sequence[str], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(m not in self.committed for m in msg_ids):
            time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


def paced_publish(
    broker_url: str, prefix: str, devices: Sequence[str], *, rate: float, seconds: float
) -> dict[str, float]:
    """Publish live readings (measured now) at `rate` per second; returns msg_id -> send time.

    Each send is scheduled at start + i / rate, so a late one does not delay the rest.
    """
    address = BrokerAddress.parse(broker_url)
    client = paho.Client(
        callback_api_version=paho.CallbackAPIVersion.VERSION2,
        client_id=f"bench-live-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )
    client.max_inflight_messages_set(0)
    client.connect(address.host, address.port, keepalive=60)
    client.loop_start()
    sent: dict[str, float] = {}
    try:
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            device_index = i % len(devices)
            msg_id, body = native_message(device_index, i, datetime.now(UTC))
            sent[msg_id] = time.monotonic()
            client.publish(readings_topic(prefix, devices[device_index]), body, qos=1)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


@dataclass(frozen=True, slots=True)
class Latency:
    published: int
    committed: int
    publish_seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def measure_latency(
    database_url: str,
    broker_url: str,
    devices: Sequence[str],
    *,
    rate: float,
    seconds: float,
) -> Latency:
    """Publish-to-commit times of readings published at a steady rate to the running worker."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_NOTIFY_TRIGGER)
    listener = CommitListener(database_url)
    try:
        started = time.monotonic()
        sent = paced_publish(broker_url, INGEST_PREFIX, devices, rate=rate, seconds=seconds)
        publish_seconds = time.monotonic() - started
        listener.wait_for(list(sent), timeout=30)
    finally:
        listener.close()
    latencies = sorted(
        (listener.committed[m] - t) * 1000 for m, t in sent.items() if m in listener.committed
    )
    if not latencies:
        raise RuntimeError("no published reading was seen committed")
    return Latency(
        published=len(sent),
        committed=len(latencies),
        publish_seconds=publish_seconds,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1],
    )


# --- Profiling (optional) ------------------------------------------------------------------


class PySpy:
    """py-spy recording a process without pausing it, as collapsed stacks, until stopped."""

    RATE = 200

    def __init__(self, pid: int, output: Path) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.output = output
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                binary, "record", "--pid", str(pid), "--rate", str(self.RATE), "--format", "raw",
                "--threads", "--nonblocking", "--output", str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> float:
        """Stop recording (py-spy writes its file on SIGINT); returns the seconds recorded."""
        seconds = time.monotonic() - self.started
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return seconds


def summarise_profile(path: Path, seconds: float, rate: int, top: int = 25) -> str:
    """Per thread, the share of wall time it was on CPU; then the functions seen most.

    Inclusive: samples with the function anywhere on the stack; self: at the top of it.
    Percentages are of all on-CPU samples of the process (py-spy leaves idle threads out).
    """
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    total = sum(stacks.values())
    if not total:
        return "py-spy recorded no samples"
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks.items():
        threads[_thread_label(frames)] += count
        for name in {_function(f) for f in frames[1:]}:
            inclusive[name] += count
        own[_function(frames[-1])] += count
    possible = seconds * rate
    lines = [f"{total} on-CPU samples over {seconds:.1f} s at {rate} Hz"]
    lines += [
        f"  thread {name}: {n / total:6.1%} of samples, on CPU {n / possible:6.1%} of the time"
        for name, n in threads.most_common()
    ]
    lines.append("inclusive:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def _function(frame: str) -> str:
    """``name (path/to/file.py:12)`` -> ``name (file.py)``; lines differ within one function."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name


def _thread_label(frames: Sequence[str]) -> str:
    """Which of the worker's threads a stack belongs to, by a function only that thread runs."""
    text = ";".join(frames)
    for marker, label in (
        ("_write_forever", "ingest-writer"),
        ("loop_forever", "paho network loop"),
        ("psycopg_pool", "connection pool"),
    ):
        if marker in text:
            return label
    return frames[0]


# --- The run -------------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    settings: Settings
    devices: int
    patients: int
    publishers: int
    naive: Drain | None = None
    naive_stored: Stored | None = None
    drain: Drain | None = None
    drain_stored: Stored | None = None
    broker_held: int = 0
    peak_rss: int = 0
    rss_samples: int = 0
    peak_rss_overall: int = 0
    cpu: CpuUse | None = None
    running_cpu: float = 0.0
    """The worker's CPU seconds from the first commit to the last (start-up left out)."""
    latency: Latency | None = None
    latency_stored: Stored | None = None
    latency_cpu: CpuUse | None = None
    latency_autovacuum: int = 0
    """Autovacuum and autoanalyze runs on readings during the latency phase."""
    drain_checkpoints: int = 0
    latency_checkpoints: int = 0
    profile: str | None = None
    notes: list[str] = field(default_factory=list)


def ingest_settings(database_url: str, broker_url: str) -> Settings:
    """The worker's settings: ours for the services, the rest as the environment gives them."""
    return Settings(
        database_url=database_url,
        mqtt_url=broker_url,
        mqtt_client_id=INGEST_CLIENT_ID,
        mqtt_topic_prefix=INGEST_PREFIX,
    )


def ingest_env(settings: Settings) -> dict[str, str]:
    """The worker's environment, every setting the report names spelled out."""
    values = {
        "DATABASE_URL": settings.database_url,
        "MQTT_URL": settings.mqtt_url,
        "MQTT_CLIENT_ID": settings.mqtt_client_id,
        "MQTT_TOPIC_PREFIX": settings.mqtt_topic_prefix,
        "INGEST_BATCH_SIZE": settings.ingest_batch_size,
        "INGEST_FLUSH_SECONDS": settings.ingest_flush_seconds,
        "INGEST_QUEUE_SIZE": settings.ingest_queue_size,
        "INGEST_RECEIVE_MAXIMUM": settings.ingest_receive_maximum,
        "INGEST_DEVICE_RATE": settings.ingest_device_rate,
        "INGEST_DEVICE_BURST": settings.ingest_device_burst,
    }
    return {**os.environ, **{f"HEIMVAKT_{k}": str(v) for k, v in values.items()}}


def publish_and_confirm(backlog: Backlog, publishers: int) -> int:
    """Publish a backlog for a stopped subscriber; returns how many more messages the broker holds.

    Mosquitto refreshes its $SYS store count every second, so the count after publishing is
    awaited until it has grown by the whole backlog (or 15 s have passed).
    """
    store = BrokerStore(backlog.broker_url)
    try:
        before = store.wait_at_least(0, timeout=10)
        seconds = publish_backlog(backlog, publishers=publishers, timeout=1800)
        held = store.wait_at_least(before + backlog.count, timeout=15) - before
    finally:
        store.close()
    print(
        f"  {backlog.count:,} readings published to {backlog.prefix} in {seconds:.1f} s"
        f" ({backlog.count / seconds:,.0f}/s); the broker holds {held:,} more messages",
        flush=True,
    )
    if held < backlog.count:
        raise RuntimeError("the broker does not hold the whole backlog; see mosquitto.log")
    return held


def run_naive(
    options: argparse.Namespace, broker: Mosquitto, database_url: str, devices: list[str]
) -> tuple[Drain, Stored]:
    """The baseline drains a backlog of its own, prepared and timed like the worker's."""
    receive_maximum = ingest_settings(database_url, broker.url()).ingest_receive_maximum
    with naive_process(broker.url(), database_url, receive_maximum) as (_, subscribed):
        if not subscribed.wait(timeout=30):
            raise TimeoutError("the naive subscriber did not subscribe within 30 s")
    backlog = backlog_for(broker.url(), NAIVE_PREFIX, devices, options.naive_readings)
    publish_and_confirm(backlog, options.publishers)
    with psycopg.connect(database_url, autocommit=True) as conn:
        started = time.monotonic()
        with naive_process(broker.url(), database_url, receive_maximum) as (process, _):

            def check() -> None:
                if not process.is_alive():
                    raise RuntimeError(f"the naive subscriber ended ({process.exitcode})")

            drain = wait_committed(
                conn, backlog.count, started=started, timeout=options.timeout, check=check
            )
        time.sleep(0.5)  # anything beyond the backlog (there should be nothing) would show now
        return drain, stored(conn)


def run_drain(
    options: argparse.Namespace,
    broker: Mosquitto,
    *,
    workdir: Path,
    results: Results,
    devices: list[str],
    stack: contextlib.ExitStack,
) -> tuple[IngestWorker, ProcessSampler]:
    """The worker drains its backlog; it is returned still running, for the latency phase."""
    env = ingest_env(results.settings)
    log = workdir / "ingest.log"
    first = IngestWorker(env, log, metrics_port=free_port())
    try:
        first.wait_connected(timeout=30)  # the broker now keeps its session
    finally:
        first.stop()
    backlog = backlog_for(broker.url(), INGEST_PREFIX, devices, options.readings)
    results.broker_held = publish_and_confirm(backlog, options.publishers)
    with psycopg.connect(results.settings.database_url, autocommit=True) as conn:
        meter = CpuMeter(conn, broker.pid)
        checkpoints_before = checkpoints(conn)
        started = time.monotonic()
        worker = IngestWorker(env, log)
        stack.callback(worker.stop)
        sampler = ProcessSampler(worker.pid)
        stack.callback(sampler.stop)
        spy = PySpy(worker.pid, options.profile) if options.profile else None
        try:
            results.drain = wait_committed(
                conn, backlog.count, started=started, timeout=options.timeout,
                check=worker.check_alive,
            )  # fmt: skip
            results.peak_rss, results.rss_samples = sampler.peak, sampler.samples
            drain = results.drain
            results.running_cpu = sampler.cpu_at(drain.done) - sampler.cpu_at(drain.first_seen)
            results.cpu = meter.measure(worker.pid, ingest_backends(conn))
            results.drain_checkpoints = checkpoints(conn) - checkpoints_before
        finally:
            profiled = spy.stop() if spy else 0.0
        if spy and options.profile.exists():
            results.profile = summarise_profile(options.profile, profiled, PySpy.RATE)
        time.sleep(0.5)
        results.drain_stored = stored(conn)
    return worker, sampler


def run(options: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path) -> Results:
    broker = own_mosquitto(workdir)
    broker.start()
    stack.callback(broker.stop)
    database_url = stack.enter_context(bench_database(options.server_url))
    results = Results(
        ingest_settings(database_url, broker.url()),
        options.devices,
        options.patients,
        options.publishers,
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        print(f"seeding {options.patients} patients and {options.devices} devices", flush=True)
        devices = seed(conn, patients=options.patients, devices=options.devices)
    if options.naive_readings and not options.profile:
        print("naive baseline", flush=True)
        results.naive, results.naive_stored = run_naive(options, broker, database_url, devices)
        with psycopg.connect(database_url, autocommit=True) as conn:
            empty_tables(conn)
    print("backlog drain", flush=True)
    worker, sampler = run_drain(
        options, broker, workdir=workdir, results=results, devices=devices, stack=stack
    )
    if options.steady_seconds and not options.profile:
        print("steady latency", flush=True)
        with psycopg.connect(database_url, autocommit=True) as conn:
            meter = CpuMeter(conn, broker.pid)
            vacuums, checkpoints_before = autovacuum_runs(conn), checkpoints(conn)
            results.latency = measure_latency(
                database_url,
                broker.url(),
                devices,
                rate=options.steady_rate,
                seconds=options.steady_seconds,
            )
            results.latency_cpu = meter.measure(worker.pid, ingest_backends(conn))
            time.sleep(1)  # table statistics reach the cumulative views within a second
            results.latency_autovacuum = autovacuum_runs(conn) - vacuums
            results.latency_checkpoints = checkpoints(conn) - checkpoints_before
            results.latency_stored = stored(conn)
    results.peak_rss_overall = sampler.peak
    worker.check_alive()
    return results


# --- Reporting -----------------------------------------------------------------------------


def machine(server_url: str) -> dict[str, str]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'),"
            " current_setting('fsync')"
        ).fetchone()
    assert row is not None
    mosquitto = subprocess.run(
        [MOSQUITTO or "mosquitto", "-h"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        cwd=ROOT,
    ).stdout.strip()
    return {
        "cpus": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "cpu_model": cpu_model,
        "postgres": f"PostgreSQL {row[0]} (synchronous_commit={row[1]}, fsync={row[2]})",
        "mosquitto": mosquitto[0] if mosquitto else "unknown",
        "python": f"Python {platform.python_version()}",
        "kernel": platform.release(),
        "git": git or "unknown",
    }


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def _rate(value: float) -> str:
    return f"{value:,.0f} readings/s"


def table(results: Results) -> list[str]:
    drain, naive, latency = results.drain, results.naive, results.latency
    assert drain is not None
    rss_mb = results.peak_rss / 2**20
    rows = [
        "| Measure | Target | Measured | Met |",
        "| --- | --- | --- | --- |",
        f"| Backlog drain, one worker, durable, validated, deduplicated ({drain.count:,} readings"
        f" held by the broker), from the first commit | >= {TARGET_DRAIN_PER_SECOND:,}"
        f" readings/s | {_rate(drain.running_rate)} |"
        f" {_yes(drain.running_rate >= TARGET_DRAIN_PER_SECOND)} |",
        f"| The same, including process start-up ({drain.startup_seconds:.2f} s to the first"
        f" commit; {drain.seconds:.1f} s in all) | | {_rate(drain.rate)} | |",
    ]
    if naive is not None:
        ratio = drain.running_rate / naive.running_rate
        rows += [
            f"| Naive baseline: one INSERT and commit per message ({naive.count:,} readings),"
            f" from the first commit | | {_rate(naive.running_rate)} | |",
            f"| Heimvakt / naive, from the first commit (including start-up:"
            f" {drain.rate / naive.rate:.1f}x) | >= {TARGET_RATIO:g}x | {ratio:.1f}x |"
            f" {_yes(ratio >= TARGET_RATIO)} |",
        ]
    if latency is not None:
        rows.append(
            f"| Publish-to-commit at {latency.published / latency.publish_seconds:,.0f}"
            f" readings/s for {latency.publish_seconds:.0f} s ({latency.committed:,} of"
            f" {latency.published:,} seen): p50 / p99 / max | p99 <= {TARGET_P99_MS:g} ms |"
            f" {latency.p50_ms:.1f} / {latency.p99_ms:.1f} / {latency.max_ms:.1f} ms |"
            f" {_yes(latency.p99_ms <= TARGET_P99_MS)} |"
        )
    rows.append(
        f"| Peak RSS of the ingest process during the drain (sampled every 100 ms) |"
        f" <= {TARGET_RSS_MB:g} MB | {rss_mb:.0f} MB | {_yes(rss_mb <= TARGET_RSS_MB)} |"
    )
    return rows


def cpu_table(cpu: CpuUse, drain: Drain, running_cpu: float) -> list[str]:
    def share(seconds: float) -> str:
        return f"{seconds:.1f} s ({seconds / cpu.wall:.0%} of one core)"

    running_seconds = drain.done - drain.first_seen
    per_reading = running_cpu / (drain.count - drain.first_count) * 1e6

    return [
        f"| CPU during the drain ({cpu.wall:.1f} s, {cpu.cores} cores) | CPU time |",
        "| --- | --- |",
        f"| Ingest worker (`heimvakt ingest`, one Python process) | {share(cpu.ingest)} |",
        f"| Its PostgreSQL backend | {share(cpu.ingest_backends)} |",
        "| PostgreSQL for the benchmark database (that backend, the benchmark's polling one,"
        f" autovacuum, WAL writer, checkpointer, background writer) | {share(cpu.postgres)} |",
        f"| Mosquitto | {share(cpu.mosquitto)} |",
        f"| The benchmark process (polling, RSS sampling) | {share(cpu.bench)} |",
        "| Every other process on the machine (other work, kernel threads) |"
        f" {share(cpu.others)} |",
        f"| All processes | {share(cpu.machine)}, {cpu.machine / cpu.wall / cpu.cores:.0%} of the"
        " machine |",
        f"| Ingest worker CPU per reading from the first commit on | {per_reading:.0f} µs, at"
        f" {running_cpu / running_seconds:.0%} of one core: a core of its own would drain at"
        f" most {1e6 / per_reading:,.0f} readings/s |",
    ]


def section(results: Results, info: dict[str, str], command: str) -> str:
    settings, drain = results.settings, results.drain
    assert drain is not None
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Ingest",
        "",
        f"Measured {when} with {command}, code at `{info['git']}`.",
        "",
        f"Machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory']} memory, Linux"
        f" {info['kernel']}; {info['postgres']}; {info['mosquitto']}; {info['python']}."
        " Broker, database, worker and publishers all ran on this machine.",
        "",
        *table(results),
        "",
        f"Worker settings: batch {settings.ingest_batch_size} messages, flush"
        f" {settings.ingest_flush_seconds:g} s, queue {settings.ingest_queue_size}, Receive Maximum"
        f" {settings.ingest_receive_maximum}, device rate {settings.ingest_device_rate:g}/s (burst"
        f" {settings.ingest_device_burst}); rules evaluated in the store transaction. Data:"
        f" {results.patients} synthetic patients with spo2 and pulse limits, {results.devices}"
        " devices, one reading per message.",
        "",
        "Method: the benchmark starts its own Mosquitto (loopback only, anonymous, unlimited"
        " queues, persistence off) and creates, migrates, seeds and finally drops its own"
        " database. For each drain the subscriber first opens its persistent MQTT 5 session and"
        f" stops; {results.publishers} publisher processes then publish the backlog with QoS 1"
        " (not timed) and `$SYS/broker/store/messages/count` confirms the broker holds it"
        f" ({results.broker_held:,} messages for the worker); then the subscriber is started"
        " again and timed until `count(*)` on readings reaches the total (polled every 50 ms"
        " near the start and end). The naive baseline uses the same session settings and"
        " attribution SQL but one autocommit INSERT per message. For the latency, a trigger"
        " added to the benchmark database only calls `pg_notify` per inserted row; a LISTEN"
        " connection stamps each msg_id when the notification arrives, which PostgreSQL does"
        " at commit, and compares it with the time its publish call was made.",
    ]
    if results.cpu is not None:
        lines += ["", *cpu_table(results.cpu, drain, results.running_cpu)]
    lines += [f"\n{note}" for note in results.notes]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str, *, heading: str = "Ingest") -> None:
    """Replace the "## <heading>" section of the file (or add it), leaving other sections be."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1).rstrip("\n") + "\n"
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def print_results(results: Results) -> None:
    print("\n".join(table(results)))
    drain = results.drain
    assert drain is not None
    print(f"drain: {drain.polls} polls, first commit after {drain.startup_seconds:.2f} s")
    print(f"drain stored: {results.drain_stored}")
    if results.naive_stored is not None:
        print(f"naive stored: {results.naive_stored}")
    if results.latency_stored is not None:
        print(f"after the latency phase: {results.latency_stored}")
    print(f"RSS samples during the drain: {results.rss_samples}; peak over the whole run:"
          f" {results.peak_rss_overall / 2**20:.0f} MB")  # fmt: skip
    if results.cpu is not None:
        print("\n".join(cpu_table(results.cpu, drain, results.running_cpu)))
    if results.profile:
        print(results.profile)
    for note in results.notes:
        print(note)


def check_outcomes(results: Results) -> None:
    """Figures count only if every reading was stored once and nothing was quarantined."""
    for label, outcome, expected in (
        ("drain", results.drain_stored, results.drain.count if results.drain else 0),
        ("naive", results.naive_stored, results.naive.count if results.naive else 0),
    ):
        if outcome is None:
            continue
        if outcome.readings != expected or outcome.distinct_msg_ids != expected:
            results.notes.append(f"Warning: the {label} stored {outcome}, expected {expected}.")
        if outcome.quarantined:
            results.notes.append(f"Warning: the {label} quarantined {outcome.quarantined}.")
    latency = results.latency
    if latency is not None and latency.committed < latency.published:
        results.notes.append(
            f"Warning: {latency.published - latency.committed} live readings were not seen"
            " committed within 30 s."
        )
    results.notes += load_notes(results)


def load_notes(results: Results) -> list[str]:
    """What else ran while we measured: other work on a shared machine, autovacuum."""
    notes = []
    if results.cpu is not None:
        busy = results.cpu.others / (results.cpu.wall * results.cpu.cores)
        notes.append(
            f"Other work on the machine used {busy:.0%} of its CPU during the drain"
            + (
                "; the rates are lower than an idle machine would give (the CPU time per"
                " reading is less sensitive to that)."
                if busy > 0.05
                else "."
            )
        )
    if results.drain is not None:
        notes.append(
            f"The PostgreSQL server ran {results.drain_checkpoints} checkpoint(s) during the"
            f" drain and {results.latency_checkpoints} during the latency phase; each flushes"
            " dirty pages and slows commits meanwhile (on a shared server, every DROP DATABASE"
            " of a test suite asks for one)."
        )
    cpu = results.latency_cpu
    if cpu is not None:
        notes.append(
            f"During the latency phase the worker used {cpu.ingest / cpu.wall:.0%} of one core,"
            f" PostgreSQL {cpu.postgres / cpu.wall:.0%}, Mosquitto {cpu.mosquitto / cpu.wall:.0%},"
            f" the benchmark's publisher and listener {cpu.bench / cpu.wall:.0%}; other work"
            f" {cpu.others / (cpu.wall * cpu.cores):.0%} of the machine; autovacuum or"
            f" autoanalyze ran on readings {results.latency_autovacuum} time(s) meanwhile."
        )
    return notes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--server-url",
        default=os.environ.get("HEIMVAKT_BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
        help="PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument("--readings", type=int, default=300_000, help="backlog for the worker")
    parser.add_argument("--naive-readings", type=int, default=20_000, help="0 skips the baseline")
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--publishers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--steady-rate", type=float, default=1000.0, help="readings per second")
    parser.add_argument("--steady-seconds", type=float, default=30.0, help="0 skips it")
    parser.add_argument("--timeout", type=float, default=900.0, help="longest wait for a drain")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the worker with py-spy during the drain into this file (collapsed stacks);"
        " runs the drain only and writes nothing to the docs",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    command = command_line()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cleanup below runs
    workdir = Path(tempfile.mkdtemp(prefix="heimvakt-bench-"))
    failed = True
    try:
        with contextlib.ExitStack() as stack:
            results = run(options, stack, workdir)
        check_outcomes(results)
        print_results(results)
        if not options.profile and not options.no_write:
            info = machine(options.server_url)
            write_section(options.output, section(results, info, command))
            print(f"written to {options.output}")
        failed = False
    finally:
        if failed:
            print(f"the benchmark failed; logs are in {workdir}", file=sys.stderr)
            for log in sorted(workdir.glob("*.log")):
                print(f"--- {log.name}\n{log_tail(log)}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def command_line() -> str:
    """The command as it was given, as Markdown for the docs."""
    if len(sys.argv) == 1:
        return "`make bench-ingest` (`.venv/bin/python -m bench.ingest`)"
    return f"`{shlex.join(['.venv/bin/python', '-m', 'bench.ingest', *sys.argv[1:]])}`"


if __name__ == "__main__":
    sys.exit(main())
