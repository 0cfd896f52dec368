"""The patient's rights: export everything, erase or anonymise on request, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from care.rights import do_apply_retention
from tests.care.conftest import WorldClient
from tests.care.world import World


def _store(conn: psycopg.Connection, world: World, *, at: datetime) -> None:
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, msg_id,"
        " received_at) VALUES (%s, '59408-5', %s, %s, 95, '%%', gen_random_uuid(), %s)",
        (world.scenarios["own"].device, at, world.patients["own"], at),
    )


def test_the_export_holds_the_patients_data_and_who_looked(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        _store(conn, world, at=datetime.now(UTC) - timedelta(hours=1))
        headers = {"Authorization": f"Bearer {world.tokens['patient']}"}
        exported = client.get(f"/api/v1/patients/{own}/export", headers=headers).json()
    assert exported["patient"]["display_name"] == "Pasient own"
    assert len(exported["readings"]) == 1
    assert exported["care_plan"]["template"] == "copd"
    assert exported["access_log"][-1]["resource"] == "patient-export"


def test_erasure_removes_the_person_and_keeps_the_access_log(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        _store(conn, world, at=datetime.now(UTC) - timedelta(hours=1))
        headers = {"Authorization": f"Bearer {world.tokens['coordinator']}"}
        erased = client.post(
            f"/api/v1/patients/{own}/erasure",
            json={"mode": "erase", "reason": "Pasientens ønske"},
            headers=headers,
        )
        assert erased.json()["readings"] == 1
        for table, column in (("patients", "id"), ("readings", "patient_id")):
            count = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = %s", (own,))
            assert count.fetchone() == (0,)
        logged = conn.execute(
            "SELECT action FROM access_log WHERE patient_ids @> ARRAY[%s]::uuid[]", (own,)
        ).fetchall()
    assert ("erase",) in logged


def test_anonymisation_keeps_readings_that_no_longer_point_to_the_person(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        _store(conn, world, at=datetime.now(UTC) - timedelta(hours=1))
        headers = {"Authorization": f"Bearer {world.tokens['coordinator']}"}
        client.post(
            f"/api/v1/patients/{own}/erasure",
            json={"mode": "anonymise", "reason": "Pasientens ønske"},
            headers=headers,
        )
        kept = conn.execute("SELECT patient_id, device_id FROM readings").fetchall()
    assert len(kept) == 1
    assert kept[0][0] != own
    assert kept[0][1] != world.scenarios["own"].device


def test_retention_deletes_only_readings_older_than_the_setting(
    world_client: WorldClient, world: World
) -> None:
    now = datetime.now(UTC)
    with world_client() as (_client, conn):
        _store(conn, world, at=now - timedelta(days=400))
        _store(conn, world, at=now - timedelta(days=10))
        assert do_apply_retention(conn, now=now, keep=timedelta(days=365)) == 1
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)
