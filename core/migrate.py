"""Numbered plain-SQL migrations, applied in order and recorded in ``schema_migrations``.

A file ``NNNN_name.sql`` may start with directive comments:

- ``-- heimvakt: no-transaction``: run outside a transaction (one statement per file), for
  statements PostgreSQL refuses inside one (``CREATE INDEX CONCURRENTLY``, continuous aggregates).
- ``-- heimvakt: requires timescaledb``: apply only when the extension is installed. Such a file
  is not recorded when skipped, so it is applied later if TimescaleDB is added to the server.

Applied files must not change: a changed checksum stops the migration.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6865696D  # "heim": one migrator at a time per database


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    transactional: bool
    requires_timescaledb: bool

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def summary(self) -> str:
        """The file's first comment line that is not a directive: what it does, in a sentence."""
        for line in self.sql.splitlines():
            if line.startswith("--") and not line.startswith("-- heimvakt:"):
                return line.removeprefix("--").strip()
        return self.name.replace("_", " ")


@dataclass(slots=True)
class MigrationReport:
    timescaledb_version: str | None
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name {path.name!r} is not NNNN_name.sql")
        text = path.read_text(encoding="utf-8")
        directives = {
            line.removeprefix("-- heimvakt:").strip()
            for line in text.splitlines()
            if line.startswith("-- heimvakt:")
        }
        migrations.append(
            Migration(
                version=int(match[1]),
                name=match[2],
                sql=text,
                transactional="no-transaction" not in directives,
                requires_timescaledb="requires timescaledb" in directives,
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


def migrate(url: str, *, migrations: list[Migration] | None = None) -> MigrationReport:
    """Bring the database at `url` up to date. Safe to run from several processes at once."""
    migrations = load_migrations() if migrations is None else migrations
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            report = MigrationReport(timescaledb_version=None)
            report.timescaledb_version = _ensure_timescaledb(conn, report.problems)
            conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            applied: dict[int, str] = dict(
                conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            )
            for migration in migrations:
                label = migration.label
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        raise MigrationError(f"{label} changed after it was applied")
                    continue
                if migration.requires_timescaledb and report.timescaledb_version is None:
                    report.skipped.append(label)
                    continue
                _apply(conn, migration)
                report.applied.append(label)
            return report
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    record = sql.SQL(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ({}, {}, {})"
    ).format(
        sql.Literal(migration.version), sql.Literal(migration.name), sql.Literal(migration.checksum)
    )
    body = sql.SQL(migration.sql)  # not a literal, but trusted: files shipped with the code
    if migration.transactional:
        with conn.transaction():
            conn.execute(body)
            conn.execute(record)
    else:
        conn.execute(body)
        conn.execute(record)


@dataclass(frozen=True, slots=True)
class TimescaleStatus:
    available: bool
    """The server has the extension's files."""
    preloaded: bool
    """It is in shared_preload_libraries, without which it cannot be created."""
    version: str | None
    """The version created in this database, if any."""


def timescaledb_status(conn: psycopg.Connection) -> TimescaleStatus:
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
               current_setting('shared_preload_libraries') ~ '(^|[ ,])timescaledb($|[ ,])',
               (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')
        """
    ).fetchone()
    assert row is not None
    return TimescaleStatus(available=row[0], preloaded=row[1], version=row[2])


def pending_migrations(
    conn: psycopg.Connection, migrations: list[Migration] | None = None
) -> list[Migration]:
    """The migrations not yet applied (TimescaleDB-only ones included)."""
    migrations = load_migrations() if migrations is None else migrations
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    applied = set()
    if exists is not None and exists[0]:
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [m for m in migrations if m.version not in applied]


TIMESCALEDB_NOT_PRELOADED = (
    "timescaledb is installed but not in shared_preload_libraries: running on plain "
    "PostgreSQL (add it and restart the server to use hypertables)"
)


def _ensure_timescaledb(conn: psycopg.Connection, problems: list[str]) -> str | None:
    """Create the extension when the server offers it; plain PostgreSQL mode otherwise.

    Creating it without the preload ends the session with a FATAL error, so that is checked
    first and reported as a problem instead.
    """
    status = timescaledb_status(conn)
    if status.version is not None or not status.available:
        return status.version
    if not status.preloaded:
        problems.append(TIMESCALEDB_NOT_PRELOADED)
        return None
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as error:
        problems.append(f"timescaledb could not be created: {error.diag.message_primary or error}")
    return timescaledb_status(conn).version
