"""TimescaleDB's background jobs (compression and retention policies), and whether they work.

Why watched: on PostgreSQL 15.20 every background run of the compression policy failed
("cannot drop portal") and nothing said so; chunks stayed uncompressed and retention would
have waited on jobs that never ran. `heimvakt doctor` and `/metrics` report each job's
failures and last successful run from TimescaleDB's own views. Without TimescaleDB there are
no jobs, and nothing is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobHealth:
    job_id: int
    name: str
    """TimescaleDB's name for it, e.g. "Compression Policy [1000]"."""
    proc: str
    hypertable: str | None
    last_status: str | None
    """"Success" or "Failed" for the last finished run; None before the first."""
    last_success: datetime | None
    runs: int
    failures: int
    last_error: str | None

    @property
    def failing(self) -> bool:
        return self.last_status == "Failed"


_JOBS = """
SELECT j.job_id, j.application_name AS name, j.proc_name AS proc,
       j.hypertable_name AS hypertable, s.last_run_status AS last_status,
       -- TimescaleDB says -infinity for "never"
       CASE WHEN s.last_successful_finish > '-infinity' THEN s.last_successful_finish END
           AS last_success,
       coalesce(s.total_runs, 0) AS runs, coalesce(s.total_failures, 0) AS failures,
       (SELECT e.err_message FROM timescaledb_information.job_errors e
         WHERE e.job_id = j.job_id AND e.err_message IS NOT NULL
         ORDER BY e.finish_time DESC LIMIT 1) AS last_error
  FROM timescaledb_information.jobs j
  LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
 WHERE j.scheduled
 ORDER BY j.job_id
"""


def job_health(conn: psycopg.Connection) -> list[JobHealth]:
    """Each scheduled job; empty where TimescaleDB's job views are absent."""
    row = conn.execute(
        "SELECT to_regclass('timescaledb_information.jobs') IS NOT NULL"
        " AND to_regclass('timescaledb_information.job_stats') IS NOT NULL"
        " AND to_regclass('timescaledb_information.job_errors') IS NOT NULL"
    ).fetchone()
    if row is None or not row[0]:
        return []
    with conn.cursor(row_factory=class_row(JobHealth)) as cur:
        return cur.execute(_JOBS).fetchall()


def describe(job: JobHealth) -> str:
    """One line for a person: what the job is and how it has been doing."""
    on = f", {job.hypertable}" if job.hypertable else ""
    success = job.last_success.isoformat(timespec="seconds") if job.last_success else "never"
    line = f"{job.name} ({job.proc}{on}): last success {success}; {job.runs} runs"
    line += f", {job.failures} failed"
    if job.failing and job.last_error:
        line += f"; last error: {job.last_error}"
    return line


class JobCollector(Collector):
    """The jobs' health as Prometheus metrics, read from the database at each scrape."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        try:
            with self._pool.connection(timeout=2) as conn:
                jobs = job_health(conn)
        except (psycopg.Error, PoolTimeout):  # a scrape must not fail for the database's sake
            log.warning("could not read TimescaleDB's jobs for /metrics", exc_info=True)
            return
        labels = ["job", "proc", "hypertable"]
        failures = CounterMetricFamily(
            "heimvakt_timescaledb_job_failures", "Failed runs of a TimescaleDB job", labels=labels
        )
        failing = GaugeMetricFamily(
            "heimvakt_timescaledb_job_failing", "1 when the job's last run failed", labels=labels
        )
        success = GaugeMetricFamily(
            "heimvakt_timescaledb_job_last_success_timestamp_seconds",
            "When the job last finished successfully (absent: never)",
            labels=labels,
        )
        for job in jobs:
            values = [job.name, job.proc, job.hypertable or ""]
            failures.add_metric(values, job.failures)
            failing.add_metric(values, 1 if job.failing else 0)
            if job.last_success is not None:
                success.add_metric(values, job.last_success.timestamp())
        yield from (failures, failing, success)
