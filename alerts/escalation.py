"""Escalation: an episode nobody has acknowledged by its deadline moves on, step by step.

Responsible unit → back-up unit (same deadline again) → the responsible unit's on-call
contact. An episode started outside the unit's opening hours went straight to the
out-of-hours route when it opened. Acknowledging stops it. Every step is an `alert_events`
row (on each of the episode's alerts) and writes its one notification per recipient, listing
the episode's rules, to the outbox in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import psycopg

from alerts.findings import Severity
from alerts.notify import EventBatch, Part, do_notify
from alerts.routing import policy_of, units_for


def do_escalate_due(conn: psycopg.Connection, *, now: datetime) -> int:
    """Take every open episode past its deadline one step further; returns how many moved."""
    moved = 0
    with conn.transaction():
        due = conn.execute(
            "SELECT id, patient_id, severity, route, routed_to FROM alert_episodes"
            " WHERE state = 'open' AND escalate_at <= %s ORDER BY escalate_at"
            " FOR UPDATE SKIP LOCKED",
            (now,),
        ).fetchall()
        parts: dict[int, list[tuple[int, Part]]] = defaultdict(list)
        if due:
            for episode_id, alert_id, *part in conn.execute(
                "SELECT episode_id, id, rule_id, severity, code, last_value, direction, details"
                " FROM alerts WHERE episode_id = ANY(%s) AND state <> 'resolved' ORDER BY id",
                ([row[0] for row in due],),
            ):
                parts[episode_id].append((alert_id, Part(*part)))
        for episode_id, patient_id, severity, route, routed_to in due:
            responsible, backup = units_for(conn, patient_id=patient_id, at=now)
            home = routed_to if route == "responsible" and routed_to else responsible
            if home is None or not parts[episode_id]:
                continue
            policy = policy_of(conn, organisation_id=home)
            level = Severity(severity)
            if route == "responsible" and backup is not None:
                target, next_route = policy_of(conn, organisation_id=backup), "backup"
                escalate_at = policy.deadline(level, now=now)
            else:
                target, next_route, escalate_at = policy, "on_call", None
            changed = {
                "route": next_route,
                "unit": target.organisation_id,
                "at": escalate_at,
                "now": now,
                "id": episode_id,
            }
            conn.execute(
                "UPDATE alert_episodes SET route = %(route)s, routed_to = %(unit)s,"
                " escalation_level = escalation_level + 1, escalate_at = %(at)s,"
                " updated_at = %(now)s WHERE id = %(id)s",
                changed,
            )
            conn.execute(
                "UPDATE alerts SET route = %(route)s, routed_to = %(unit)s,"
                " escalation_level = escalation_level + 1, updated_at = %(now)s"
                " WHERE episode_id = %(id)s AND state <> 'resolved'",
                changed,
            )
            events = EventBatch()
            details = {"from": route, "to": next_route, "unit": target.name}
            for alert_id, _part in parts[episode_id]:
                events.add(alert_id, "escalated", details)
            do_notify(
                conn,
                alert_id=parts[episode_id][0][0],
                severity=level,
                policy=target,
                route=next_route,
                now=now,
                parts=[part for _, part in parts[episode_id]],
                episode_id=episode_id,
                events=events,
            )
            events.write(conn, now=now)
            moved += 1
    return moved
