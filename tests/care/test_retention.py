"""Retention: readings older than the period go, a few patients per transaction on plain
PostgreSQL and by whole chunks on TimescaleDB, and the weekly counts follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import psycopg
import pytest

from care.retention import do_apply_retention
from care.rights import do_forget_patient
from core.migrate import timescaledb_status
from core.weeks import week_of
from tests.care.conftest import WorldClient
from tests.care.world import MEASURED, World, store_counted

YEAR = timedelta(days=365)


def _mine(conn: psycopg.Connection) -> int:
    """Readings other than those the world was built with."""
    row = conn.execute("SELECT count(*) FROM readings WHERE measured_at <> %s", (MEASURED,))
    return row.fetchone()[0]  # type: ignore[index]


def test_retention_deletes_only_readings_older_than_the_setting(
    world_client: WorldClient, world: World
) -> None:
    now = datetime.now(UTC)
    cut = now - YEAR
    with world_client() as (_client, conn):
        if timescaledb_status(conn).version is not None:
            pytest.skip("on TimescaleDB whole chunks go: test_whole_chunks_go_on_timescaledb")
        for at in (now - timedelta(days=400), cut - timedelta(minutes=1), cut, now):
            store_counted(conn, world, at=at)
        assert do_apply_retention(conn, now=now, keep=YEAR).deleted == 2
        assert _mine(conn) == 2
        # The weekly counts follow: the week cut through is counted again. (The world's own
        # readings, at MEASURED, were written without counting.)
        counted = conn.execute("SELECT week, readings FROM reading_weeks ORDER BY week")
        recounted = conn.execute(
            f"SELECT {week_of('measured_at')}, count(*)::int FROM readings"
            " WHERE measured_at <> %s GROUP BY 1 ORDER BY 1",
            (MEASURED,),
        )
        assert counted.fetchall() == recounted.fetchall()


def test_every_patient_is_reached_a_group_at_a_time_anonymised_readings_too(
    world_client: WorldClient, world: World
) -> None:
    """One patient per transaction here: the walk from group to group must miss nobody,
    including readings kept for statistics under an id no patient has any more."""
    now = datetime.now(UTC)
    old, recent = now - YEAR - timedelta(days=3), now - timedelta(days=1)
    anonymous = uuid4()
    with world_client() as (_client, conn):
        if timescaledb_status(conn).version is not None:
            pytest.skip("on TimescaleDB whole chunks go: test_whole_chunks_go_on_timescaledb")
        for key in ("own", "other_team", "other_org"):
            scenario = world.scenarios[key]
            for at in (old, recent):
                store_counted(conn, world, at=at, patient=scenario.patient, device=scenario.device)
        store_counted(conn, world, at=old, patient=anonymous, device="anonymised-1")
        retained = do_apply_retention(conn, now=now, keep=YEAR, patients_per_transaction=1)
        assert retained.deleted == 4
        assert _mine(conn) == 3
        assert conn.execute(
            "SELECT count(*) FROM readings WHERE measured_at < %s", (old + timedelta(days=1),)
        ).fetchone() == (0,)


def test_whole_chunks_go_on_timescaledb(world_client: WorldClient, world: World) -> None:
    """The cut falls inside a compressed chunk: the chunks before it are dropped, the one it
    falls in is not decompressed (its older readings wait for its end), the retention policy
    holds the period, and erasure and anonymisation still work on compressed chunks."""
    now = datetime.now(UTC)
    keep = timedelta(days=30)
    week = timedelta(days=7)
    other = world.scenarios["other_team"]
    with world_client() as (_client, conn):
        if timescaledb_status(conn).version is None:
            pytest.skip("needs TimescaleDB; plain PostgreSQL is tested above")
        for days in range(60, 0, -1):
            at = now - timedelta(days=days, hours=5)
            store_counted(conn, world, at=at)
            store_counted(conn, world, at=at, patient=other.patient, device=other.device)
        compressed = conn.execute(
            "SELECT count(compress_chunk(c)) FROM show_chunks('readings', older_than => %s) c",
            (now - timedelta(days=10),),
        ).fetchone()[0]  # type: ignore[index]
        assert compressed >= 6
        retained = do_apply_retention(conn, now=now, keep=keep)
        assert retained.chunks_dropped >= 3
        assert retained.waiting_until is not None
        assert now - keep < retained.waiting_until <= now - keep + week
        oldest = conn.execute(
            "SELECT min(measured_at) FROM readings WHERE measured_at <> %s", (MEASURED,)
        ).fetchone()[0]  # type: ignore[index]
        assert now - keep - week <= oldest
        policy = conn.execute(
            "SELECT config ->> 'drop_after' FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_retention'"
        ).fetchall()
        assert policy == [("30 days",)]
        # A week later the chunk cut through has ended and goes whole.
        later = do_apply_retention(conn, now=now + week, keep=keep)
        assert later.chunks_dropped == 1
        # Erasure and anonymisation reach readings in compressed chunks.
        do_forget_patient(conn, patient_id=world.patients["own"], anonymise=False)
        mine = "SELECT count(*) FROM readings WHERE patient_id = %s"
        assert conn.execute(mine, (world.patients["own"],)).fetchone() == (0,)
        kept = do_forget_patient(conn, patient_id=other.patient, anonymise=True)
        assert kept > 20
        assert conn.execute(mine, (other.patient,)).fetchone() == (0,)
