"""The outbox: the minimum in a message, recipients who work at the unit now, and a row that is
exactly as durable as the change that wrote it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from alerts.notify import Part, reason
from alerts.outbox import build_message, do_enqueue_notification, recipients_for, with_link
from care.models import Condition, OrganisationKind
from care.people import do_add_employment, do_create_staff, do_end_employment
from care.service import do_create_organisation, do_create_patient
from core.auth import StaffRole
from core.links import PublicLinks
from tests.support import insert_episode

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PATIENT = UUID("3b0f8f5e-5d0c-4a3e-9a0e-6d3f7f1d2c11")


def test_the_message_holds_the_minimum() -> None:
    message = build_message(
        alert_id=41,
        severity="red",
        unit_name="Hjemmesykepleien Nord",
    )
    assert message == {
        "version": 1,
        "alert_id": 41,
        "severity": "red",
        "unit": "Hjemmesykepleien Nord",
        "title": "Heimvakt: red alert for Hjemmesykepleien Nord",
    }
    json.dumps(message)  # stored as jsonb
    link = PublicLinks("https://heimvakt.example/").patient(PATIENT)
    assert with_link(message, link=link) == {
        **message,
        "link": f"https://heimvakt.example/app/patients/{PATIENT}",
    }, "sent with the link to log in and see it"


def test_reasons_only_when_given() -> None:
    reasons = [{"rule": "threshold", "severity": "yellow", "text": "SpO2 (low) 87 %"}]
    message = build_message(
        alert_id=41, severity="yellow", unit_name="Lungeteamet", reasons=reasons
    )
    assert message["reasons"] == reasons


def test_a_unit_name_cannot_break_a_header_line() -> None:
    message = build_message(
        alert_id=1,
        severity="red",
        unit_name="Avdeling\r\nBcc: someone@evil.example",
    )
    assert "\n" not in message["title"]
    assert "\r" not in message["unit"]


def test_an_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        build_message(alert_id=1, severity="purple", unit_name="Unit")


@pytest.fixture
def alert_id(conn: psycopg.Connection) -> int:
    unit = do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE)
    patient = do_create_patient(
        conn,
        display_name="Kari Nordmann",
        conditions=[Condition.COPD],
        responsible_unit=unit,
        since=NOW - timedelta(days=30),
    )
    row = conn.execute(
        "INSERT INTO alerts (patient_id, rule_id, rule_version, severity, first_measured_at,"
        " last_measured_at, created_at, updated_at, episode_id) VALUES (%s,"
        " 'threshold:59408-5:low', 1, 'red', %s, %s, %s, %s, %s) RETURNING id",
        (
            patient,
            NOW,
            NOW,
            NOW,
            NOW,
            insert_episode(conn, patient=patient, severity="red", at=NOW),
        ),
    ).fetchone()
    assert row is not None
    return row[0]


def message() -> dict:
    return build_message(
        alert_id=1,
        severity="red",
        unit_name="Kommunen",
    )


def test_an_enqueued_notification_is_pending_and_due_at_once(
    conn: psycopg.Connection, alert_id: int
) -> None:
    with conn.transaction():
        key = do_enqueue_notification(
            conn,
            alert_id=alert_id,
            channel="email",
            address="nurse@kommune.example",
            message=message(),
            now=NOW,
        )
    row = conn.execute(
        "SELECT alert_id, channel, address, message, state, attempts, next_attempt_at,"
        " created_at, delivered_at FROM notifications WHERE id = %s",
        (key,),
    ).fetchone()
    assert row == (
        alert_id,
        "email",
        "nurse@kommune.example",
        message(),
        "pending",
        0,
        NOW,
        NOW,
        None,
    )


def test_a_change_that_rolls_back_leaves_no_notification(
    conn: psycopg.Connection, alert_id: int
) -> None:
    class Failed(Exception):
        pass

    def change_that_fails() -> None:
        with conn.transaction():
            conn.execute("UPDATE alerts SET severity = 'red' WHERE id = %s", (alert_id,))
            do_enqueue_notification(
                conn,
                alert_id=alert_id,
                channel="webhook",
                address="https://x.example/",
                message=message(),
                now=NOW,
            )
            raise Failed

    with pytest.raises(Failed):
        change_that_fails()
    assert conn.execute("SELECT count(*) FROM notifications").fetchone() == (0,)


def test_an_unknown_channel_is_refused_by_the_schema(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        do_enqueue_notification(
            conn, alert_id=None, channel="pigeon", address="x", message=message(), now=NOW
        )


def test_recipients_are_people_employed_at_the_unit_now(conn: psycopg.Connection) -> None:
    unit = do_create_organisation(
        conn, name="Lungeteamet", kind=OrganisationKind.HOSPITAL_DEPARTMENT
    )
    other = do_create_organisation(conn, name="Legekontoret", kind=OrganisationKind.GP_OFFICE)

    def person(name: str, *subscriptions: tuple[str, str, str]) -> UUID:
        staff = do_create_staff(conn, display_name=name, role=StaffRole.NURSE).id
        for channel, address, min_severity in subscriptions:
            conn.execute(
                "INSERT INTO notification_subscriptions (staff_id, channel, address, min_severity)"
                " VALUES (%s, %s, %s, %s)",
                (staff, channel, address, min_severity),
            )
        return staff

    everything = person(
        "Alt", ("email", "alt@sykehus.example", "yellow"), ("apprise", "ntfys://alt", "red")
    )
    red_only = person("Rod", ("webhook", "https://vakt.example/hook", "red"))
    left = person("Sluttet", ("email", "sluttet@sykehus.example", "yellow"))
    elsewhere = person("Annet sted", ("email", "gp@lege.example", "yellow"))
    future = person("Begynner", ("email", "ny@sykehus.example", "yellow"))

    since = NOW - timedelta(days=100)
    do_add_employment(conn, staff_id=everything, organisation_id=unit, since=since)
    # Overlapping periods at the same unit (the service refuses them; the query does not rely
    # on that): still one recipient per address.
    conn.execute(
        "INSERT INTO staff_memberships (staff_id, organisation_id, valid_from) VALUES (%s, %s, %s)",
        (everything, unit, since - timedelta(days=1)),
    )
    do_add_employment(conn, staff_id=red_only, organisation_id=unit, since=since)
    ended = do_add_employment(conn, staff_id=left, organisation_id=unit, since=since)
    do_end_employment(conn, membership_id=ended.id, now=NOW - timedelta(hours=1))
    do_add_employment(conn, staff_id=elsewhere, organisation_id=other, since=since)
    do_add_employment(conn, staff_id=future, organisation_id=unit, since=NOW + timedelta(days=1))

    assert recipients_for(conn, organisation_id=unit, severity="yellow", now=NOW) == [
        ("email", "alt@sykehus.example")
    ]
    assert recipients_for(conn, organisation_id=unit, severity="red", now=NOW) == [
        ("apprise", "ntfys://alt"),
        ("email", "alt@sykehus.example"),
        ("webhook", "https://vakt.example/hook"),
    ]
    # Before the leaver left, they were a recipient.
    before = NOW - timedelta(days=2)
    assert ("email", "sluttet@sykehus.example") in recipients_for(
        conn, organisation_id=unit, severity="yellow", now=before
    )
    with pytest.raises(ValueError, match="severity"):
        recipients_for(conn, organisation_id=unit, severity="green", now=NOW)


NEWS2_PART = Part(
    "news2_partial",
    "yellow",
    None,
    5.0,
    None,
    {
        "total": 5,
        "spo2_scale": 1,
        "used": {"59408-5": {"value": 91, "score": 3}, "8867-4": {"value": 115, "score": 2}},
        "missing": ["8310-5", "9279-1", "consciousness"],
    },
)


def test_a_notification_names_each_rule_in_words_and_news2_with_its_parameters() -> None:
    assert reason(NEWS2_PART)["text"] == (
        "NEWS2 (partial) 5 on SpO2 scale 1, from Oxygen saturation 91 (3), Pulse 115 (2);"
        " missing Body temperature, Respiratory rate, consciousness"
    )
    threshold = Part("threshold:59408-5:low", "red", "59408-5", 85.0, "low", {})
    assert reason(threshold)["text"] == ("Outside the limits: Oxygen saturation (low) 85 %")
