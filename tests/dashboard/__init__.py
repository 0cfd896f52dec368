"""Shared by the dashboard specifications: seeding a patient, and asking the dashboard for a page
the way the browser does (the Dash routing callback over HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import fastapi
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from alerts.threshold import evaluate_thresholds
from care.models import Condition, OrganisationKind
from care.people import (
    do_add_team_member,
    do_add_team_patient,
    do_create_care_team,
    do_create_staff,
)
from care.service import do_create_organisation, do_create_patient, do_set_threshold
from core import catalog
from core.auth import Principal, StaffRole
from core.clock import ManualClock
from core.readings import Reading
from dashboard import create_dashboard
from devices.service import do_assign_device, do_register_device

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
BASE = "/app/"


SESSION_COOKIE = "test_session"
TEAM = "Dashboard-teamet"
NURSE = "Test Sykepleier"


def dashboard_client(
    pool: ConnectionPool, now: datetime = NOW, *, principal: Principal | None = None
) -> tuple[TestClient, ManualClock]:
    """A dashboard seen by `principal`: by default a nurse in the team every seeded patient
    is in. The principal stands in for the session cookie's token (tests/heimvakt checks the
    real cookie end to end)."""
    app = fastapi.FastAPI()
    clock = ManualClock(now)
    if principal is None:
        with pool.connection() as conn:
            nurse, _team = _test_team(conn)
        principal = Principal(kind="staff", id=str(nurse), name=NURSE, role="nurse")
    viewer = principal
    create_dashboard(
        app,
        pool=pool,
        clock=clock,
        principal_of=lambda token: viewer,
        session_cookie=SESSION_COOKIE,
    )
    return TestClient(app), clock


def _test_team(conn: psycopg.Connection) -> tuple[UUID, UUID]:
    """The nurse and the care team that follows every seeded patient, made on first use."""
    row = conn.execute(
        "SELECT m.staff_id, m.team_id FROM care_team_members m"
        " JOIN care_teams t ON t.id = m.team_id WHERE t.name = %s",
        (TEAM,),
    ).fetchone()
    if row is not None:
        return row[0], row[1]
    nurse = do_create_staff(conn, display_name=NURSE, role=StaffRole.NURSE).id
    team = do_create_care_team(conn, name=TEAM).id
    do_add_team_member(conn, team_id=team, staff_id=nurse, since=datetime(2024, 1, 1, tzinfo=UTC))
    return nurse, team


def routing_request(pathname: str, search: str = "", *, trigger: str = "url.pathname") -> dict:
    """The body the browser posts when the address changes or the refresh interval fires."""
    return {
        "output": "..page.children...status.children..",
        "outputs": [
            {"id": "page", "property": "children"},
            {"id": "status", "property": "children"},
        ],
        "inputs": [
            {"id": "url", "property": "pathname", "value": pathname},
            {"id": "url", "property": "search", "value": search},
            {"id": "refresh", "property": "n_intervals", "value": 1},
        ],
        "changedPropIds": [trigger],
        "state": [],
    }


def show(client: TestClient, pathname: str, search: str = "", **kwargs: str) -> dict:
    """The page at `pathname` as the component tree Dash sends to the browser."""
    response = client.post(
        f"{BASE}_dash-update-component", json=routing_request(pathname, search, **kwargs)
    )
    assert response.status_code == 200, response.text
    return response.json()["response"]["page"]["children"]


def components(tree: Any) -> Iterator[dict]:
    """Every component in a tree, depth first, in document order."""
    if isinstance(tree, list):
        for child in tree:
            yield from components(child)
    elif isinstance(tree, dict) and "props" in tree:
        yield tree
        yield from components(tree["props"].get("children"))


def texts(tree: Any) -> list[str]:
    """The strings a reader sees, in document order."""
    if isinstance(tree, str):
        return [tree]
    if isinstance(tree, list):
        return [found for child in tree for found in texts(child)]
    if isinstance(tree, dict) and "props" in tree:
        return texts(tree["props"].get("children"))
    return []


def text(tree: Any) -> str:
    return "".join(texts(tree))


def of_class(tree: Any, class_name: str) -> list[dict]:
    return [
        c for c in components(tree) if class_name in (c["props"].get("className") or "").split()
    ]


def figures(tree: Any) -> list[dict]:
    return [c["props"]["figure"] for c in components(tree) if "figure" in c["props"]]


@dataclass(frozen=True, slots=True)
class Seeded:
    patient_id: UUID
    device_id: str


def seed_patient(
    conn: psycopg.Connection,
    *,
    name: str,
    conditions: list[Condition] | None = None,
    unit: str = "Lungeavdelingen",
    limits: dict[str, tuple[float | None, float | None]] | None = None,
) -> Seeded:
    """A patient under a unit, with one assigned home device and the given limits."""
    organisation = do_create_organisation(
        conn, name=unit, kind=OrganisationKind.HOSPITAL_DEPARTMENT
    )
    patient_id = do_create_patient(
        conn,
        display_name=name,
        conditions=conditions or [Condition.COPD],
        responsible_unit=organisation,
        since=datetime(2024, 1, 1, tzinfo=UTC),
    )
    _nurse, team = _test_team(conn)
    do_add_team_patient(
        conn, team_id=team, patient_id=patient_id, since=datetime(2024, 1, 1, tzinfo=UTC)
    )
    for alias, (low, high) in (limits or {}).items():
        do_set_threshold(conn, patient_id=patient_id, code=alias, low=low, high=high, now=NOW)
    device_id = f"gw-{uuid.uuid4().hex[:12]}"
    do_register_device(conn, device_id=device_id, kind="gateway")
    do_assign_device(
        conn,
        device_id=device_id,
        patient_id=patient_id,
        valid_from=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return Seeded(patient_id=patient_id, device_id=device_id)


def store_reading(
    conn: psycopg.Connection, seeded: Seeded, alias: str, value: float, measured_at: datetime
) -> Reading:
    """Store a reading as ingest would and let the threshold rule see it."""
    measurement = catalog.lookup(alias)
    assert measurement is not None
    reading = Reading(
        patient_id=seeded.patient_id,
        device_id=seeded.device_id,
        code=measurement.code,
        measured_at=measured_at,
        value=value,
        unit=measurement.unit,
    )
    conn.execute(
        """
        INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, msg_id,
                              received_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            reading.device_id,
            reading.code,
            reading.measured_at,
            reading.patient_id,
            reading.value,
            reading.unit,
            uuid.uuid4(),
            measured_at,
        ),
    )
    evaluate_thresholds(conn, [reading], now=measured_at)
    return reading


def raise_red_alert(conn: psycopg.Connection, seeded: Seeded, alias: str, value: float) -> None:
    """A red alert. No shipped rule raises red yet, so it is written as a future rule would."""
    measurement = catalog.lookup(alias)
    assert measurement is not None
    conn.execute(
        """
        INSERT INTO alerts (patient_id, rule_id, rule_version, severity, code, direction,
                            first_value, last_value, first_measured_at, last_measured_at,
                            occurrences, created_at, updated_at)
        VALUES (%(patient)s, %(rule)s, 1, 'red', %(code)s, 'low', %(value)s, %(value)s,
                %(now)s, %(now)s, 1, %(now)s, %(now)s)
        """,
        {
            "patient": seeded.patient_id,
            "rule": f"future_rule:{measurement.code}",
            "code": measurement.code,
            "value": value,
            "now": NOW,
        },
    )
