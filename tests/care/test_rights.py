"""The patient's rights: export everything, erase or anonymise on request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from fastapi.testclient import TestClient

from alerts.outbox import do_enqueue_notification
from care.rights import (
    EXPORT_PARTS,
    EXPORTED_TABLES,
    KEPT_ON_ERASURE,
    NOT_EXPORTED,
)
from tests.care.conftest import WorldClient
from tests.care.world import MEASURED, READINGS, World, store_counted
from tests.support import scalar


def test_the_export_holds_the_patients_data_and_who_looked(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        store_counted(conn, world, at=datetime.now(UTC) - timedelta(hours=1))
        headers = {"Authorization": f"Bearer {world.tokens['patient']}"}
        exported = client.get(f"/api/v1/patients/{own}/export", headers=headers).json()
    assert exported["patient"]["display_name"] == "Pasient own"
    assert len(exported["readings"]) == 1 + len(READINGS)
    assert exported["care_plan"]["template"] == "copd"
    assert exported["access_log"][-1]["resource"] == "patient-export"


def test_erasure_removes_the_person_and_keeps_the_access_log(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        store_counted(conn, world, at=datetime.now(UTC) - timedelta(hours=1))
        headers = {"Authorization": f"Bearer {world.tokens['coordinator']}"}
        erased = client.post(
            f"/api/v1/patients/{own}/erasure",
            json={"mode": "erase", "reason": "Pasientens ønske"},
            headers=headers,
        )
        assert erased.json()["readings"] == 1 + len(READINGS)
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
        store_counted(conn, world, at=datetime.now(UTC) - timedelta(hours=1))
        headers = {"Authorization": f"Bearer {world.tokens['coordinator']}"}
        client.post(
            f"/api/v1/patients/{own}/erasure",
            json={"mode": "anonymise", "reason": "Pasientens ønske"},
            headers=headers,
        )
        kept = conn.execute(
            "SELECT patient_id, device_id FROM readings WHERE measured_at <> %s", (MEASURED,)
        ).fetchall()
    assert len(kept) == 1
    assert kept[0][0] != own
    assert kept[0][1] != world.scenarios["own"].device


# --- every table about a patient is exported and erased, or excluded with a reason -------------

ABOUT_PATIENTS = """
    WITH RECURSIVE
    foreign_keys AS (
        SELECT k.table_name::text AS child, k.column_name::text AS child_column,
               u.table_name::text AS parent, u.column_name::text AS parent_column
          FROM information_schema.table_constraints c
          JOIN information_schema.key_column_usage k
            ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name
          JOIN information_schema.constraint_column_usage u
            ON u.constraint_schema = c.constraint_schema AND u.constraint_name = c.constraint_name
         WHERE c.constraint_type = 'FOREIGN KEY' AND c.table_schema = 'public'
    ),
    direct AS (
        SELECT c.table_name::text AS table_name, c.column_name::text AS column_name
          FROM information_schema.columns c
          JOIN information_schema.tables t
            ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND (c.column_name IN ('patient_id', 'patient_ids')
                OR (c.table_name = 'patients' AND c.column_name = 'id'))
    ),
    about (table_name, via_column, parent, parent_column) AS (
        SELECT table_name, column_name, NULL::text COLLATE "C", NULL::text COLLATE "C"
          FROM direct
        UNION
        SELECT f.child, f.child_column, f.parent, f.parent_column
          FROM foreign_keys f JOIN about a ON a.table_name = f.parent
         WHERE f.child NOT IN (SELECT table_name FROM direct)
    )
    SELECT table_name, via_column, parent, parent_column FROM about
"""
"""Every table with a patient column, and every table hanging off one by a foreign key (an
alert's events), read from the schema: a new table about patients cannot be forgotten."""


def _patient_tables(conn: psycopg.Connection) -> dict[str, str]:
    """Each table about patients, with a condition on its alias ``t`` that selects the rows
    about the patient ``%(p)s``."""
    rows = conn.execute(ABOUT_PATIENTS).fetchall()
    conditions: dict[str, str] = {}
    for table, column, parent, _ in rows:
        if parent is None:
            conditions[table] = {
                "id": "t.id = %(p)s",
                "patient_id": "t.patient_id = %(p)s",
                "patient_ids": "t.patient_ids @> ARRAY[%(p)s]::uuid[]",
            }[column]
    while len(conditions) < len({row[0] for row in rows}):
        for table, column, parent, parent_column in rows:
            if table not in conditions and parent in conditions:
                inner = conditions[parent].replace("t.", "x.")
                conditions[table] = (
                    f"t.{column} IN (SELECT x.{parent_column} FROM {parent} x WHERE {inner})"
                )
    return conditions


def _rows_about(conn: psycopg.Connection, table: str, condition: str, patient: UUID) -> int:
    return scalar(conn, f"SELECT count(*) FROM {table} t WHERE {condition}", {"p": patient})


def _something_in_every_table(client: TestClient, conn: psycopg.Connection, world: World) -> None:
    """The patient `own` measures, answers a questionnaire, is handed over, has an alert
    acted on and notified about, and is looked at through an emergency access."""
    own, alert = world.patients["own"], world.scenarios["own"].alert
    now = datetime.now(UTC)
    store_counted(conn, world, at=now - timedelta(hours=1))
    nurse = {"Authorization": f"Bearer {world.tokens['hospital_nurse']}"}
    patient = {"Authorization": f"Bearer {world.tokens['patient']}"}
    steps = [
        (
            f"/api/v1/patients/{own}/questionnaires",
            patient,
            {
                "kind": "daily_symptoms",
                "answered_at": now.isoformat(),
                "more_breathless": True,
                "more_swelling": False,
                "more_cough": False,
            },
        ),
        (
            f"/api/v1/patients/{own}/handovers",
            nurse,
            {"to_organisation_id": str(world.organisations["M"]), "note": "Utskrevet"},
        ),
        (f"/api/v1/alerts/{alert}/acknowledge", nurse, None),
        (f"/api/v1/alerts/{alert}/snooze", nurse, {"reason": "Kjent lav", "minutes": 60}),
        (
            f"/api/v1/alerts/{alert}/resolve",
            nurse,
            {"outcome": "contacted_patient", "note": "Ringt"},
        ),
        (
            f"/api/v1/patients/{own}/emergency-access",
            {"Authorization": f"Bearer {world.tokens['b_nurse']}"},
            {"reason": "Akutt innlagt"},
        ),
    ]
    for url, headers, body in steps:
        response = client.post(url, json=body, headers=headers)
        assert 200 <= response.status_code < 300, (url, response.text)
    chosen = client.put(
        f"/api/v1/patients/{own}/reminder-channel",
        json={"channel": "email", "address": "pasient@example.org"},
        headers=patient,
    )
    assert chosen.status_code == 200, chosen.text
    conn.execute(
        "INSERT INTO reminders (patient_id, code, since, due_at, remind_at, alert_at)"
        " VALUES (%s, '59408-5', %s, %s, %s, %s)",
        (own, now - timedelta(days=2), now - timedelta(hours=2), now - timedelta(hours=2), now),
    )
    do_enqueue_notification(
        conn,
        alert_id=alert,
        channel="email",
        address="vakt@example.org",
        message={"subject": "Gult varsel"},
        now=now,
        # Both keys, as the lifecycle writes them: a notification is about the patient through
        # either one, whichever _patient_tables happens to follow.
        episode_id=scalar(conn, "SELECT episode_id FROM alerts WHERE id = %s", (alert,)),
    )


def test_every_table_about_patients_is_exported_or_excluded_with_a_reason(
    world_client: WorldClient,
) -> None:
    with world_client() as (_client, conn):
        tables = set(_patient_tables(conn))
    assert {"questionnaire_responses", "alert_events", "alert_snoozes", "identities"} <= tables
    assert EXPORTED_TABLES.isdisjoint(NOT_EXPORTED)
    assert all(reason.strip() for reason in (*NOT_EXPORTED.values(), *KEPT_ON_ERASURE.values()))
    assert tables == EXPORTED_TABLES | NOT_EXPORTED.keys(), (
        "export these tables in care/rights.py, or list them in NOT_EXPORTED with a reason: "
        f"{sorted(tables - EXPORTED_TABLES - NOT_EXPORTED.keys())}; no such tables: "
        f"{sorted((EXPORTED_TABLES | NOT_EXPORTED.keys()) - tables)}"
    )


def test_the_export_holds_a_part_for_every_table_about_the_patient(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        _something_in_every_table(client, conn, world)
        conditions = _patient_tables(conn)
        stored = {t: _rows_about(conn, t, c, own) for t, c in conditions.items()}
        headers = {"Authorization": f"Bearer {world.tokens['patient']}"}
        exported = client.get(f"/api/v1/patients/{own}/export", headers=headers)
    assert exported.status_code == 200
    document = exported.json()
    assert [t for t, n in stored.items() if n == 0 and t not in NOT_EXPORTED] == [], (
        "the test stores nothing in these tables yet"
    )
    empty = [
        table
        for table in EXPORTED_TABLES
        if not any(document[name] for name, part in EXPORT_PARTS.items() if part.table == table)
    ]
    assert empty == [], f"stored about the patient, missing from the export: {empty}"
    assert document["questionnaire_responses"][0]["answers"]["more_breathless"] is True
    assert {e["action"] for e in document["alert_events"]} >= {"acknowledged", "resolved"}
    assert document["alert_snoozes"][0]["reason"] == "Kjent lav"
    assert document["identities"][0]["issuer"] == "http://testserver/auth"
    assert document["emergency_access"][0]["reason"] == "Akutt innlagt"
    assert "address" not in document["notifications"][0], "a staff member's address is theirs"


def test_erasure_leaves_no_row_about_the_patient_but_the_access_log(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        _something_in_every_table(client, conn, world)
        headers = {"Authorization": f"Bearer {world.tokens['coordinator']}"}
        erased = client.post(
            f"/api/v1/patients/{own}/erasure",
            json={"mode": "erase", "reason": "Pasientens ønske"},
            headers=headers,
        )
        assert erased.status_code == 200, erased.text
        left = {
            table: _rows_about(conn, table, condition, own)
            for table, condition in _patient_tables(conn).items()
        }
    assert {t: n for t, n in left.items() if n} == {"access_log": left["access_log"]}
    assert set(KEPT_ON_ERASURE) == {"access_log"}
