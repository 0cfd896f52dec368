"""Shared by the dashboard specifications: seeding a patient, logging in, and asking the dashboard
for a page the way the browser does (the Dash routing callback over HTTP, with the session
cookie)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import fastapi
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from alerts.engine import do_evaluate
from care.models import Condition, OrganisationKind
from care.people import (
    do_add_employment,
    do_add_team_member,
    do_add_team_patient,
    do_create_care_team,
    do_create_staff,
    do_link_identity,
)
from care.service import do_create_organisation, do_create_patient
from core import catalog
from core.auth import LocalIssuer, StaffRole, TokenVerifier
from core.clock import Clock, ManualClock
from core.limits import Limits
from core.readings import Reading
from core.weeks import COUNT_READINGS
from dashboard import create_dashboard
from dashboard.app import routing_request
from devices.service import do_assign_device, do_register_device
from heimvakt.auth import SESSION_COOKIE, principal_from_token
from tests.support import ISSUER_KEY, insert_episode, plan_with_limits

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
BASE = "/app/"


TEAM = "Dashboard-teamet"
NURSE = "Test Sykepleier"
NURSE_EMPLOYER = "Sykehuset Innlandet"
ISSUER = "http://testserver/auth"
AUDIENCE = "heimvakt"
TOKEN_LIFETIME = timedelta(hours=8)


def dashboard_app(pool: ConnectionPool, clock: ManualClock) -> fastapi.FastAPI:
    """The dashboard alone, wired as heimvakt/app.py wires it: the session cookie's token goes
    through the API's token path (verified, then looked up among enrolled identities)."""
    app = fastapi.FastAPI()
    verifier = TokenVerifier([], local=issuer_for(pool, clock))
    create_dashboard(
        app,
        pool=pool,
        clock=clock,
        principal_of=lambda token: principal_from_token(
            token, pool=pool, clock=clock, verifier=verifier
        ),
        session_cookie=SESSION_COOKIE,
    )
    return app


def issuer_for(pool: ConnectionPool, clock: Clock) -> LocalIssuer:
    """The built-in issuer on the test's clock (its tokens are issued at the test's now)."""
    issuer = LocalIssuer(
        pool,
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
        token_lifetime=TOKEN_LIFETIME,
        issuer_key=ISSUER_KEY,
    )
    issuer.ensure_signing_key()
    return issuer


def session_token(
    pool: ConnectionPool,
    clock: ManualClock,
    *,
    staff_id: UUID | None = None,
    patient_id: UUID | None = None,
) -> str:
    """A token the built-in issuer signs for this staff member or patient, as /auth/login
    would put in the session cookie; the identity is enrolled on first use."""
    subject = f"{'staff' if staff_id else 'patient'}-{staff_id or patient_id}"
    with pool.connection() as conn:
        enrolled = conn.execute(
            "SELECT 1 FROM identities WHERE issuer = %s AND subject = %s", (ISSUER, subject)
        ).fetchone()
        if enrolled is None:
            do_link_identity(
                conn, issuer=ISSUER, subject=subject, staff_id=staff_id, patient_id=patient_id
            )
    return issuer_for(pool, clock).issue(subject=subject)


def dashboard_client(
    pool: ConnectionPool,
    now: datetime = NOW,
    *,
    staff_id: UUID | None = None,
    patient_id: UUID | None = None,
    anonymous: bool = False,
) -> tuple[TestClient, ManualClock]:
    """A browser on the dashboard, logged in (its session cookie holds a signed token): by
    default as the nurse in the team every seeded patient is in; or as `staff_id`, as the
    patient `patient_id`, or not at all."""
    clock = ManualClock(now)
    client = TestClient(dashboard_app(pool, clock))
    if not anonymous:
        if staff_id is None and patient_id is None:
            with pool.connection() as conn:
                staff_id, _team = _test_team(conn)
        token = session_token(pool, clock, staff_id=staff_id, patient_id=patient_id)
        client.cookies.set(SESSION_COOKIE, token)
    return client, clock


def team_nurse(pool: ConnectionPool) -> UUID:
    """The nurse of the team that follows every seeded patient."""
    with pool.connection() as conn:
        return _test_team(conn)[0]


def _test_team(conn: psycopg.Connection) -> tuple[UUID, UUID]:
    """The nurse and the care team that follows every seeded patient, made on first use."""
    row = conn.execute(
        "SELECT m.staff_id, m.team_id FROM care_team_members m"
        " JOIN care_teams t ON t.id = m.team_id WHERE t.name = %s",
        (TEAM,),
    ).fetchone()
    if row is not None:
        return row[0], row[1]
    nurse = employed_staff(conn, name=NURSE, organisation=NURSE_EMPLOYER)
    team = do_create_care_team(conn, name=TEAM).id
    do_add_team_member(conn, team_id=team, staff_id=nurse, since=datetime(2024, 1, 1, tzinfo=UTC))
    return nurse, team


def employed_staff(
    conn: psycopg.Connection, *, name: str, organisation: str, role: StaffRole = StaffRole.NURSE
) -> UUID:
    """A staff member employed since 2024 by a new organisation of that name (staff see
    patients, and log in, only while employed)."""
    staff = do_create_staff(conn, display_name=name, role=role).id
    employer = do_create_organisation(
        conn, name=organisation, kind=OrganisationKind.HOSPITAL_DEPARTMENT
    )
    do_add_employment(
        conn, staff_id=staff, organisation_id=employer, since=datetime(2024, 1, 1, tzinfo=UTC)
    )
    return staff


def step_request(
    client: TestClient,
    step: str,
    alert_id: int,
    *,
    pathname: str = BASE,
    search: str = "",
    **fields: object,
) -> dict:
    """The body the browser posts when a nurse presses a step's button (dashboard.pages.
    alert_steps) on the episode led by `alert_id`, with its form's `fields` (by their type
    with "_" for "-": alert_note="...")."""
    from dashboard.pages.alert_steps import FIELDS, STEP  # noqa: PLC0415  # the app's own ids

    [callback] = [
        c
        for c in client.get(f"{BASE}_dash-dependencies").json()
        if c["inputs"] and STEP in c["inputs"][0]["id"]
    ]
    button = {"alert": alert_id, "step": step, "type": STEP}
    given = {kind: fields.get(kind.replace("-", "_")) for kind in FIELDS}
    return {
        "output": callback["output"],
        "outputs": [
            {"id": name, "property": prop}
            for name, prop in (o.split(".", 1) for o in callback["output"].strip(".").split("..."))
        ],
        "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
        "changedPropIds": [json.dumps(button, separators=(",", ":")) + ".n_clicks"],
        "state": [
            *(
                [{"id": {"alert": alert_id, "type": kind}, "property": "value", "value": value}]
                for kind, value in given.items()
            ),
            *(
                [{"id": {"alert": alert_id, "type": kind}, "property": "id",
                  "value": {"alert": alert_id, "type": kind}}]
                for kind in FIELDS
            ),
            {"id": "url", "property": "pathname", "value": pathname},
            {"id": "url", "property": "search", "value": search},
        ],
    }  # fmt: skip


def take_step(
    client: TestClient,
    step: str,
    alert_id: int,
    *,
    pathname: str = BASE,
    search: str = "",
    **fields: object,
) -> dict:
    """Press the step's button; the answer's outputs (action-status, and the page redrawn)."""
    body = step_request(client, step, alert_id, pathname=pathname, search=search, **fields)
    response = client.post(f"{BASE}_dash-update-component", json=body)
    assert response.status_code == 200, response.text
    return response.json()["response"]


def show(client: TestClient, pathname: str, search: str = "", **kwargs: str) -> dict:
    """The page at `pathname` as the component tree Dash sends to the browser."""
    response = client.post(
        f"{BASE}_dash-update-component", json=routing_request(pathname, search, **kwargs)
    )
    assert response.status_code == 200, response.text
    return response.json()["response"]["page"]["children"]


def press(
    client: TestClient,
    trigger: str,
    values: dict[tuple[str, str], Any] | None = None,
    *,
    prop: str = "n_clicks",
) -> dict[str, dict[str, Any]]:
    """Fire the callback that `trigger`'s `prop` drives, as the browser does: the callback is
    found in the dashboard's own dependency list, its inputs and states take `values` (by id
    and property; the trigger's defaults to 1 click), and the answer is each output's new
    properties by component id (empty when the callback sent no update)."""
    callbacks = client.get(f"{BASE}_dash-dependencies").json()
    spec = next(
        c
        for c in callbacks
        if any(i["id"] == trigger and i["property"] == prop for i in c["inputs"])
    )
    given = {(trigger, prop): 1, **(values or {})}

    def filled(items: list[dict]) -> list[dict]:
        return [{**item, "value": given.get((item["id"], item["property"]))} for item in items]

    key = spec["output"]
    names = key.strip(".").split("...") if key.startswith("..") else [key]
    outputs = [dict(zip(("id", "property"), n.rsplit(".", 1), strict=True)) for n in names]
    response = client.post(
        f"{BASE}_dash-update-component",
        json={
            "output": key,
            "outputs": outputs if key.startswith("..") else outputs[0],
            "inputs": filled(spec["inputs"]),
            "state": filled(spec["state"]),
            "changedPropIds": [f"{trigger}.{prop}"],
        },
    )
    if response.status_code == 204:
        return {}
    assert response.status_code == 200, response.text
    return {
        component: {name.split("@")[0]: value for name, value in props.items()}
        for component, props in response.json()["response"].items()
    }


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
    limits: dict[str, tuple[float | None, ...]] | None = None,
) -> Seeded:
    """A patient under a unit, with one assigned home device and, with `limits` (per alias:
    low, high, and optionally red_low, red_high), a care plan holding just those."""
    # Patients of one unit share it, as they do in a health community.
    known = conn.execute("SELECT id FROM organisations WHERE name = %s", (unit,)).fetchone()
    organisation = (
        known[0]
        if known
        else do_create_organisation(conn, name=unit, kind=OrganisationKind.HOSPITAL_DEPARTMENT)
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
    if limits is not None:
        plan_with_limits(
            conn,
            patient_id,
            *(Limits(code_of(alias), *values) for alias, values in limits.items()),
            now=NOW,
        )
    device_id = f"gw-{uuid.uuid4().hex[:12]}"
    do_register_device(conn, device_id=device_id, kind="gateway")
    do_assign_device(
        conn,
        device_id=device_id,
        patient_id=patient_id,
        valid_from=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return Seeded(patient_id=patient_id, device_id=device_id)


def code_of(alias: str) -> str:
    measurement = catalog.lookup(alias)
    assert measurement is not None
    return measurement.code


def store_reading(
    conn: psycopg.Connection, seeded: Seeded, alias: str, value: float, measured_at: datetime
) -> Reading:
    """Store a reading as ingest would (counted in its week, core/weeks.py) and let the
    threshold rule see it."""
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
        WITH stored AS (
            INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,
                                  received_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            RETURNING patient_id, code, measured_at
        ), counted AS ("""
        + COUNT_READINGS.format(source="stored")
        + """)
        SELECT 1
        """,
        (
            reading.device_id,
            reading.code,
            reading.measured_at,
            reading.patient_id,
            reading.value,
            reading.unit,
            measured_at,
        ),
    )
    do_evaluate(
        conn,
        moments={seeded.patient_id: [measured_at]},
        now=measured_at,
    )
    return reading


def raise_red_alert(conn: psycopg.Connection, seeded: Seeded, alias: str, value: float) -> None:
    """A red alert. No shipped rule raises red yet, so it is written as a future rule would."""
    measurement = catalog.lookup(alias)
    assert measurement is not None
    conn.execute(
        """
        INSERT INTO alerts (patient_id, rule_id, rule_version, severity, code, direction,
                            first_value, last_value, first_measured_at, last_measured_at,
                            occurrences, created_at, updated_at, episode_id)
        VALUES (%(patient)s, %(rule)s, 1, 'red', %(code)s, 'low', %(value)s, %(value)s,
                %(now)s, %(now)s, 1, %(now)s, %(now)s, %(episode)s)
        """,
        {
            "episode": insert_episode(conn, patient=seeded.patient_id, severity="red", at=NOW),
            "patient": seeded.patient_id,
            "rule": f"future_rule:{measurement.code}",
            "code": measurement.code,
            "value": value,
            "now": NOW,
        },
    )
