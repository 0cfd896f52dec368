"""Connections to PostgreSQL (plain or TimescaleDB) through psycopg 3."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool


def open_pool(url: str, *, size: int, name: str = "heimvakt") -> ConnectionPool:
    """A pool that checks a connection before lending it, so a restarted server heals by itself."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        name=name,
        open=True,
        check=ConnectionPool.check_connection,
        kwargs={"application_name": name},
    )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    postgres_version: str
    timescaledb_version: str | None
    synchronous_commit: str

    @property
    def mode(self) -> str:
        return "timescaledb" if self.timescaledb_version else "postgresql"


def server_info(conn: psycopg.Connection) -> ServerInfo:
    row = conn.execute(
        """
        SELECT current_setting('server_version'),
               (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
               current_setting('synchronous_commit')
        """
    ).fetchone()
    assert row is not None
    return ServerInfo(
        postgres_version=row[0], timescaledb_version=row[1], synchronous_commit=row[2]
    )
