"""TimescaleDB's background jobs are watched: a failing one is a problem for `heimvakt doctor`
and visible in `/metrics`, with each job's last successful run.

Where TimescaleDB is absent (CI), its job views are stood in for by tables of the same names
and columns in a schema of the same name, filled as TimescaleDB 2.28 fills them after the
compression policy failed on PostgreSQL 15.20.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from typer.testing import CliRunner

from core.migrate import timescaledb_status
from core.timescale_jobs import job_health
from heimvakt.cli import app
from tests.heimvakt.conftest import MakeClient

TOKEN = "a-long-random-metrics-token"
SUCCEEDED_AT = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)

STAND_IN = """
CREATE SCHEMA timescaledb_information;
CREATE TABLE timescaledb_information.jobs (
    job_id integer, application_name name, proc_name name, hypertable_name name,
    scheduled boolean);
CREATE TABLE timescaledb_information.job_stats (
    job_id integer, last_run_status text, last_successful_finish timestamptz,
    total_runs bigint, total_failures bigint);
CREATE TABLE timescaledb_information.job_errors (
    job_id integer, finish_time timestamptz, err_message text);
INSERT INTO timescaledb_information.jobs VALUES
    (1000, 'Compression Policy [1000]', 'policy_compression', 'readings', true),
    (1001, 'Retention Policy [1001]', 'policy_retention', 'readings', true),
    (1002, 'Disabled Job [1002]', 'policy_retention', 'readings', false);
INSERT INTO timescaledb_information.job_stats VALUES
    (1000, 'Failed', '-infinity', 15, 15),
    (1001, 'Success', '2026-11-29 03:00+00', 3, 0);
INSERT INTO timescaledb_information.job_errors VALUES
    (1000, '2026-11-29 01:00+00', 'cannot drop portal'),
    (1000, '2026-11-29 02:00+00', 'cannot drop portal');
"""


@pytest.fixture
def stand_in(conn: psycopg.Connection) -> None:
    if timescaledb_status(conn).version is not None:
        pytest.skip("TimescaleDB is here: its own views are read (test_the_real_jobs_are_read)")
    conn.execute(STAND_IN)


@pytest.mark.usefixtures("stand_in")
def test_doctor_names_the_failing_job_and_its_error(
    monkeypatch: pytest.MonkeyPatch, database_url: str, mqtt_server_url: str
) -> None:
    monkeypatch.setenv("HEIMVAKT_DATABASE_URL", database_url)
    monkeypatch.setenv("HEIMVAKT_MQTT_URL", mqtt_server_url)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "TimescaleDB jobs:" in result.output
    assert (
        "Compression Policy [1000] (policy_compression, readings): last success never;"
        " 15 runs, 15 failed; last error: cannot drop portal"
    ) in result.output
    assert (
        "Retention Policy [1001] (policy_retention, readings): last success"
        " 2026-11-29T03:00:00+00:00; 3 runs, 0 failed"
    ) in result.output
    assert "Disabled Job" not in result.output
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert problems == [
        "problem: TimescaleDB job Compression Policy [1000] failed its last run (15 of 15 runs"
        " failed): cannot drop portal; docs/deploy.md names the versions known to run the jobs"
    ]


@pytest.mark.usefixtures("stand_in")
def test_metrics_show_failures_and_the_last_success_of_each_job(make_client: MakeClient) -> None:
    text = (
        make_client(metrics_token=TOKEN)
        .get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        .text
    )
    labels = 'hypertable="readings",job="{}",proc="{}"'
    compression = labels.format("Compression Policy [1000]", "policy_compression")
    retention = labels.format("Retention Policy [1001]", "policy_retention")
    assert f"heimvakt_timescaledb_job_failures_total{{{compression}}} 15.0" in text
    assert f"heimvakt_timescaledb_job_failing{{{compression}}} 1.0" in text
    assert f"heimvakt_timescaledb_job_failing{{{retention}}} 0.0" in text
    success = f"heimvakt_timescaledb_job_last_success_timestamp_seconds{{{retention}}} "
    [value] = [line.removeprefix(success) for line in text.splitlines() if line.startswith(success)]
    assert float(value) == SUCCEEDED_AT.timestamp()
    assert f"heimvakt_timescaledb_job_last_success_timestamp_seconds{{{compression}}}" not in text


def test_without_timescaledb_there_is_nothing_to_report(conn: psycopg.Connection) -> None:
    if timescaledb_status(conn).version is not None:
        pytest.skip("TimescaleDB is here")
    assert job_health(conn) == []


def test_the_real_jobs_are_read(conn: psycopg.Connection) -> None:
    if timescaledb_status(conn).version is None:
        pytest.skip("needs TimescaleDB; the stand-in tables are tested above")
    jobs = {job.proc: job for job in job_health(conn)}
    assert jobs["policy_compression"].hypertable == "readings"
