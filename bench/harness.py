"""What both benchmarks share: their processes, broker and database, checks and Markdown output.

The benchmarks drive the product only from outside (``python -m heimvakt ingest`` and
``dispatch`` as subprocesses) and observe it only through the database, the broker and the
worker's Prometheus metrics, so they keep working while the code under measurement changes.
"""

from __future__ import annotations

import argparse
import contextlib
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
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from core.migrate import migrate
from tests.processes import MOSQUITTO, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_SERVER_URL = (
    os.environ.get("HEIMVAKT_BENCH_DATABASE_URL")
    or os.environ.get("HEIMVAKT_TEST_DATABASE_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""The server benchmark databases are created on; the tests' server when only that is set, so
the smoke runs in `make test` use what pytest uses."""
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)

SPAWN = multiprocessing.get_context("spawn")
"""Child processes start clean: forking a process that runs paho and psycopg threads is unsafe."""

PIPELINE_TABLES = (
    "readings",
    "ingest_messages",
    "quarantine",
    "device_status",
    "alerts",
    "alert_events",
    "alert_arming",
    "notifications",
)
"""Every table the ingest worker and its rules write; the registry (patients, devices) stays."""


class PhaseBroken(RuntimeError):
    """A phase did not do what it must (a reading lost, a worker dead): its figures mean nothing."""


@dataclass(slots=True)
class Checks:
    """Outcomes a run must show. Strict (smoke) runs stop at the first broken one; a full run
    writes it next to the figures as a warning, so a bad measurement is never silent."""

    strict: bool
    warnings: list[str] = field(default_factory=list)

    def expect(self, ok: bool, message: str) -> None:
        if ok:
            return
        if self.strict:
            raise PhaseBroken(message)
        print(f"WARNING: {message}", flush=True)
        self.warnings.append(f"Warning: {message}")


# --- Processes -----------------------------------------------------------------------------


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

    Persistence off: sessions and queues live in the broker's memory, which is all one run
    needs, and no periodic store write disturbs the timing. With persistence off, a QoS 1
    PUBACK to a publisher means the message is queued for every matching session.
    """
    if MOSQUITTO is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    return Mosquitto(
        workdir,
        persistence=False,
        extra=(
            "max_inflight_messages 1000",
            "set_tcp_nodelay true",  # as deploy/mosquitto/mosquitto.conf recommends
        ),
    )


def scrape(port: int) -> dict[str, float]:
    """A Prometheus text page as {series: value}, series as written (``name{label="v"}``)."""
    url = f"http://127.0.0.1:{port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def metric(series: dict[str, float], name: str, **labels: str) -> float | None:
    """The sum of `name` over the series carrying `labels`; None when no series has that name
    (a metric the worker does not expose, which a benchmark reports rather than fails on)."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    found = [
        value
        for key, value in series.items()
        if key.partition("{")[0] == name and all(w in key for w in wanted)
    ]
    return sum(found) if found else None


class IngestWorker:
    """``python -m heimvakt ingest --metrics-port P``: the worker exactly as an operator runs it."""

    def __init__(self, env: dict[str, str], log: Path, *, port: int) -> None:
        self.log = log
        self.metrics_port = port
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "heimvakt", "ingest", "--metrics-port", str(port)],
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
            raise PhaseBroken(
                f"the ingest worker ended with status {self.process.returncode}:\n"
                + log_tail(self.log)
            )

    def wait_connected(self, timeout: float) -> None:
        """Until its metrics say it is connected, which it sets once the broker has confirmed
        its subscriptions: from then on the broker keeps its session and queues for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError):
                if metric(scrape(self.metrics_port), "heimvakt_ingest_broker_connected") == 1:
                    return
            time.sleep(0.1)
        raise PhaseBroken(f"the ingest worker did not connect within {timeout}s")

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_port)

    def stop(self) -> None:
        stop_process(self.process)


# --- Database ------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_database(server_url: str, *, template: str | None = None) -> Iterator[str]:
    """A fresh, migrated database, dropped afterwards whatever happened; with `template`, a
    copy of that (already migrated) database instead."""
    name = f"heimvakt_bench_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(create)
    try:
        url = make_conninfo(server_url, dbname=name)
        if template is None:
            migrate(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def empty_tables(conn: psycopg.Connection) -> None:
    """Start a phase from nothing the pipeline wrote. CASCADE also empties any table added later
    that references one of these, so a new foreign key cannot make the truncate fail."""
    conn.execute(
        sql.SQL("TRUNCATE {} CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in PIPELINE_TABLES)
        )
    )


@dataclass(frozen=True, slots=True)
class Stored:
    readings: int
    messages: int
    """Messages recorded (`ingest_messages`): in these benchmarks one reading each."""
    quarantined: dict[str, int]
    alerts: int

    @property
    def quarantine_rows(self) -> int:
        return sum(self.quarantined.values())


def stored(conn: psycopg.Connection) -> Stored:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM ingest_messages)"
    ).fetchone()
    assert row is not None
    reasons: dict[str, int] = dict(
        conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason")
    )
    alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()
    assert alerts is not None
    return Stored(row[0], row[1], reasons, alerts[0])


def check_stored(
    checks: Checks, label: str, outcome: Stored, *, readings: int, messages: int
) -> None:
    """Every reading stored once, every message recorded once, and nothing quarantined: the
    data sent is all valid."""
    checks.expect(
        outcome.readings == readings and outcome.messages == messages,
        f"{label}: {outcome.readings:,} readings of {outcome.messages:,} messages stored,"
        f" {readings:,} readings of {messages:,} messages expected",
    )
    checks.expect(not outcome.quarantined, f"{label}: quarantined {outcome.quarantined}")


# --- Figures and Markdown ------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p50, p99 and max; NaN when there are none (shown as such rather than failing a report)."""
    if not values:
        return (math.nan,) * 3
    ordered = sorted(values)
    return percentile(ordered, 0.5), percentile(ordered, 0.99), ordered[-1]


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def code_version() -> str:
    """The commit measured, ``-dirty`` when the tree differs from it (untracked files count:
    a new module is code under measurement too). The figures file itself does not: one
    benchmark writes it before the next one starts."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False, cwd=ROOT
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", ".", ":(exclude)docs/benchmarks.md")
    return commit + ("-dirty" if changed else "")


def machine(server_url: str) -> str:
    """One sentence naming the machine and the versions of what ran on it."""
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
    return (
        f"Machine: {os.cpu_count()} CPUs ({cpu_model}),"
        f" {psutil.virtual_memory().total / 2**30:.1f} GiB memory, Linux {platform.release()};"
        f" PostgreSQL {row[0]} (synchronous_commit={row[1]}, fsync={row[2]});"
        f" {mosquitto[0] if mosquitto else 'mosquitto'}; Python {platform.python_version()}."
        " Broker, database, workers and publishers all ran on this machine."
    )


def measured_line(command: str, version_at_start: str) -> str:
    """Names the run behind every figure of a section: when, how, and at which commit. Other
    people commit while a long run goes on; if the code changed meanwhile, the line says so."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    now = code_version()
    code = (
        f"code at `{now}`"
        if now == version_at_start
        else f"code at `{version_at_start}` when the run began and `{now}` when it ended (it"
        " changed during the run)"
    )
    return f"Every figure below: {code}, measured {when} with {command}."


def command_line(module: str, target: str, argv: Sequence[str]) -> str:
    """The command as it was given, as Markdown for the docs."""
    if not argv:
        return f"`make {target}` (`.venv/bin/python -m {module}`)"
    return f"`{shlex.join(['.venv/bin/python', '-m', module, *argv])}`"


def bench_parser(module_doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark shares: the server, smoke mode, where the section goes."""
    parser = argparse.ArgumentParser(description=(module_doc or "").split("\n\n")[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument(
        "--smoke", action="store_true", help="small numbers, checks only, writes nothing"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-write", action="store_true")
    return parser


def publish(options: argparse.Namespace, text: str, *, heading: str) -> None:
    """Print the section; write it into the output file unless this is a smoke run or told
    not to."""
    print(text)
    if not (options.smoke or options.no_write):
        write_section(options.output, text, heading=heading)
        print(f"written to {options.output}")


def write_section(path: Path, text: str, *, heading: str) -> None:
    """Replace the "## <heading>" section of the file (or add it), leaving other sections be."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n")


@dataclass(frozen=True, slots=True)
class Naming:
    """Names a run in its section: the command and commit, and the machine."""

    command: str
    version_at_start: str
    server_url: str

    def measured(self) -> str:
        """Asked once the figures exist, so a change of code during the run shows."""
        return measured_line(self.command, self.version_at_start)

    def machine(self) -> str:
        return machine(self.server_url)


Section = Callable[[contextlib.ExitStack, argparse.Namespace, Checks, Naming], str]
"""Measures and returns the Markdown section; what it enters on the stack is undone after."""


def bench_main(
    *,
    module: str,
    target: str,
    heading: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    section: Section,
) -> int:
    """The life of an in-process benchmark: parse, measure in a scratch directory, publish."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    options = parser.parse_args(arguments)
    command = command_line(module, target, arguments)

    def body(stack: contextlib.ExitStack, _workdir: Path) -> None:
        naming = Naming(command, code_version(), options.server_url)
        text = section(stack, options, Checks(strict=options.smoke), naming)
        publish(options, text, heading=heading)

    return run_main(module.removeprefix("bench."), body)


def run_main(name: str, body: Callable[[contextlib.ExitStack, Path], None]) -> int:
    """Run a benchmark in a scratch directory: everything it registers on the stack is stopped
    (also on SIGTERM or a failure), and on failure the tails of its logs are printed and the
    exit status is 1, which is what `make test` sees of a broken smoke run."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cleanup below runs
    workdir = Path(tempfile.mkdtemp(prefix=f"heimvakt-bench-{name}-"))
    started = time.monotonic()
    finished = False
    try:
        with contextlib.ExitStack() as stack:
            body(stack, workdir)
        finished = True
    except (PhaseBroken, TimeoutError) as error:
        print(f"bench.{name} FAILED: {error}", file=sys.stderr)
    finally:
        if not finished:
            print(f"logs are in {workdir}", file=sys.stderr)
            for log in sorted(workdir.glob("*.log")):
                print(f"--- {log.name}\n{log_tail(log)}", file=sys.stderr)
    if not finished:
        return 1
    print(f"bench.{name} finished in {time.monotonic() - started:.0f} s", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0
