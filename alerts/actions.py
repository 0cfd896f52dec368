"""What people do to an alert: acknowledge, assign, resolve, snooze, add a note.

Acknowledging, assigning, resolving and snoozing act on the alert's *episode*
(alerts/episodes.py): the episode and every unresolved alert in it take the step together,
each alert recording it in its own history, so one click answers one problem. A note stays on
the alert it is written on.

One function per step, and every interface (the API, the dashboard, later FHIR) calls it, so
each step takes the same path whoever clicks: the one access check and its access-log row
(care.access), the change under the alert's row lock, and its alert event and any
notification (alerts/notify.py), all in the caller's transaction. A step the alert cannot
take from where it is raises AlertStateError, and the transaction rolls back, its access-log
row with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

import psycopg

from alerts.library.catalogue import RULES_BY_ID
from alerts.notify import EventBatch, do_record_event
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
    """Someone has it: the episode's escalation stops, and it is theirs unless already
    assigned."""
    _access(conn, alert_id=alert_id, actor=actor, step="acknowledge", interface=interface, now=now)
    with conn.transaction():
        episode = _locked(conn, alert_id=alert_id)
        if episode.state != "open":
            raise AlertStateError(f"the alert is {episode.state}")
        changed = {"actor": actor.uuid, "now": now, "episode": episode.id}
        conn.execute(
            "UPDATE alert_episodes SET state = 'acknowledged', acknowledged_by = %(actor)s,"
            " acknowledged_at = %(now)s, escalate_at = NULL,"
            " assigned_to = coalesce(assigned_to, %(actor)s), updated_at = %(now)s"
            " WHERE id = %(episode)s",
            changed,
        )
        conn.execute(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_by = %(actor)s,"
            " acknowledged_at = %(now)s, escalate_at = NULL,"
            " assigned_to = coalesce(assigned_to, %(actor)s), updated_at = %(now)s"
            " WHERE episode_id = %(episode)s AND state = 'open'",
            changed,
        )
        _record(conn, episode, action="acknowledged", actor=actor, now=now)


def do_assign_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    to: UUID,
    actor: Principal,
    interface: Interface,
    now: datetime,
) -> None:
    """Give the alert's episode to a colleague (staff id `to`)."""
    _access(conn, alert_id=alert_id, actor=actor, step="assign", interface=interface, now=now)
    with conn.transaction():
        episode = _locked(conn, alert_id=alert_id)
        if episode.state == "resolved":
            raise AlertStateError("the alert is resolved")
        changed = {"to": to, "now": now, "episode": episode.id}
        conn.execute(
            "UPDATE alert_episodes SET assigned_to = %(to)s, updated_at = %(now)s"
            " WHERE id = %(episode)s",
            changed,
        )
        conn.execute(
            "UPDATE alerts SET assigned_to = %(to)s, updated_at = %(now)s"
            " WHERE episode_id = %(episode)s AND state <> 'resolved'",
            changed,
        )
        _record(conn, episode, action="assigned", actor=actor, now=now, details={"to": str(to)})


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
    """Close the alert's episode, every alert in it, with what was done; each alert's
    instance stays quiet until values clear (unless its rule has nothing to clear by:
    `Rule.disarmed_by_resolution`)."""
    _access(conn, alert_id=alert_id, actor=actor, step="resolve", interface=interface, now=now)
    if not note or not note.strip():
        raise AlertStateError("resolving an alert needs a note")
    with conn.transaction():
        episode = _locked(conn, alert_id=alert_id)
        if episode.state == "resolved":
            raise AlertStateError("the alert is resolved already")
        changed = {
            "actor": actor.uuid,
            "now": now,
            "outcome": outcome,
            "note": note.strip(),
            "episode": episode.id,
        }
        for table, which in (("alert_episodes", "id"), ("alerts", "episode_id")):
            conn.execute(
                f"UPDATE {table} SET state = 'resolved', resolved_by = %(actor)s,"
                " resolved_at = %(now)s, outcome = %(outcome)s, resolution_note = %(note)s,"
                f" escalate_at = NULL, updated_at = %(now)s WHERE {which} = %(episode)s"
                " AND state <> 'resolved'",
                changed,
            )
        disarmed = [
            (instance, severity)
            for _alert, instance, severity in episode.parts
            if (rule := RULES_BY_ID.get(instance.partition(":")[0])) is None
            or rule.disarmed_by_resolution
        ]
        if disarmed:
            conn.execute(
                """
                INSERT INTO alert_arming (patient_id, rule_id, armed, disarmed_severity,
                                          updated_at)
                SELECT %s, v.instance, false, v.severity, %s
                  FROM unnest(%s::text[], %s::text[]) AS v(instance, severity)
                ON CONFLICT (patient_id, rule_id) DO UPDATE
                   SET armed = false, disarmed_severity = EXCLUDED.disarmed_severity,
                       updated_at = EXCLUDED.updated_at
                """,
                (
                    episode.patient_id,
                    now,
                    [instance for instance, _ in disarmed],
                    [severity for _, severity in disarmed],
                ),
            )
        _record(conn, episode, action="resolved", actor=actor, now=now,
                details={"outcome": outcome})  # fmt: skip


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
    """Mute the instances of the alert's episode (each one rule, one measurement, one
    direction) for a while. Yellow repeats stay quiet; a red finding still notifies."""
    _access(conn, alert_id=alert_id, actor=actor, step="snooze", interface=interface, now=now)
    if not reason or not reason.strip():
        raise AlertStateError("a snooze needs a reason")
    if not MIN_SNOOZE <= duration <= MAX_SNOOZE:
        raise AlertStateError("a snooze lasts between one minute and seven days")
    with conn.transaction():
        episode = _locked(conn, alert_id=alert_id)
        if episode.state == "resolved":
            raise AlertStateError("the alert is resolved")
        conn.execute(
            "INSERT INTO alert_snoozes (patient_id, rule_id, until, reason, created_by,"
            " created_at) SELECT %s, instance, %s, %s, %s, %s FROM unnest(%s::text[]) instance",
            (
                episode.patient_id,
                now + duration,
                reason.strip(),
                actor.uuid,
                now,
                [instance for _alert, instance, _severity in episode.parts],
            ),
        )
        _record(
            conn,
            episode,
            action="snoozed",
            actor=actor,
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
        _locked(conn, alert_id=alert_id)  # waits for a step on the episode under way
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


@dataclass(frozen=True, slots=True)
class _Episode:
    id: int
    patient_id: UUID
    state: str
    parts: list[tuple[int, str, str]]
    """(alert id, instance, severity) of its alerts not yet resolved."""


def _locked(conn: psycopg.Connection, *, alert_id: int) -> _Episode:
    """The alert's episode and its unresolved alerts, locked for this step."""
    row = conn.execute(
        "SELECT e.id, e.patient_id, e.state FROM alert_episodes e"
        " JOIN alerts a ON a.episode_id = e.id WHERE a.id = %s FOR UPDATE OF e",
        (alert_id,),
    ).fetchone()
    if row is None:
        raise AlertStateError("no such alert")
    parts = conn.execute(
        "SELECT id, rule_id, severity FROM alerts WHERE episode_id = %s AND state <> 'resolved'"
        " ORDER BY id FOR UPDATE",
        (row[0],),
    ).fetchall()
    return _Episode(row[0], row[1], row[2], [(a, i, s) for a, i, s in parts])


def _record(
    conn: psycopg.Connection,
    episode: _Episode,
    *,
    action: str,
    actor: Principal,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """The step in the history of each of the episode's alerts, in one statement."""
    events = EventBatch()
    for alert_id, _instance, _severity in episode.parts:
        events.add(alert_id, action, {**(details or {}), "episode": episode.id}, actor=actor.uuid)
    events.write(conn, now=now)
