"""The alert lifecycle: one alert per patient and instance, severity only rises, hysteresis
after resolution, snoozes mute one direction and never a red notification."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

import psycopg
import pytest

from alerts.actions import (
    AlertStateError,
    do_acknowledge_alert,
    do_note_alert,
    do_resolve_alert,
    do_snooze_alert,
)
from alerts.episodes import GAP
from alerts.findings import Category, Finding, Severity
from alerts.library import threshold
from alerts.lifecycle import do_apply_findings
from care.access import Interface
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.auth import Principal
from tests.support import care_team_member, scalar

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DIRECTIONS: dict[str, Literal["low", "high"]] = {"low": "low", "high": "high"}


@pytest.fixture
def patient(conn: psycopg.Connection) -> UUID:
    unit = do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE)
    return do_create_patient(
        conn,
        display_name="Test Pasient",
        conditions=[Condition.HEART_FAILURE],
        responsible_unit=unit,
        since=NOW - timedelta(days=10),
    )


@pytest.fixture
def nurse(conn: psycopg.Connection, patient: UUID) -> Principal:
    return care_team_member(conn, patient_id=patient, since=NOW - timedelta(days=10))


def finding(
    severity: Severity,
    *,
    at: datetime = NOW,
    instance: str = "threshold:59408-5:low",
    value: float = 92.0,
) -> Finding:
    return Finding(
        rule="threshold",
        rule_version=threshold.VERSION,
        instance=instance,
        severity=severity,
        category=Category.CLINICAL,
        measured_at=at,
        code="59408-5",
        direction=DIRECTIONS.get(instance.rsplit(":", 1)[-1]),
        value=value,
    )


def apply(conn: psycopg.Connection, patient: UUID, *found: Finding, now: datetime = NOW) -> None:
    with conn.transaction():
        do_apply_findings(conn, patient_id=patient, findings=found, now=now)


def alerts(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT rule_id, severity, state, occurrences, late FROM alerts ORDER BY id"
    ).fetchall()


def test_repeats_update_one_alert_and_severity_only_rises(
    conn: psycopg.Connection, patient: UUID
) -> None:
    apply(conn, patient, finding(Severity.YELLOW))
    apply(conn, patient, finding(Severity.RED, at=NOW + timedelta(hours=1)))
    apply(conn, patient, finding(Severity.YELLOW, at=NOW + timedelta(hours=2)))
    assert alerts(conn) == [("threshold:59408-5:low", "red", "open", 3, False)]
    actions = [r[0] for r in conn.execute("SELECT action FROM alert_events ORDER BY id")]
    assert actions == ["opened", "notified", "severity_raised", "episode_raised", "notified"]


def test_after_resolution_a_value_hovering_at_the_limit_does_not_reopen_until_it_clears(
    conn: psycopg.Connection, patient: UUID, nurse: Principal
) -> None:
    apply(conn, patient, finding(Severity.YELLOW))
    alert_id = scalar(conn, "SELECT id FROM alerts")
    with pytest.raises(AlertStateError, match="note"):
        do_resolve_alert(
            conn,
            alert_id=alert_id,
            actor=nurse,
            interface=Interface.API,
            outcome="contacted_patient",
            note=" ",
            now=NOW,
        )
    do_resolve_alert(
        conn,
        alert_id=alert_id,
        actor=nurse,
        interface=Interface.API,
        outcome="contacted_patient",
        note="Ringt, føler seg bra",
        now=NOW + timedelta(minutes=30),
    )
    apply(conn, patient, finding(Severity.YELLOW, at=NOW + timedelta(hours=1)))
    assert len(alerts(conn)) == 1, "still disarmed: no new alert at the same severity"
    apply(conn, patient, finding(Severity.GREEN, at=NOW + timedelta(hours=2)))
    apply(conn, patient, finding(Severity.YELLOW, at=NOW + timedelta(hours=3)))
    assert [a[2] for a in alerts(conn)] == ["resolved", "open"]


def test_a_worse_finding_reopens_even_while_disarmed(
    conn: psycopg.Connection, patient: UUID, nurse: Principal
) -> None:
    apply(conn, patient, finding(Severity.YELLOW))
    alert_id = scalar(conn, "SELECT id FROM alerts")
    do_resolve_alert(
        conn,
        alert_id=alert_id,
        actor=nurse,
        interface=Interface.API,
        outcome="no_action_needed",
        note="Kjent lav metning",
        now=NOW,
    )
    apply(conn, patient, finding(Severity.RED, at=NOW + timedelta(hours=1)))
    assert [(a[1], a[2]) for a in alerts(conn)] == [("yellow", "resolved"), ("red", "open")]


def test_a_snooze_mutes_one_direction_only_and_never_red(
    conn: psycopg.Connection, patient: UUID, nurse: Principal
) -> None:
    apply(conn, patient, finding(Severity.YELLOW, instance="threshold:29463-7:high"))
    weight_alert = scalar(conn, "SELECT id FROM alerts")
    with pytest.raises(AlertStateError, match="reason"):
        do_snooze_alert(
            conn,
            alert_id=weight_alert,
            actor=nurse,
            interface=Interface.API,
            reason="",
            duration=timedelta(hours=8),
            now=NOW,
        )
    do_snooze_alert(
        conn,
        alert_id=weight_alert,
        actor=nurse,
        interface=Interface.API,
        reason="Vannlating i dag",
        duration=timedelta(hours=8),
        now=NOW,
    )
    do_resolve_alert(
        conn,
        alert_id=weight_alert,
        actor=nurse,
        interface=Interface.API,
        outcome="no_action_needed",
        note="Forklart",
        now=NOW,
    )
    apply(conn, patient, finding(Severity.GREEN, instance="threshold:29463-7:high"))
    later = NOW + timedelta(hours=1)
    apply(
        conn,
        patient,
        finding(Severity.YELLOW, at=later, instance="threshold:29463-7:high"),
        now=later,
    )
    apply(conn, patient, finding(Severity.YELLOW, at=later), now=later)
    assert [a[0] for a in alerts(conn)] == ["threshold:29463-7:high", "threshold:59408-5:low"]
    apply(
        conn, patient, finding(Severity.RED, at=later, instance="threshold:29463-7:high"), now=later
    )
    opened = [a for a in alerts(conn) if a[0] == "threshold:29463-7:high" and a[2] == "open"]
    assert opened == [("threshold:29463-7:high", "red", "open", 1, False)]


def test_a_reading_evaluated_long_after_it_was_measured_is_marked_late(
    conn: psycopg.Connection, patient: UUID
) -> None:
    apply(conn, patient, finding(Severity.YELLOW, at=NOW - timedelta(hours=6)))
    assert alerts(conn)[0][4] is True


def test_acknowledging_twice_is_refused(
    conn: psycopg.Connection, patient: UUID, nurse: Principal
) -> None:
    apply(conn, patient, finding(Severity.YELLOW))
    alert_id = scalar(conn, "SELECT id FROM alerts")
    do_acknowledge_alert(conn, alert_id=alert_id, actor=nurse, interface=Interface.API, now=NOW)
    with pytest.raises(AlertStateError, match="acknowledged"):
        do_acknowledge_alert(conn, alert_id=alert_id, actor=nurse, interface=Interface.API, now=NOW)


def test_an_alert_records_the_version_of_the_rule_that_raised_it(
    conn: psycopg.Connection, patient: UUID
) -> None:
    apply(conn, patient, finding(Severity.YELLOW))
    assert conn.execute("SELECT rule_version FROM alerts").fetchone() == (threshold.VERSION,)
    assert threshold.VERSION == 2


def test_every_step_on_an_alert_leaves_its_event_and_its_access_log_row(
    conn: psycopg.Connection, patient: UUID, nurse: Principal
) -> None:
    apply(conn, patient, finding(Severity.YELLOW))
    alert_id = scalar(conn, "SELECT id FROM alerts")
    step = {"alert_id": alert_id, "actor": nurse, "interface": Interface.DASHBOARD, "now": NOW}
    do_acknowledge_alert(conn, **step)
    do_note_alert(conn, note="Ringt pasienten, ny måling i kveld", **step)
    with pytest.raises(AlertStateError, match="text"):
        do_note_alert(conn, note="  ", **step)
    events = conn.execute(
        "SELECT action, actor, details->>'note' FROM alert_events"
        " WHERE actor IS NOT NULL ORDER BY id"
    ).fetchall()
    assert events == [
        ("acknowledged", nurse.uuid, None),
        ("noted", nurse.uuid, "Ringt pasienten, ny måling i kveld"),
    ]
    logged = conn.execute(
        "SELECT resource, action, interface FROM access_log WHERE actor_id = %s ORDER BY id",
        (nurse.id,),
    ).fetchall()
    assert logged[:2] == [
        ("alert:acknowledge", "update", "dashboard"),
        ("alert:note", "update", "dashboard"),
    ]


def episodes(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT e.severity, e.state, array_agg(a.rule_id ORDER BY a.rule_id),"
        " array_agg(a.state ORDER BY a.rule_id)"
        " FROM alert_episodes e JOIN alerts a ON a.episode_id = e.id GROUP BY e.id ORDER BY e.id"
    ).fetchall()


def test_findings_close_together_form_one_episode_that_people_act_on_as_one(
    conn: psycopg.Connection, patient: UUID, nurse: Principal
) -> None:
    drop = replace(
        finding(Severity.YELLOW, instance="spo2_drop:59408-5"), rule="spo2_drop", direction="low"
    )
    apply(conn, patient, finding(Severity.YELLOW), drop)
    apply(conn, patient, finding(Severity.YELLOW, instance="threshold:8867-4:high", value=115,
                                 at=NOW + timedelta(hours=30)))  # fmt: skip
    assert episodes(conn) == [
        (
            "yellow",
            "open",
            ["spo2_drop:59408-5", "threshold:59408-5:low", "threshold:8867-4:high"],
            ["open", "open", "open"],
        )
    ]
    alert_ids = [row[0] for row in conn.execute("SELECT id FROM alerts ORDER BY id")]
    do_acknowledge_alert(conn, alert_id=alert_ids[1], actor=nurse, interface=Interface.API, now=NOW)
    assert episodes(conn)[0][1:] == (
        "acknowledged",
        ["spo2_drop:59408-5", "threshold:59408-5:low", "threshold:8867-4:high"],
        ["acknowledged"] * 3,
    )
    do_resolve_alert(
        conn,
        alert_id=alert_ids[2],
        actor=nurse,
        interface=Interface.API,
        outcome="contacted_patient",
        note="Ringt",
        now=NOW + timedelta(hours=31),
    )
    assert episodes(conn)[0][1] == "resolved"
    assert [row[2] for row in alerts(conn)] == ["resolved"] * 3
    disarmed = conn.execute("SELECT count(*) FROM alert_arming WHERE NOT armed").fetchone()
    assert disarmed == (3,), "each part's instance waits for a clearly normal value"


def test_a_red_finding_inside_a_yellow_episode_notifies_again_and_a_late_one_starts_anew(
    conn: psycopg.Connection, patient: UUID
) -> None:
    apply(conn, patient, finding(Severity.YELLOW))
    apply(conn, patient, finding(Severity.YELLOW, instance="threshold:8867-4:high", value=115,
                                 at=NOW + timedelta(hours=1)))  # fmt: skip
    apply(conn, patient, finding(Severity.RED, at=NOW + timedelta(hours=2)))
    notified = conn.execute(
        "SELECT action, details->>'to' FROM alert_events"
        " WHERE action IN ('notified', 'episode_raised') ORDER BY id"
    ).fetchall()
    assert notified == [("notified", None), ("episode_raised", "red"), ("notified", None)]
    assert [row[0] for row in episodes(conn)] == ["red"]
    far = NOW + timedelta(hours=2) + GAP + timedelta(minutes=1)
    apply(conn, patient, finding(Severity.YELLOW, instance="spo2_drop:59408-5", at=far))
    assert len(episodes(conn)) == 2, "more than two days later: a new episode"
