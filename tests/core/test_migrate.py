"""Migrations: ordered, recorded once, immutable once applied, and TimescaleDB only when present."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from core.migrate import MigrationError, load_migrations, migrate


def test_every_shipped_migration_is_numbered_in_order_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_a_second_run_applies_nothing(database_url: str) -> None:
    report = migrate(database_url)
    assert report.applied == []


def test_plain_postgresql_skips_timescale_only_files_and_does_not_record_them(
    database_url: str, conn: psycopg.Connection
) -> None:
    report = migrate(database_url)
    if report.timescaledb_version is not None:
        pytest.skip("this server has TimescaleDB")
    assert "0005_readings_hypertable" in report.skipped
    recorded = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    assert "readings_hypertable" not in recorded


def test_a_changed_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    for migration in load_migrations():
        (tmp_path / f"{migration.version:04d}_{migration.name}.sql").write_text(migration.sql)
    first = tmp_path / "0001_care.sql"
    first.write_text(first.read_text() + "\n-- edited after release\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(database_url, migrations=load_migrations(tmp_path))


def test_a_no_transaction_file_runs_outside_a_transaction(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_concurrent_index.sql").write_text(
        "-- heimvakt: no-transaction\n"
        "CREATE INDEX CONCURRENTLY quarantine_detail ON quarantine (detail);\n"
    )
    report = migrate(database_url, migrations=load_migrations(tmp_path)[:0])
    assert report.applied == []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = 1")
    report = migrate(database_url, migrations=load_migrations(tmp_path))
    assert report.applied == ["0001_concurrent_index"]


@pytest.mark.timescaledb
def test_readings_is_a_compressed_hypertable_when_timescaledb_is_present(
    timescaledb: str, conn: psycopg.Connection
) -> None:
    row = conn.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = 'readings'"
    ).fetchone()
    assert row == (True,)
    policies = conn.execute(
        "SELECT count(*) FROM timescaledb_information.jobs"
        " WHERE hypertable_name = 'readings' AND proc_name = 'policy_compression'"
    ).fetchone()
    assert policies == (1,)


def test_file_names_must_follow_the_pattern(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name"):
        load_migrations(tmp_path)
