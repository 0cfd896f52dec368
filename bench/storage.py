"""Storage benchmark: bytes per stored reading before and after TimescaleDB's compression, a
patient's 30 and 365 days read back, and retention on compressed chunks over simulated days.

Run by ``python -m bench.storage --server-url URL`` against a server with TimescaleDB in
``shared_preload_libraries`` (on plain PostgreSQL it reports the uncompressed figures and runs
retention's plain path). The shape is issue 19's: 600 pulse oximeters (SpO2 and pulse) and 400
blood-pressure cuffs (systolic and diastolic), one patient each, every device measuring about
every 86 minutes, at second precision and two minutes either side of its schedule, each reading
received 1-30 s after it was measured: 1,000,000 readings over 30 days. Readings are written
with the columns ingest writes; sizes come from ``hypertable_detailed_size`` (table, indexes
and TOAST; with compression, of the compressed chunks), and per column from the compressed
chunks' rows. Reads are timed in a second database of the same shape where twenty more
patients have the same for 365 days.

The retention run then starts a database of 1,000 such patients and lives through 60 days: each
day's readings are stored, chunks older than a week are compressed (so the retention cut always
falls in compressed data), and ``care.retention.do_apply_retention`` keeps 30 days. Every day
must succeed and leave nothing older than the cut plus one chunk. At its end one patient is
erased and another anonymised, on compressed chunks. Figures go into the "Storage" section of
docs/benchmarks.md; ``--smoke`` runs small numbers and writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg

from bench.harness import (
    Checks,
    Naming,
    bench_database,
    bench_main,
    bench_parser,
    percentile,
)
from care.retention import do_apply_retention
from care.rights import do_forget_patient
from core.migrate import timescaledb_status
from core.readings import readings_for_patient

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
EVERY = 5184
"""Seconds between a device's measurements: 500 in 30 days."""


@dataclass(frozen=True, slots=True)
class Sizes:
    devices: int
    days: int
    long_patients: int
    rounds: int
    retention_patients: int
    retention_days: int


FULL = Sizes(
    devices=1000, days=30, long_patients=20, rounds=20, retention_patients=1000, retention_days=60
)
SMOKE = Sizes(
    devices=20, days=10, long_patients=2, rounds=2, retention_patients=10, retention_days=40
)

# Devices numbered from `first`: the first 60 % oximeters, the rest cuffs, one patient each.
READINGS = """
INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, received_at)
SELECT 'device-' || d, c.code, m.at, md5('patient-' || d)::uuid,
       CASE c.code WHEN '59408-5' THEN 88 + (random() * 11)::int
                   WHEN '8867-4' THEN 55 + (random() * 55)::int
                   WHEN '8480-6' THEN 100 + (random() * 70)::int
                   ELSE 60 + (random() * 40)::int END,
       c.unit, m.at + make_interval(secs => 1 + (random() * 29)::int)
  FROM generate_series(%(first)s, %(last)s) d
 CROSS JOIN LATERAL (
       SELECT date_trunc('second', %(start)s::timestamptz + k * %(every)s * interval '1 second'
                         + (random() * 240 - 120) * interval '1 second') AS at
         FROM generate_series(0, %(count)s - 1) k) m
 CROSS JOIN LATERAL (
       SELECT * FROM (VALUES ('59408-5', '%%', true), ('8867-4', '/min', true),
                             ('8480-6', 'mm[Hg]', false), ('8462-4', 'mm[Hg]', false))
                      AS v(code, unit, oximeter)
        WHERE v.oximeter = (d %% 10 < 6)) c
 WHERE m.at < %(end)s
"""


def patient_of(device: int) -> UUID:
    return UUID(bytes=hashlib.md5(f"patient-{device}".encode()).digest())


def store_days(
    conn: psycopg.Connection, *, first: int, last: int, start: datetime, end: datetime
) -> None:
    span = int((end - start).total_seconds())
    with psycopg.ClientCursor(conn) as cur:
        cur.execute(
            READINGS,
            {
                "first": first,
                "last": last,
                "start": start,
                "end": end,
                "every": EVERY,
                "count": span // EVERY + 2,
            },
        )


@dataclass(slots=True)
class Footprint:
    readings: int
    total: float
    table: float
    indexes: float
    toast: float
    columns: dict[str, float] = field(default_factory=dict)


def footprint(conn: psycopg.Connection, *, timescale: bool) -> Footprint:
    """Bytes per reading of the readings table, its indexes and TOAST."""
    count = conn.execute("SELECT count(*) FROM readings").fetchone()[0]  # type: ignore[index]
    if timescale:
        row = conn.execute(
            "SELECT total_bytes, table_bytes, index_bytes, toast_bytes"
            " FROM hypertable_detailed_size('readings')"
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT pg_total_relation_size('readings'), pg_relation_size('readings'),"
            " pg_indexes_size('readings'), coalesce(pg_total_relation_size(reltoastrelid), 0)"
            " FROM pg_class WHERE oid = 'readings'::regclass"
        ).fetchone()
    assert row is not None
    total, table, indexes, toast = (value or 0 for value in row)
    return Footprint(count, total / count, table / count, indexes / count, toast / count)


def compressed_columns(conn: psycopg.Connection, readings: int) -> dict[str, float]:
    """Bytes per reading of each column of the compressed chunks (metadata columns summed)."""
    chunks = [
        row[0]
        for row in conn.execute(
            "SELECT format('%I.%I', c.schema_name, c.table_name)"
            " FROM _timescaledb_catalog.chunk c"
            " JOIN _timescaledb_catalog.chunk o ON o.compressed_chunk_id = c.id"
            " JOIN _timescaledb_catalog.hypertable h ON h.id = o.hypertable_id"
            " WHERE h.table_name = 'readings'"
        )
    ]
    sums: dict[str, float] = {}
    for chunk in chunks:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped",
                (chunk,),
            )
        ]
        sizes = ", ".join(f'coalesce(sum(pg_column_size("{c}")), 0)' for c in columns)
        row = conn.execute(f"SELECT {sizes} FROM {chunk}").fetchone()
        assert row is not None
        for column, size in zip(columns, row, strict=True):
            name = "metadata" if column.startswith("_ts_meta") else column
            sums[name] = sums.get(name, 0) + size / readings
    return dict(sorted(sums.items(), key=lambda item: -item[1]))


def time_reads(
    conn: psycopg.Connection, patients: Sequence[UUID], *, days: int, rounds: int
) -> list[float]:
    """Seconds for one patient's readings of the last `days`, each patient `rounds` times."""
    timed = []
    for round_ in range(rounds + 1):
        for patient in patients:
            started = time.perf_counter()
            found = readings_for_patient(conn, patient_id=patient, since=NOW - timedelta(days=days))
            if round_:  # the first round warms the caches
                timed.append(time.perf_counter() - started)
            assert found, "a patient had no readings"
    return timed


@dataclass(slots=True)
class RetentionRun:
    days: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    chunks_dropped: int = 0
    overdue_days: float = 0.0
    """Most days a reading outlived its cut, after any day's run."""
    erase_seconds: float = 0.0
    anonymise_seconds: float = 0.0
    anonymised: int = 0


def retention_run(database_url: str, sizes: Sizes, *, timescale: bool) -> RetentionRun:
    run = RetentionRun()
    keep = timedelta(days=30)
    start = NOW - timedelta(days=sizes.retention_days)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for day in range(sizes.retention_days):
            day_start = start + timedelta(days=day)
            now = day_start + timedelta(days=1)
            store_days(conn, first=1, last=sizes.retention_patients, start=day_start, end=now)
            if timescale:
                conn.execute(
                    "SELECT compress_chunk(c, if_not_compressed => true)"
                    " FROM show_chunks('readings', older_than => %s::timestamptz) c",
                    (now - timedelta(days=7),),
                )
            started = time.perf_counter()
            try:
                retained = do_apply_retention(conn, now=now, keep=keep)
            except psycopg.Error as error:
                run.failures.append(f"day {day + 1}: {error}")
                continue
            run.seconds.append(time.perf_counter() - started)
            run.chunks_dropped += retained.chunks_dropped
            oldest = conn.execute("SELECT min(measured_at) FROM readings").fetchone()[0]  # type: ignore[index]
            if oldest is not None:
                overdue = (now - keep - oldest).total_seconds() / 86400
                run.overdue_days = max(run.overdue_days, overdue)
            run.days += 1
        erased, anonymised = patient_of(1), patient_of(2)
        started = time.perf_counter()
        do_forget_patient(conn, patient_id=erased, anonymise=False)
        run.erase_seconds = time.perf_counter() - started
        started = time.perf_counter()
        run.anonymised = do_forget_patient(conn, patient_id=anonymised, anonymise=True)
        run.anonymise_seconds = time.perf_counter() - started
        left = conn.execute(
            "SELECT count(*) FROM readings WHERE patient_id = ANY(%s)", ([erased, anonymised],)
        ).fetchone()[0]  # type: ignore[index]
        if left:
            run.failures.append(f"{left} readings of the erased and anonymised patients remain")
    return run


@dataclass(slots=True)
class Outcome:
    versions: str
    timescale: bool
    before: Footprint
    after: Footprint | None
    reads: dict[tuple[str, int], list[float]]
    retention: RetentionRun


def measure_bytes(
    database_url: str, sizes: Sizes, *, timescale: bool
) -> tuple[Footprint, Footprint | None]:
    """The shape alone: bytes per reading as stored, and compressed."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        store_days(
            conn, first=1, last=sizes.devices, start=NOW - timedelta(days=sizes.days), end=NOW
        )
        conn.execute("VACUUM ANALYZE readings")
        before = footprint(conn, timescale=timescale)
        if not timescale:
            return before, None
        conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('readings') c")
        conn.execute("VACUUM ANALYZE readings")
        after = footprint(conn, timescale=True)
        after.columns = compressed_columns(conn, after.readings)
        return before, after


def measure_reads(
    database_url: str, sizes: Sizes, *, timescale: bool
) -> dict[tuple[str, int], list[float]]:
    """The shape and the patients followed for a year: their 30 and 365 days read back, as
    stored and (TimescaleDB) compressed."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        store_days(
            conn, first=1, last=sizes.devices, start=NOW - timedelta(days=sizes.days), end=NOW
        )
        first, last = sizes.devices + 1, sizes.devices + sizes.long_patients
        store_days(conn, first=first, last=last, start=NOW - timedelta(days=365), end=NOW)
        conn.execute("VACUUM ANALYZE readings")
        patients = [patient_of(d) for d in range(first, last + 1)]
        states = ["stored"] + (["compressed"] if timescale else [])
        reads = {}
        for state in states:
            if state == "compressed":
                conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('readings') c")
                conn.execute("VACUUM ANALYZE readings")
            for days in (30, 365):
                reads[state, days] = time_reads(conn, patients, days=days, rounds=sizes.rounds)
        return reads


def measure(urls: Sequence[str], sizes: Sizes, checks: Checks) -> Outcome:
    bytes_url, reads_url, retention_url = urls
    with psycopg.connect(bytes_url, autocommit=True) as conn:
        timescale = timescaledb_status(conn).version is not None
        versions = conn.execute(
            "SELECT current_setting('server_version'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')"
        ).fetchone()
        assert versions is not None
    before, after = measure_bytes(bytes_url, sizes, timescale=timescale)
    checks.expect(before.readings > 0, "no readings were stored")
    reads = measure_reads(reads_url, sizes, timescale=timescale)
    retention = retention_run(retention_url, sizes, timescale=timescale)
    for failure in retention.failures:
        checks.expect(False, f"retention: {failure}")
    checks.expect(
        retention.overdue_days <= 7.0 + 1 / 24,
        f"a reading outlived its cut by {retention.overdue_days:.1f} days",
    )
    label = f"PostgreSQL {versions[0]}" + (
        f", TimescaleDB {versions[1]}" if versions[1] else ", no TimescaleDB"
    )
    return Outcome(label, timescale, before, after, reads, retention)


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered) * 1000:.1f} / {percentile(ordered, 0.95) * 1000:.1f}"


def report(outcome: Outcome, sizes: Sizes, checks: Checks, *, measured: str, line: str) -> str:
    before, after, run = outcome.before, outcome.after, outcome.retention
    rows = [
        f"| Uncompressed | {before.total:.1f} | {before.table:.1f} | {before.indexes:.1f} |"
        f" {before.toast:.1f} |"
    ]
    if after is not None:
        rows.append(
            f"| Compressed | {after.total:.2f} | {after.table:.2f} | {after.indexes:.2f} |"
            f" {after.toast:.2f} |"
        )
    columns = (
        ", ".join(f"{name} {size:.2f}" for name, size in after.columns.items())
        if after is not None
        else ""
    )
    reads = [
        f"| {state}, {days} days | {_ms(values)} |"
        for (state, days), values in outcome.reads.items()
    ]
    return "\n".join(
        [
            "## Storage",
            "",
            measured,
            "",
            line,
            "",
            f"{outcome.versions}. {before.readings:,} readings: {sizes.devices:,} devices (60 %"
            f" pulse oximeters, SpO2 and pulse; 40 % blood-pressure cuffs) over {sizes.days}"
            " days, one patient each, a measurement about every 86 minutes (two minutes either"
            " side, second precision), each received 1-30 s after it was measured"
            " (bench/storage.py describes the shape). Bytes from `hypertable_detailed_size`"
            " (TimescaleDB) or the table's relation sizes, all chunks compressed for the second"
            " row.",
            "",
            "| Bytes per reading | Total | Table | Indexes | TOAST |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
            *(
                [f"Compressed, bytes per reading by column: {columns}.", ""]
                if after is not None
                else []
            ),
            f"One patient's readings read back (`core.readings.readings_for_patient`) in a"
            f" database of the same shape with {sizes.long_patients} more patients followed for"
            f" 365 days, each of those {sizes.rounds} times after one warm-up round:",
            "",
            "| Read | Median / p95 (ms) |",
            "| --- | --- |",
            *reads,
            "",
            f"Retention over {sizes.retention_days} simulated days, {sizes.retention_patients:,}"
            " patients of the same shape, 30 days kept"
            + (
                ", chunks older than a week compressed before each day's run"
                if outcome.timescale
                else ""
            )
            + f": {run.days} of {sizes.retention_days} days succeeded;"
            f" {run.chunks_dropped} chunks dropped; each run"
            f" {_ms(run.seconds) if run.seconds else '-'} ms (median / p95); at most"
            f" {run.overdue_days:.1f} days between a reading's cut and its removal. Erasing one"
            f" patient{' on compressed chunks' if outcome.timescale else ''} took"
            f" {run.erase_seconds * 1000:.0f} ms; anonymising"
            f" another ({run.anonymised:,} readings) {run.anonymise_seconds * 1000:.0f} ms.",
            "",
            *[f"{warning}\n" for warning in checks.warnings],
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    def section(
        stack: contextlib.ExitStack, options: argparse.Namespace, checks: Checks, naming: Naming
    ) -> str:
        sizes = SMOKE if options.smoke else FULL
        urls = [stack.enter_context(bench_database(options.server_url)) for _ in range(3)]
        outcome = measure(urls, sizes, checks)
        return report(outcome, sizes, checks, measured=naming.measured(), line=naming.machine())

    return bench_main(
        module="bench.storage",
        target="bench-storage",
        heading="Storage",
        parser=bench_parser(__doc__),
        argv=argv,
        section=section,
    )


if __name__ == "__main__":
    sys.exit(main())
