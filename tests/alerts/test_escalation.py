"""Escalation with a clock we move by hand: an unacknowledged red alert goes to the back-up
unit after the deadline and to on-call after the next; acknowledging stops it; outside opening
hours it takes the out-of-hours route at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from alerts.actions import do_acknowledge_alert
from alerts.escalation import do_escalate_due
from alerts.findings import Category, Finding, Severity
from alerts.lifecycle import do_apply_findings
from care.access import Interface
from care.handover import do_set_backup_unit
from care.models import Condition, OrganisationKind
from care.people import do_add_employment, do_create_staff
from care.service import do_create_organisation, do_create_patient
from core.auth import StaffRole
from tests.support import care_team_member

TUESDAY_10 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Oslo
SATURDAY_03 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 03:00 in Oslo
WEEKDAYS_8_TO_1530 = [{"weekday": day, "opens": "08:00", "closes": "15:30"} for day in range(5)]


@pytest.fixture
def ward(conn: psycopg.Connection) -> dict[str, UUID]:
    hospital = do_create_organisation(
        conn,
        name="Lungeavdelingen",
        kind=OrganisationKind.HOSPITAL_DEPARTMENT,
        opening_hours=WEEKDAYS_8_TO_1530,
    )
    municipality = do_create_organisation(
        conn, name="Oppfølgingstjenesten", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    conn.execute(
        """
        INSERT INTO escalation_policies (organisation_id, red_minutes, yellow_minutes,
            on_call_channel, on_call_address, out_of_hours_channel, out_of_hours_address)
        VALUES (%s, 15, 480, 'webhook', 'https://vakt.example/hook', 'email',
                'legevakt@example.org')
        """,
        (hospital,),
    )
    patient = do_create_patient(
        conn,
        display_name="Test Pasient",
        conditions=[Condition.COPD],
        responsible_unit=hospital,
        since=TUESDAY_10 - timedelta(days=30),
    )
    do_set_backup_unit(
        conn, patient_id=patient, organisation_id=municipality, now=TUESDAY_10 - timedelta(days=1)
    )
    nurses = {}
    for unit, name in ((hospital, "Sykehussykepleier"), (municipality, "Kommunesykepleier")):
        nurse = do_create_staff(conn, display_name=name, role=StaffRole.NURSE).id
        do_add_employment(
            conn, staff_id=nurse, organisation_id=unit, since=TUESDAY_10 - timedelta(days=90)
        )
        conn.execute(
            "INSERT INTO notification_subscriptions (staff_id, channel, address, min_severity)"
            " VALUES (%s, 'email', %s, 'red')",
            (nurse, f"{name.lower()}@example.org"),
        )
        nurses[name] = nurse
    return {
        "hospital": hospital,
        "municipality": municipality,
        "patient": patient,
        "nurse": nurses["Sykehussykepleier"],
    }


def _red(at: datetime, instance: str = "threshold:59408-5:low") -> Finding:
    return Finding(
        rule="threshold",
        rule_version=2,
        instance=instance,
        severity=Severity.RED,
        category=Category.CLINICAL,
        measured_at=at,
        code="59408-5",
        direction="low",
        value=86.0,
    )


def _raise(conn: psycopg.Connection, ward: dict[str, UUID], at: datetime, **kwargs: str) -> int:
    with conn.transaction():
        do_apply_findings(
            conn,
            patient_id=ward["patient"],
            findings=[_red(at, **kwargs)],
            now=at,
        )
    row = conn.execute("SELECT max(id) FROM alerts").fetchone()
    assert row is not None
    return row[0]


def _state(conn: psycopg.Connection, alert_id: int) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT route, routed_to, escalation_level FROM alerts WHERE id = %s", (alert_id,)
    ).fetchone()


def _sent_to(conn: psycopg.Connection, alert_id: int) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT address FROM notifications WHERE alert_id = %s ORDER BY created_at, address",
            (alert_id,),
        )
    ]


def test_unacknowledged_red_goes_to_backup_then_on_call(
    conn: psycopg.Connection, ward: dict[str, UUID]
) -> None:
    alert = _raise(conn, ward, TUESDAY_10)
    assert _state(conn, alert) == ("responsible", ward["hospital"], 0)
    assert _sent_to(conn, alert) == ["sykehussykepleier@example.org"]

    assert do_escalate_due(conn, now=TUESDAY_10 + timedelta(minutes=14)) == 0
    assert do_escalate_due(conn, now=TUESDAY_10 + timedelta(minutes=15)) == 1
    assert _state(conn, alert) == ("backup", ward["municipality"], 1)
    assert _sent_to(conn, alert)[-1] == "kommunesykepleier@example.org"

    assert do_escalate_due(conn, now=TUESDAY_10 + timedelta(minutes=29)) == 0
    assert do_escalate_due(conn, now=TUESDAY_10 + timedelta(minutes=30)) == 1
    assert _state(conn, alert) == ("on_call", ward["hospital"], 2)
    assert _sent_to(conn, alert)[-1] == "https://vakt.example/hook"
    assert do_escalate_due(conn, now=TUESDAY_10 + timedelta(hours=5)) == 0

    steps = [
        (row[0], row[1].get("to"))
        for row in conn.execute(
            "SELECT action, details FROM alert_events WHERE alert_id = %s ORDER BY id", (alert,)
        )
    ]
    assert [s for s in steps if s[0] == "escalated"] == [
        ("escalated", "backup"),
        ("escalated", "on_call"),
    ]


def test_acknowledging_stops_escalation(conn: psycopg.Connection, ward: dict[str, UUID]) -> None:
    alert = _raise(conn, ward, TUESDAY_10)
    nurse = care_team_member(
        conn,
        patient_id=ward["patient"],
        since=TUESDAY_10 - timedelta(days=1),
        staff_id=ward["nurse"],
    )
    do_acknowledge_alert(
        conn,
        alert_id=alert,
        actor=nurse,
        interface=Interface.API,
        now=TUESDAY_10 + timedelta(minutes=5),
    )
    assert do_escalate_due(conn, now=TUESDAY_10 + timedelta(hours=2)) == 0
    assert _state(conn, alert) == ("responsible", ward["hospital"], 0)
    assert _sent_to(conn, alert) == ["sykehussykepleier@example.org"]


def test_outside_opening_hours_it_takes_the_out_of_hours_route_at_once(
    conn: psycopg.Connection, ward: dict[str, UUID]
) -> None:
    alert = _raise(conn, ward, SATURDAY_03)
    assert _state(conn, alert) == ("out_of_hours", ward["hospital"], 0)
    assert _sent_to(conn, alert) == ["legevakt@example.org"]
    assert do_escalate_due(conn, now=SATURDAY_03 + timedelta(hours=3)) == 0


def test_the_route_follows_the_unit_responsible_at_that_moment(
    conn: psycopg.Connection, ward: dict[str, UUID]
) -> None:
    conn.execute(
        "UPDATE patient_responsibility SET valid_to = %s WHERE patient_id = %s"
        " AND role = 'responsible'",
        (TUESDAY_10 - timedelta(hours=1), ward["patient"]),
    )
    conn.execute(
        "INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from)"
        " VALUES (%s, %s, 'responsible', %s)",
        (ward["patient"], ward["municipality"], TUESDAY_10 - timedelta(hours=1)),
    )
    alert = _raise(conn, ward, TUESDAY_10)
    assert _state(conn, alert) == ("responsible", ward["municipality"], 0)
    assert _sent_to(conn, alert) == ["kommunesykepleier@example.org"]
