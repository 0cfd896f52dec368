"""The access log (Normen fact sheet 15): one row per request on patient data, fail closed,
append-only, and the patient can see who looked."""

from __future__ import annotations

import psycopg
import pytest

from core.api import ACCESS_EXTENSION
from tests.care.conftest import WorldClient
from tests.care.test_authorization_matrix import EXPECTED, OPERATIONS, ROLES, _send, openapi
from tests.care.world import World

SCHEMA = openapi()
LOGGED = [
    operation
    for operation in OPERATIONS
    if SCHEMA["paths"][operation[1]][operation[0].lower()]
    .get(ACCESS_EXTENSION, {})
    .get("access_logged")
]


def _first_allowed_role(operation: tuple[str, str]) -> str:
    return next(role for role in ROLES if EXPECTED[operation](role, "own"))


def _log_rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT actor_kind, role, patient_ids, resource, action, interface, reason_code"
        " FROM access_log ORDER BY id"
    ).fetchall()


def test_every_route_on_one_patient_or_hand_over_is_logged() -> None:
    on_one = {op for op in OPERATIONS if "{patient_id}" in op[1] or "{handover_id}" in op[1]}
    assert on_one <= set(LOGGED)
    assert len(LOGGED) >= 20


@pytest.mark.parametrize("operation", LOGGED, ids=lambda op: f"{op[0]} {op[1]}")
def test_a_request_on_patient_data_leaves_exactly_one_row(
    operation: tuple[str, str], world: World, world_client: WorldClient
) -> None:
    role = _first_allowed_role(operation)
    with world_client() as (client, conn):
        before = _log_rows(conn)
        response = _send(client, operation, world, role, "own")
        assert 200 <= response.status_code < 300, response.text
        rows = _log_rows(conn)[len(before) :]
    assert len(rows) == 1, rows
    actor_kind, logged_role, patient_ids, _resource, _action, interface, reason = rows[0]
    expected_interface = "fhir" if operation[1].startswith("/fhir/") else "api"
    assert (actor_kind, interface) == (
        "patient" if role == "patient" else "staff",
        expected_interface,
    )
    assert logged_role == ("patient" if role == "patient" else world_role(role))
    assert reason in {"care_team", "own_data", "handover", "administration", "emergency"}
    if "{patient_id}" in operation[1]:
        target = (
            world.patients["own_no_plan"]
            if operation == ("POST", "/api/v1/patients/{patient_id}/care-plan")
            else world.patients["own"]
        )
        assert patient_ids == [target]


def world_role(role: str) -> str:
    return {"hospital_nurse": "nurse", "municipal_nurse": "nurse"}.get(role, role)


@pytest.mark.parametrize("operation", LOGGED, ids=lambda op: f"{op[0]} {op[1]}")
def test_without_a_writable_log_the_route_fails_and_returns_no_data(
    operation: tuple[str, str], world: World, world_client: WorldClient
) -> None:
    role = _first_allowed_role(operation)
    with world_client() as (client, conn):
        conn.execute("ALTER TABLE access_log ADD CONSTRAINT unwritable CHECK (false) NOT VALID")
        before = conn.execute("SELECT count(*) FROM patients").fetchone()
        response = _send(client, operation, world, role, "own")
        assert conn.execute("SELECT count(*) FROM patients").fetchone() == before
    assert response.status_code >= 500
    fhir = operation[1].startswith("/fhir/")
    expected = "application/fhir+json" if fhir else "application/problem+json"
    assert response.headers["content-type"] == expected
    assert "Pasient" not in response.text


def test_the_log_cannot_be_changed_or_emptied(world_client: WorldClient, world: World) -> None:
    with world_client() as (client, conn):
        client.get(
            "/api/v1/patients",
            headers={"Authorization": f"Bearer {world.tokens['hospital_nurse']}"},
        )
        for statement in (
            "UPDATE access_log SET actor_name = 'someone else'",
            "DELETE FROM access_log",
            "TRUNCATE access_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM access_log").fetchone() == (1,)


def test_a_patient_sees_who_looked_at_their_data_and_why(
    world_client: WorldClient, world: World
) -> None:
    own = world.scenarios["own"].patient
    other = world.scenarios["other_team"].patient
    with world_client() as (client, _conn):
        for role in ("hospital_nurse", "physician"):
            headers = {"Authorization": f"Bearer {world.tokens[role]}"}
            assert client.get(f"/api/v1/patients/{own}", headers=headers).status_code == 200
        # A look at another patient is not in this patient's log.
        client.get(
            f"/api/v1/patients/{other}",
            headers={"Authorization": f"Bearer {world.tokens['hospital_nurse']}"},
        )
        mine = client.get(
            "/api/v1/me/access-log", headers={"Authorization": f"Bearer {world.tokens['patient']}"}
        )
    assert mine.status_code == 200
    entries = mine.json()["items"]
    assert [(e["actor_name"], e["role"], e["reason_code"]) for e in entries] == [
        ("physician", "physician", "care_team"),
        ("hospital_nurse", "nurse", "care_team"),
    ]
    assert all(e["organisation_name"] == "Sykehuset" for e in entries)
    assert "patient_ids" not in entries[0]


def test_administrators_query_the_log_by_patient(world_client: WorldClient, world: World) -> None:
    own = world.scenarios["own"].patient
    with world_client() as (client, _conn):
        nurse = {"Authorization": f"Bearer {world.tokens['municipal_nurse']}"}
        client.get(f"/api/v1/patients/{own}/care-plan", headers=nurse)
        admin = {"Authorization": f"Bearer {world.tokens['administrator']}"}
        found = client.get("/api/v1/access-log", params={"patient_id": str(own)}, headers=admin)
    assert found.status_code == 200
    [entry] = found.json()["items"]
    assert (entry["actor_name"], entry["resource"], entry["hpr_number"]) == (
        "municipal_nurse",
        "care-plan",
        "1234567",
    )
