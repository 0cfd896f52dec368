"""A small helsefellesskap for access tests: who works where, which team follows whom.

- Hospital (H) and municipality (M) share care team A, which follows patient `own` and
  `own_handover` (whom the hospital has proposed to hand over to M) and `own_no_plan`.
- Team B, hospital staff only, follows `other_team`.
- Team C, in another municipality (X), follows `other_org`.
- One member of each matrix role belongs to team A (the administrator to no team); team D has
  the coordinator as member and no patients. `newcomer`, a hospital nurse, belongs to no team.
Every person is invented.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg

from care import careplan, handover, people
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.auth import LocalIssuer, StaffRole
from core.weeks import COUNT_READINGS
from devices.service import do_assign_device, do_register_device
from devices.tokens import do_issue_token
from tests.support import insert_episode

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
MEASURED = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
"""When each scenario's device measured its patient's readings (`READINGS`): recent, so that
no retention period ever removes them."""
READINGS = (("59408-5", 95.0, "%"), ("8480-6", 128.0, "mm[Hg]"), ("8462-4", 82.0, "mm[Hg]"))
"""Each scenario patient's stored readings: an SpO2 and a blood pressure."""
SPARE_DEVICE = "ox-spare"
"""Registered and given to no one: a device to hand out."""
SCENARIOS = ("own", "other_team", "other_org")
STAFF_ROLES = {
    "hospital_nurse": (StaffRole.NURSE, "H"),
    "municipal_nurse": (StaffRole.NURSE, "M"),
    "physician": (StaffRole.PHYSICIAN, "H"),
    "coordinator": (StaffRole.COORDINATOR, "M"),
    "administrator": (StaffRole.ADMINISTRATOR, "H"),
}
ROLES = ("anonymous", "patient", *STAFF_ROLES, "device")


@dataclass
class Scenario:
    """The ids a request uses when it is about this scenario's patient."""

    patient: UUID
    team: UUID
    handover: UUID
    organisation: UUID
    device: str
    staff: UUID
    """A staff member of this scenario's team (not one of the matrix roles)."""
    employment: UUID
    team_membership: UUID
    alert: int
    subscription: int
    """A notification subscription of the hospital nurse (own) or of the scenario's colleague."""
    quarantined: int
    """A reading of the scenario's device in quarantine, waiting for a nurse's decision."""


@dataclass
class World:
    organisations: dict[str, UUID]
    teams: dict[str, UUID]
    patients: dict[str, UUID]
    staff: dict[str, UUID]
    scenarios: dict[str, Scenario]
    tokens: dict[str, str] = field(default_factory=dict)
    """A bearer token per role (none for anonymous)."""


def build_world(conn: psycopg.Connection, *, issuer: LocalIssuer) -> World:
    org = {
        "H": do_create_organisation(
            conn, name="Sykehuset", kind=OrganisationKind.HOSPITAL_DEPARTMENT
        ),
        "M": do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE),
        "X": do_create_organisation(
            conn, name="Annen kommune", kind=OrganisationKind.MUNICIPAL_SERVICE
        ),
        "X2": do_create_organisation(
            conn, name="Annet sykehus", kind=OrganisationKind.HOSPITAL_DEPARTMENT
        ),
    }
    teams = {
        key: people.do_create_care_team(conn, name=f"Team {key}").id for key in ("A", "B", "C", "D")
    }
    staff: dict[str, UUID] = {}
    for key, (role, employer) in STAFF_ROLES.items():
        staff[key] = _person(conn, name=key, role=role, organisation=org[employer])
        if key != "administrator":
            people.do_add_team_member(conn, team_id=teams["A"], staff_id=staff[key], since=SINCE)
    people.do_add_team_member(conn, team_id=teams["D"], staff_id=staff["coordinator"], since=SINCE)
    for key, employer, team in (
        ("a_colleague", "H", "A"),
        ("b_nurse", "H", "B"),
        ("c_nurse", "X", "C"),
    ):
        staff[key] = _person(conn, name=key, role=StaffRole.NURSE, organisation=org[employer])
        people.do_add_team_member(conn, team_id=teams[team], staff_id=staff[key], since=SINCE)
    staff["newcomer"] = _person(conn, name="newcomer", role=StaffRole.NURSE, organisation=org["H"])

    patients = {}
    for key, team, unit in (
        ("own", "A", "H"),
        ("own_handover", "A", "H"),
        ("own_no_plan", "A", "H"),
        ("other_team", "B", "H"),
        ("other_org", "C", "X"),
    ):
        patients[key] = do_create_patient(
            conn,
            display_name=f"Pasient {key}",
            conditions=[Condition.COPD],
            responsible_unit=org[unit],
            since=SINCE,
        )
        people.do_add_team_patient(conn, team_id=teams[team], patient_id=patients[key], since=SINCE)
        if key != "own_no_plan":
            careplan.do_create_care_plan(
                conn, patient_id=patients[key], template="copd", author=None, now=SINCE
            )

    now = datetime.now(UTC)
    proposals = {
        "own": handover.do_propose_handover(
            conn,
            patient_id=patients["own_handover"],
            to_organisation_id=org["M"],
            proposed_by=staff["hospital_nurse"],
            note="Utskrevet, oppfølging i kommunen",
            now=now - timedelta(hours=1),
        ).id,
        "other_team": handover.do_propose_handover(
            conn,
            patient_id=patients["other_team"],
            to_organisation_id=org["X2"],
            proposed_by=staff["b_nurse"],
            note="Overføring",
            now=now - timedelta(hours=1),
        ).id,
        "other_org": handover.do_propose_handover(
            conn,
            patient_id=patients["other_org"],
            to_organisation_id=org["X2"],
            proposed_by=staff["c_nurse"],
            note="Overføring",
            now=now - timedelta(hours=1),
        ).id,
    }
    devices = {}
    for key in SCENARIOS:
        devices[key] = f"ox-{key}"
        do_register_device(conn, device_id=devices[key], kind="pulse_oximeter")
        do_assign_device(conn, device_id=devices[key], patient_id=patients[key], valid_from=SINCE)
        for code, value, unit in READINGS:
            conn.execute(
                "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
                " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (devices[key], code, MEASURED, patients[key], value, unit, MEASURED),
            )
    do_register_device(conn, device_id=SPARE_DEVICE, kind="pulse_oximeter")

    colleagues = {"own": "a_colleague", "other_team": "b_nurse", "other_org": "c_nurse"}
    subscriber = {"own": "hospital_nurse", "other_team": "b_nurse", "other_org": "c_nurse"}
    team_of = {"own": "A", "other_team": "B", "other_org": "C"}
    unit_of = {"own": "H", "other_team": "H", "other_org": "X"}
    scenarios = {}
    for key in SCENARIOS:
        colleague = staff[colleagues[key]]
        memberships = people.memberships_of(conn, staff_id=colleague)
        scenarios[key] = Scenario(
            patient=patients[key],
            team=teams[team_of[key]],
            handover=proposals[key],
            organisation=org[unit_of[key]],
            device=devices[key],
            staff=colleague,
            employment=next(m.id for m in memberships if m.of_id == org[unit_of[key]]),
            team_membership=next(m.id for m in memberships if m.of_id == teams[team_of[key]]),
            alert=_alert(conn, patient=patients[key]),
            subscription=_subscription(conn, staff=staff[subscriber[key]]),
            quarantined=_quarantined(conn, device=devices[key]),
        )
    world = World(org, teams, patients, staff, scenarios)
    # b_nurse: a clinician outside team A, for emergency access to its patients.
    for key in (*STAFF_ROLES, "b_nurse"):
        world.tokens[key] = _token(conn, issuer=issuer, staff_id=staff[key])
    world.tokens["patient"] = _token(conn, issuer=issuer, patient_id=patients["own"])
    world.tokens["device"] = do_issue_token(conn, device_id=devices["own"], now=SINCE)
    return world


def store_counted(
    conn: psycopg.Connection,
    world: World,
    *,
    at: datetime,
    patient: UUID | None = None,
    device: str | None = None,
) -> None:
    """A reading (of the own patient and device unless told), counted in its week as ingest
    counts it."""
    conn.execute(
        "WITH stored AS (INSERT INTO readings (device_id, code, measured_at, patient_id, value,"
        " unit, received_at) VALUES (%s, '59408-5', %s, %s, 95, '%%', %s)"
        f" RETURNING patient_id, code, measured_at) {COUNT_READINGS.format(source='stored')}",
        (
            device or world.scenarios["own"].device,
            at,
            patient or world.patients["own"],
            at,
        ),
    )


def _alert(conn: psycopg.Connection, *, patient: UUID) -> int:
    row = conn.execute(
        """
        INSERT INTO alerts (patient_id, rule_id, rule_version, severity, code, direction,
                            first_value, last_value, first_measured_at, last_measured_at,
                            occurrences, created_at, updated_at, episode_id)
        VALUES (%(p)s, 'threshold:59408-5:low', 1, 'yellow', '59408-5', 'low', 92, 92,
                %(at)s, %(at)s, 1, %(at)s, %(at)s, %(episode)s)
        RETURNING id
        """,
        {
            "p": patient,
            "at": SINCE,
            "episode": insert_episode(conn, patient=patient, severity="yellow", at=SINCE),
        },
    ).fetchone()
    assert row is not None
    return row[0]


def _quarantined(conn: psycopg.Connection, *, device: str) -> int:
    at = SINCE + timedelta(days=1)
    reading = {"code": "59408-5", "value": 93, "unit": "%", "measured_at": at.isoformat()}
    row = conn.execute(
        "INSERT INTO quarantine (received_at, channel, device_id, msg_id, reason, detail, payload)"
        " VALUES (%s, 'mqtt', %s, gen_random_uuid(), 'device_reassigned', 'moved',"
        " convert_to(%s::text, 'UTF8')) RETURNING id",
        (at, device, json.dumps(reading)),
    ).fetchone()
    assert row is not None
    return row[0]


def _subscription(conn: psycopg.Connection, *, staff: UUID) -> int:
    row = conn.execute(
        "INSERT INTO notification_subscriptions (staff_id, channel, address)"
        " VALUES (%s, 'email', %s) RETURNING id",
        (staff, f"{staff}@example.org"),
    ).fetchone()
    assert row is not None
    return row[0]


def _person(conn: psycopg.Connection, *, name: str, role: StaffRole, organisation: UUID) -> UUID:
    person = people.do_create_staff(conn, display_name=name, role=role, hpr_number="1234567")
    people.do_add_employment(conn, staff_id=person.id, organisation_id=organisation, since=SINCE)
    return person.id


def _token(
    conn: psycopg.Connection,
    *,
    issuer: LocalIssuer,
    staff_id: UUID | None = None,
    patient_id: UUID | None = None,
) -> str:
    subject = str(uuid4())
    people.do_link_identity(
        conn, issuer=issuer.config.issuer, subject=subject, staff_id=staff_id, patient_id=patient_id
    )
    return issuer.issue(subject=subject)
