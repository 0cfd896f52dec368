"""What people do to an alert: acknowledge, assign, resolve, snooze, add a note.

One function per step, and every interface (the API, the dashboard, later FHIR) calls it, so
each step takes the same path whoever clicks: the one access check and its access-log row
(care.access), the change under the alert's row lock, and its alert event and any
notification (alerts/notify.py), all in the caller's transaction. A step the alert cannot
take from where it is raises AlertStateError, and the transaction rolls back, its access-log
row with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal
from uuid import UUID

import psycopg

from alerts.library.catalogue import RULES_BY_ID
from alerts.notify import do_record_event
from alerts.queries import patient_of_alert
from care.access import Action, Interface, Permission, do_access_patient
from core.auth import Principal

MAX_SNOOZE: Final = timedelta(days=7)
MIN_SNOOZE: Final = timedelta(minutes=1)

Outcome = Literal[
    "contacted_patient",
    "changed_treatment",
    "referred",
    "no_action_needed",
    "technical_fixed",
    "false_alarm",
]


class AlertStateError(Exception):
    """The alert cannot take this step from where it is."""


def do_acknowledge_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    actor: Principal,
    interface: Interface,
    now: datetime,
) -> None:
    """Someone has it: escalation stops, and it is theirs unless already assigned."""
    _access(conn, alert_id=alert_id, actor=actor, step="acknowledge", interface=interface, now=now)
    with conn.transaction():
        _patient, _instance, state, _severity = _locked(conn, alert_id=alert_id)
        if state != "open":
            raise AlertStateError(f"the alert is {state}")
        conn.execute(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s, acknowledged_at = %s,"
            " escalate_at = NULL, assigned_to = coalesce(assigned_to, %s), updated_at = %s"
            " WHERE id = %s",
            (actor.uuid, now, actor.uuid, now, alert_id),
        )
        do_record_event(conn, alert_id=alert_id, action="acknowledged", actor=actor.uuid, now=now)


def do_assign_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    to: UUID,
    actor: Principal,
    interface: Interface,
    now: datetime,
) -> None:
    """Give the alert to a colleague (staff id `to`)."""
    _access(conn, alert_id=alert_id, actor=actor, step="assign", interface=interface, now=now)
    with conn.transaction():
        _patient, _instance, state, _severity = _locked(conn, alert_id=alert_id)
        if state == "resolved":
            raise AlertStateError("the alert is resolved")
        conn.execute(
            "UPDATE alerts SET assigned_to = %s, updated_at = %s WHERE id = %s",
            (to, now, alert_id),
        )
        do_record_event(
            conn,
            alert_id=alert_id,
            action="assigned",
            actor=actor.uuid,
            now=now,
            details={"to": str(to)},
        )


def do_resolve_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    outcome: Outcome,
    note: str,
    actor: Principal,
    interface: Interface,
    now: datetime,
) -> None:
    """Close the alert with what was done; the instance stays quiet until values clear
    (unless its rule has nothing to clear by: `Rule.disarmed_by_resolution`)."""
    _access(conn, alert_id=alert_id, actor=actor, step="resolve", interface=interface, now=now)
    if not note or not note.strip():
        raise AlertStateError("resolving an alert needs a note")
    with conn.transaction():
        patient, instance, state, severity = _locked(conn, alert_id=alert_id)
        if state == "resolved":
            raise AlertStateError("the alert is resolved already")
        conn.execute(
            "UPDATE alerts SET state = 'resolved', resolved_by = %s, resolved_at = %s,"
            " outcome = %s, resolution_note = %s, escalate_at = NULL, updated_at = %s"
            " WHERE id = %s",
            (actor.uuid, now, outcome, note.strip(), now, alert_id),
        )
        rule = RULES_BY_ID.get(instance.partition(":")[0])
        if rule is None or rule.disarmed_by_resolution:
            conn.execute(
                """
                INSERT INTO alert_arming (patient_id, rule_id, armed, disarmed_severity,
                                          updated_at)
                VALUES (%s, %s, false, %s, %s)
                ON CONFLICT (patient_id, rule_id) DO UPDATE
                   SET armed = false, disarmed_severity = EXCLUDED.disarmed_severity,
                       updated_at = EXCLUDED.updated_at
                """,
                (patient, instance, severity, now),
            )
        do_record_event(
            conn,
            alert_id=alert_id,
            action="resolved",
            actor=actor.uuid,
            now=now,
            details={"outcome": outcome},
        )


def do_snooze_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    reason: str,
    duration: timedelta,
    actor: Principal,
    interface: Interface,
    now: datetime,
) -> None:
    """Mute this alert's instance (one rule, one measurement, one direction) for a while.
    Yellow repeats stay quiet; a red finding still notifies."""
    _access(conn, alert_id=alert_id, actor=actor, step="snooze", interface=interface, now=now)
    if not reason or not reason.strip():
        raise AlertStateError("a snooze needs a reason")
    if not MIN_SNOOZE <= duration <= MAX_SNOOZE:
        raise AlertStateError("a snooze lasts between one minute and seven days")
    with conn.transaction():
        patient, instance, state, _severity = _locked(conn, alert_id=alert_id)
        if state == "resolved":
            raise AlertStateError("the alert is resolved")
        conn.execute(
            "INSERT INTO alert_snoozes (patient_id, rule_id, until, reason, created_by,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (patient, instance, now + duration, reason.strip(), actor.uuid, now),
        )
        do_record_event(
            conn,
            alert_id=alert_id,
            action="snoozed",
            actor=actor.uuid,
            now=now,
            details={"until": (now + duration).isoformat(), "reason": reason.strip()},
        )


def do_note_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    note: str,
    actor: Principal,
    interface: Interface,
    now: datetime,
) -> None:
    """Write down what was learnt or done (a phone call, advice given) without changing the
    alert's state; a resolved alert takes notes too, for what came after."""
    _access(conn, alert_id=alert_id, actor=actor, step="note", interface=interface, now=now)
    if not note or not note.strip():
        raise AlertStateError("a note needs text")
    with conn.transaction():
        _locked(conn, alert_id=alert_id)
        do_record_event(
            conn,
            alert_id=alert_id,
            action="noted",
            actor=actor.uuid,
            now=now,
            details={"note": note.strip()},
        )


def _access(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    actor: Principal,
    step: str,
    interface: Interface,
    now: datetime,
) -> None:
    """The one check for acting on an alert, and its access-log row ("alert:<step>")."""
    do_access_patient(
        conn,
        principal=actor,
        permission=Permission.ACT_ON_ALERT,
        patient_id=patient_of_alert(conn, alert_id=alert_id),
        resource=f"alert:{step}",
        action=Action.UPDATE,
        interface=interface,
        now=now,
    )


def _locked(conn: psycopg.Connection, *, alert_id: int) -> tuple[UUID, str, str, str]:
    """(patient, instance, state, severity) of the alert, locked for this step."""
    row = conn.execute(
        "SELECT patient_id, rule_id, state, severity FROM alerts WHERE id = %s FOR UPDATE",
        (alert_id,),
    ).fetchone()
    if row is None:
        raise AlertStateError("no such alert")
    return row[0], row[1], row[2], row[3]
