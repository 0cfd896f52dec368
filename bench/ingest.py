"""Ingest benchmark: backlog drains on two shapes against a naive baseline, steady latency,
CPU per stage, rules over long history, memory over a large backlog, and two workers.

Run by ``make bench-ingest`` (``python -m bench.ingest``). One run starts a Mosquitto of its own
on a free loopback port and creates a database of its own on the machine's PostgreSQL
(``HEIMVAKT_BENCH_DATABASE_URL``, else ``HEIMVAKT_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/postgres``),
seeds patients and devices through the care and device services, and runs these phases (each
on its own topic prefix and client id, from emptied pipeline tables):

- ``naive``: a subscriber doing one INSERT and commit per message drains a backlog (shape A).
- ``drain-a`` / ``drain-b``: ``python -m heimvakt ingest`` (rules on, as operators run it)
  drains a backlog the broker kept in its persistent session: 100 patients with 10 devices
  each (A), and 10,000 patients with one device each (B).
- ``latency``: readings published at 1,000/s for 30 s; publish to commit of each.
- ``history``: the same drain over 1 and over 30 days of history per patient (COPY-seeded),
  to compare the rules' CPU per reading.
- ``rss``: the worker's peak memory draining 1,000,000 readings.
- ``two-workers``: two workers in one shared subscription drain one backlog.

The full run writes the "Ingest" section of docs/benchmarks.md; ``--only`` runs some phases and
only prints; ``--smoke`` runs every phase with small numbers in seconds, judges no target,
writes nothing, and exits 1 if a phase breaks (a reading lost or quarantined, a worker dead).
Everything it starts is stopped and the database dropped, also when a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.harness import (
    DEFAULT_OUTPUT,
    DEFAULT_SERVER_URL,
    Checks,
    IngestWorker,
    PhaseBroken,
    Stored,
    bench_database,
    check_stored,
    code_version,
    command_line,
    empty_tables,
    machine,
    measured_line,
    metric,
    own_mosquitto,
    run_main,
    stored,
    write_section,
)
from bench.ingest_report import STAGES, DrainOutcome, Results, Sizes, print_results, section
from bench.load import backlog_for, publish_backlog, seed, seed_history
from bench.measure import (
    CpuMeter,
    Drain,
    ProcessSampler,
    checkpoints,
    measure_latency,
    wait_committed,
)
from bench.naive import naive_process
from bench.profile import PySpy, summarise_profile
from core.settings import Settings
from heimvakt.embedded import free_port

PHASES = ("naive", "drain-a", "drain-b", "latency", "history", "rss", "two-workers")


FULL = Sizes(
    naive_readings=20_000,
    readings=300_000,
    a_patients=100,
    a_devices=1_000,
    b_patients=10_000,
    steady_rate=1_000.0,
    steady_seconds=30.0,
    history_readings=100_000,
    history_days=(1, 30),
    rss_readings=1_000_000,
    two_worker_readings=300_000,
    publishers=4,
    timeout=900.0,
)
SMOKE = Sizes(
    naive_readings=300,
    readings=3_000,
    a_patients=10,
    a_devices=100,
    b_patients=500,
    steady_rate=200.0,
    steady_seconds=2.0,
    history_readings=2_000,
    history_days=(1, 30),
    rss_readings=5_000,
    two_worker_readings=3_000,
    publishers=2,
    timeout=60.0,
)


@dataclass(slots=True)
class Context:
    """What every phase works with: the services, the seeded devices and the run's choices."""

    sizes: Sizes
    database_url: str
    broker_url: str
    mosquitto_pid: int
    settings: Settings
    workdir: Path
    checks: Checks
    devices_a: list[str]
    devices_b: list[str]
    profile: Path | None


def worker_env(ctx: Context, prefix: str, client_id: str, group: str | None) -> dict[str, str]:
    """A worker's environment: our services, its own topic root and client id, and every
    setting the report names spelled out (the rest as the product's defaults)."""
    settings = ctx.settings
    values = {
        "DATABASE_URL": ctx.database_url,
        "MQTT_URL": ctx.broker_url,
        "MQTT_CLIENT_ID": client_id,
        "MQTT_TOPIC_PREFIX": prefix,
        "INGEST_BATCH_SIZE": settings.ingest_batch_size,
        "INGEST_FLUSH_SECONDS": settings.ingest_flush_seconds,
        "INGEST_QUEUE_SIZE": settings.ingest_queue_size,
        "INGEST_RECEIVE_MAXIMUM": settings.ingest_receive_maximum,
        "INGEST_WRITERS": settings.ingest_writers,
        "INGEST_DEVICE_RATE": settings.ingest_device_rate,
        "INGEST_DEVICE_BURST": settings.ingest_device_burst,
    }
    env = {**os.environ, **{f"HEIMVAKT_{k}": str(v) for k, v in values.items()}}
    env.pop("HEIMVAKT_INGEST_SHARED_GROUP", None)
    if group:
        env["HEIMVAKT_INGEST_SHARED_GROUP"] = group
    return env


@contextlib.contextmanager
def workers(
    ctx: Context, name: str, envs: Sequence[dict[str, str]]
) -> Iterator[list[IngestWorker]]:
    """Ingest workers started now, each with its own metrics port, stopped on the way out."""
    started = [
        IngestWorker(env, ctx.workdir / f"{name}-{n}.log", port=free_port())
        for n, env in enumerate(envs)
    ]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def drain(
    ctx: Context,
    name: str,
    devices: Sequence[str],
    count: int,
    *,
    worker_count: int = 1,
    history_days: int = 0,
) -> DrainOutcome:
    """Workers drain a backlog of `count` readings that the broker holds in their sessions.

    Their sessions are opened first (the workers start, subscribe and stop); the backlog is
    then published and acknowledged; the timed workers start and the clock runs from their
    start until every reading is committed. Metrics are read before they stop.
    """
    prefix = f"bench/{name}"
    group = f"bench-{name}" if worker_count > 1 else None
    envs = [worker_env(ctx, prefix, f"bench-{name}-{n}", group) for n in range(worker_count)]
    backlog = backlog_for(ctx.broker_url, prefix, devices, count)
    with psycopg.connect(ctx.database_url, autocommit=True) as conn:
        empty_tables(conn)
        history = (
            seed_history(conn, devices, days=history_days, until=backlog.first_measured_at)
            if history_days
            else 0
        )
        with workers(ctx, f"{name}-session", envs) as sessions:
            for worker in sessions:
                worker.wait_connected(timeout=30)
        publish_backlog(backlog, publishers=ctx.sizes.publishers)
        meter, checkpoints_before = CpuMeter(conn, ctx.mosquitto_pid), checkpoints(conn)
        started = time.monotonic()
        with workers(ctx, name, envs) as timed, contextlib.ExitStack() as stack:
            samplers = [ProcessSampler(w.pid) for w in timed]
            for sampler in samplers:
                stack.callback(sampler.stop)
            recording = (
                ctx.profile.with_name(f"{ctx.profile.stem}-{name}{ctx.profile.suffix}")
                if ctx.profile
                else None
            )
            spy = PySpy(timed[0].pid, recording) if recording else None

            def alive() -> None:
                for worker in timed:
                    worker.check_alive()

            try:
                done = wait_committed(
                    conn, count, started=started, timeout=ctx.sizes.timeout, check=alive,
                    already=history,
                )  # fmt: skip
            finally:
                profiled = spy.stop() if spy else 0.0
            cpu = meter.measure([w.pid for w in timed])
            time.sleep(0.5)  # anything beyond the backlog (there should be nothing) shows now
            alive()
            scraped = [w.metrics() for w in timed]
        outcome = DrainOutcome(
            label=name,
            drain=done,
            stored=stored(conn),
            history=history,
            cpu=cpu,
            running_cpu=sum(s.cpu_at(done.done) - s.cpu_at(done.first_seen) for s in samplers),
            peak_rss=max(s.peak for s in samplers),
            rss_samples=sum(s.samples for s in samplers),
            stage_cpu={
                stage: _sum(
                    metric(m, "heimvakt_ingest_stage_cpu_seconds_total", stage=stage)
                    for m in scraped
                )
                for stage in STAGES
            },
            disconnects=_sum(
                metric(m, "heimvakt_ingest_broker_disconnects_total") for m in scraped
            ),
            stored_by_worker=[metric(m, "heimvakt_readings_stored_total") for m in scraped],
            checkpoints=checkpoints(conn) - checkpoints_before,
            profile=summarise_profile(recording, profiled, PySpy.RATE)
            if spy and recording and recording.exists()
            else None,
        )
    check_stored(ctx.checks, name, outcome.stored, readings=count + history, messages=count)
    print(f"  {outcome.summary()}", flush=True)
    return outcome


def _sum(values: Iterable[float | None]) -> float | None:
    """The sum over workers, or None when no worker exposes the metric."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def run_naive(ctx: Context) -> tuple[Drain, Stored]:
    """The baseline drains a backlog of its own (shape A), prepared and timed like the worker's."""
    prefix, count = "bench/naive", ctx.sizes.naive_readings
    receive_maximum = ctx.settings.ingest_receive_maximum
    with psycopg.connect(ctx.database_url, autocommit=True) as conn:
        empty_tables(conn)
        with naive_process(ctx.broker_url, prefix, ctx.database_url, receive_maximum) as (_, ok):
            if not ok.wait(timeout=30):
                raise PhaseBroken("the naive subscriber did not subscribe within 30 s")
        publish_backlog(backlog_for(ctx.broker_url, prefix, ctx.devices_a, count),
                        publishers=ctx.sizes.publishers)  # fmt: skip
        started = time.monotonic()
        with naive_process(ctx.broker_url, prefix, ctx.database_url, receive_maximum) as (p, _):

            def check() -> None:
                if not p.is_alive():
                    raise PhaseBroken(f"the naive subscriber ended ({p.exitcode})")

            done = wait_committed(
                conn, count, started=started, timeout=ctx.sizes.timeout, check=check
            )
        time.sleep(0.5)
        outcome = stored(conn)
    # The naive baseline records no messages: one INSERT per message is all it does.
    check_stored(ctx.checks, "naive", outcome, readings=count, messages=0)
    print(f"  naive: {done.running_rate:,.0f} readings/s from the first commit", flush=True)
    return done, outcome


def run_latency(ctx: Context, results: Results) -> None:
    """A running worker, caught up, gets readings at a steady rate: publish to commit of each."""
    env = worker_env(ctx, "bench/latency", "bench-latency", None)
    with psycopg.connect(ctx.database_url, autocommit=True) as conn:
        empty_tables(conn)
        with workers(ctx, "latency", [env]) as (worker,):
            worker.wait_connected(timeout=30)
            meter = CpuMeter(conn, ctx.mosquitto_pid)
            results.latency = measure_latency(
                ctx.database_url, ctx.broker_url, "bench/latency", ctx.devices_a,
                rate=ctx.sizes.steady_rate, seconds=ctx.sizes.steady_seconds,
            )  # fmt: skip
            results.latency_cpu = meter.measure([worker.pid])
            worker.check_alive()
    latency = results.latency
    ctx.checks.expect(
        latency.committed == latency.published,
        f"latency: {latency.published - latency.committed} of {latency.published} live readings"
        " were not seen committed within 30 s",
    )
    print(f"  latency p50/p99/max {latency.p50_ms:.1f}/{latency.p99_ms:.1f}/{latency.max_ms:.1f}"
          " ms", flush=True)  # fmt: skip


def run(options: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path) -> Results:
    sizes: Sizes = options.sizes
    broker = own_mosquitto(workdir)
    broker.start()
    stack.callback(broker.stop)
    database_url = stack.enter_context(bench_database(options.server_url))
    broker_url = broker.url("bench-ingest")
    with psycopg.connect(database_url, autocommit=True) as conn:
        started = time.monotonic()
        devices_a = seed(conn, patients=sizes.a_patients, devices=sizes.a_devices, tag="a")
        devices_b = (
            seed(conn, patients=sizes.b_patients, devices=sizes.b_patients, tag="b")
            if "drain-b" in options.only
            else []
        )
        print(f"seeded in {time.monotonic() - started:.1f} s", flush=True)
    ctx = Context(
        sizes=sizes,
        database_url=database_url,
        broker_url=broker_url,
        mosquitto_pid=broker.pid,
        settings=Settings(database_url=database_url, mqtt_url=broker_url),
        workdir=workdir,
        checks=Checks(strict=options.smoke),
        devices_a=devices_a,
        devices_b=devices_b,
        profile=options.profile,
    )
    results = Results(sizes=sizes, settings=ctx.settings, warnings=ctx.checks.warnings)
    for phase in PHASES:
        if phase not in options.only:
            continue
        print(phase, flush=True)
        phase_started = time.monotonic()
        if phase == "naive":
            results.naive, results.naive_stored = run_naive(ctx)
        elif phase == "drain-a":
            results.a = drain(ctx, "drain-a", devices_a, sizes.readings)
        elif phase == "drain-b":
            results.b = drain(ctx, "drain-b", devices_b, sizes.readings)
        elif phase == "latency":
            run_latency(ctx, results)
        elif phase == "history":
            results.history = [
                drain(ctx, f"history-{days}d", devices_a, sizes.history_readings,
                      history_days=days)
                for days in sizes.history_days
            ]  # fmt: skip
        elif phase == "rss":
            results.rss = drain(ctx, "rss", devices_a, sizes.rss_readings)
        elif phase == "two-workers":
            results.two = drain(
                ctx, "two-workers", devices_a, sizes.two_worker_readings, worker_count=2
            )
        print(f"  {phase} took {time.monotonic() - phase_started:.1f} s", flush=True)
    return results


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--server-url",
        default=DEFAULT_SERVER_URL,
        help="PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument(
        "--only", help=f"comma-separated phases to run (of {', '.join(PHASES)}); prints only"
    )
    parser.add_argument(
        "--smoke", action="store_true",
        help="every phase with small numbers: checks that each works, judges no target, prints",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the first worker of each drain with py-spy (collapsed stacks): FILE-<phase>",
    )
    options = parser.parse_args(argv)
    only = options.only.split(",") if options.only else list(PHASES)
    unknown = set(only) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    options.sizes = SMOKE if options.smoke else FULL
    options.only = only
    # The docs get a section only from a whole run, so each of its figures is of one commit.
    options.write = not (options.smoke or options.no_write or options.only != list(PHASES))
    return options


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    options = parse_args(arguments)
    command = command_line("bench.ingest", "bench-ingest", arguments)

    def body(stack: contextlib.ExitStack, workdir: Path) -> None:
        version = code_version()
        results = run(options, stack, workdir)
        print_results(results)
        if options.write:
            measured = measured_line(command, version)
            text = section(results, machine(options.server_url), measured)
            write_section(options.output, text, heading="Ingest")
            print(f"written to {options.output}")

    return run_main("ingest", body)


if __name__ == "__main__":
    sys.exit(main())
