"""Escalation: an alert nobody has acknowledged by its deadline moves on, step by step.

Responsible unit → back-up unit (same deadline again) → the responsible unit's on-call
contact. An alert raised outside the unit's opening hours went straight to the out-of-hours
route when it opened. Acknowledging stops it. Every step is an `alert_events` row and writes
its notifications to the outbox in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from alerts.findings import Severity
from alerts.notify import do_notify, do_record_event
from alerts.routing import policy_of, units_for


def do_escalate_due(conn: psycopg.Connection, *, now: datetime) -> int:
    """Take every open alert past its deadline one step further; returns how many moved."""
    moved = 0
    with conn.transaction():
        due = conn.execute(
            "SELECT id, patient_id, severity, route, routed_to FROM alerts"
            " WHERE state = 'open' AND escalate_at <= %s ORDER BY escalate_at"
            " FOR UPDATE SKIP LOCKED",
            (now,),
        ).fetchall()
        for alert_id, patient_id, severity, route, routed_to in due:
            responsible, backup = units_for(conn, patient_id=patient_id, at=now)
            home = routed_to if route == "responsible" and routed_to else responsible
            if home is None:
                continue
            policy = policy_of(conn, organisation_id=home)
            level = Severity(severity)
            if route == "responsible" and backup is not None:
                target, next_route = policy_of(conn, organisation_id=backup), "backup"
                escalate_at = policy.deadline(level, now=now)
            else:
                target, next_route, escalate_at = policy, "on_call", None
            conn.execute(
                "UPDATE alerts SET route = %s, routed_to = %s, escalation_level ="
                " escalation_level + 1, escalate_at = %s, updated_at = %s WHERE id = %s",
                (next_route, target.organisation_id, escalate_at, now, alert_id),
            )
            do_record_event(
                conn,
                alert_id=alert_id,
                action="escalated",
                now=now,
                details={"from": route, "to": next_route, "unit": target.name},
            )
            do_notify(
                conn,
                alert_id=alert_id,
                severity=level,
                policy=target,
                route=next_route,
                now=now,
                values=None,
            )
            moved += 1
    return moved
