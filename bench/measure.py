"""How the benchmarks observe: commits counted in the database, commit times by LISTEN, and the
CPU and memory of each process (from the kernel, so no product code is involved)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil
import psycopg
from psycopg import sql

from bench.harness import PhaseBroken, quantiles
from bench.load import paced_publish

INGEST_APPLICATION = "heimvakt-ingest"
"""The application_name of the worker's database connections (core.db.open_pool)."""
NOTIFY_CHANNEL = "bench_commit"


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
        """Readings per second from the first committed rows on (start-up excluded); the
        whole rate when everything was seen committed at once (a drain shorter than a poll)."""
        if self.done <= self.first_seen:
            return self.rate
        return (self.count - self.first_count) / (self.done - self.first_seen)


def wait_committed(
    conn: psycopg.Connection,
    count: int,
    *,
    started: float,
    timeout: float,
    check: Callable[[], None],
    already: int = 0,
) -> Drain:
    """Poll ``count(*)`` until `count` readings beyond the `already` there (seeded history) are
    committed.

    Each observation is stamped before its query, whose snapshot can only hold rows committed
    by then. Polling is every 50 ms until the first rows and near the end, and rarer while
    the table grows, so the end is seen within about 50 ms at a small cost to the database.
    """
    first: tuple[float, int] | None = None
    polls = 0
    while True:
        observed = time.monotonic()
        committed = count_readings(conn) - already
        polls += 1
        if first is None and committed > 0:
            first = (observed, committed)
        if committed >= count:
            assert first is not None
            return Drain(count, started, first[0], first[1], observed, polls)
        if observed - started > timeout:
            raise PhaseBroken(f"{committed:,} of {count:,} readings committed after {timeout}s")
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

    Its backends (the workers', the benchmark's polling one, autovacuum on it) and the shared
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
    """The ingest worker processes."""
    postgres: float
    mosquitto: float
    bench: float
    """This process: polling, RSS sampling, and in the latency phase publishing and listening."""
    others: float
    """Every other process alive at the end of the interval (other work, kernel threads)."""

    @property
    def others_share(self) -> float:
        """What other work took of the whole machine meanwhile."""
        return self.others / (self.wall * self.cores)


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

    def measure(self, worker_pids: Sequence[int]) -> CpuUse:
        """CPU seconds since the meter started (processes started since: all they used)."""
        postgres_now = serving_processes(self._conn)
        now = all_processes()

        def used(pid: int) -> float:
            return now.get(pid, 0.0) - self._before.get(pid, 0.0)

        ours = {*worker_pids, self._mosquitto_pid, os.getpid(), *postgres_now}
        return CpuUse(
            wall=time.monotonic() - self._started,
            cores=psutil.cpu_count() or 1,
            ingest=sum(used(pid) for pid in worker_pids),
            postgres=sum(used(pid) for pid in postgres_now),
            mosquitto=used(self._mosquitto_pid),
            bench=used(os.getpid()),
            others=sum(used(pid) for pid in now if pid not in ours),
        )


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


# --- Publish-to-commit latency -------------------------------------------------------------


def add_notify_trigger(conn: psycopg.Connection, *, table: str, column: str, channel: str) -> None:
    """A trigger on `table` that only sends `column` of each inserted row on `channel`: the
    notification reaches listeners when the row's transaction commits. Benchmark database only."""
    name = sql.Identifier(f"bench_notify_{table}")
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " PERFORM pg_notify({channel}, NEW.{column}::text); RETURN NULL; END $$;"
            " CREATE TRIGGER {name} AFTER INSERT ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION {name}()"
        ).format(
            name=name,
            channel=sql.Literal(channel),
            column=sql.Identifier(column),
            table=sql.Identifier(table),
        )
    )


def drop_notify_trigger(conn: psycopg.Connection, *, table: str) -> None:
    name = sql.Identifier(f"bench_notify_{table}")
    conn.execute(
        sql.SQL("DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}()").format(
            name=name, table=sql.Identifier(table)
        )
    )


class CommitListener:
    """LISTENs in a thread and stamps each payload (a msg_id, a patient) when the first
    notification carrying it arrives, which PostgreSQL sends at the commit of its row."""

    def __init__(self, database_url: str, channel: str = NOTIFY_CHANNEL) -> None:
        self._conn = psycopg.connect(database_url, autocommit=True)
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self.committed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for note in self._conn.notifies(timeout=0.2):
                self.committed.setdefault(note.payload, time.monotonic())

    def wait_for(self, msg_ids: Sequence[str], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(m not in self.committed for m in msg_ids):
            time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


@dataclass(frozen=True, slots=True)
class Latency:
    published: int
    committed: int
    publish_seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def measure_latency(
    database_url: str,
    broker_url: str,
    prefix: str,
    devices: Sequence[str],
    *,
    rate: float,
    seconds: float,
) -> Latency:
    """Publish-to-commit times of readings published at a steady rate to a running worker.

    A message's id is recorded (`ingest_messages`) in the transaction that stores its reading,
    so its notification comes with that commit. The notify trigger exists only meanwhile, so
    it costs the drains nothing.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        add_notify_trigger(conn, table="ingest_messages", column="msg_id", channel=NOTIFY_CHANNEL)
    listener = CommitListener(database_url)
    try:
        started = time.monotonic()
        sent = paced_publish(broker_url, prefix, devices, rate=rate, seconds=seconds)
        publish_seconds = time.monotonic() - started
        listener.wait_for(list(sent), timeout=30)
    finally:
        listener.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            drop_notify_trigger(conn, table="ingest_messages")
    latencies = [
        (listener.committed[m] - t) * 1000 for m, t in sent.items() if m in listener.committed
    ]
    if not latencies:
        raise PhaseBroken("no published reading was seen committed")
    p50, p99, worst = quantiles(latencies)
    return Latency(len(sent), len(latencies), publish_seconds, p50, p99, worst)
