"""What an alert's history and its notifications are written through: the alert events and
the outbox rows of one step (opening, a raised severity, an escalation, a person's action).

Every step on an alert, whoever takes it, records an `alert_events` row here, and its
notifications are written to the outbox in the same transaction as the change that caused
them, so a committed change always has them and a rolled-back one has none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from alerts.findings import Finding, Severity
from alerts.outbox import build_message, do_enqueue_notification, recipients_for
from alerts.routing import Policy

Recipients = dict[tuple[UUID, Severity], list[tuple[str, str]]]
"""Per (unit, severity): the subscribers' (channel, address), looked up once per batch."""


class EventBatch:
    """Alert events gathered to be written in one statement (a batch of findings)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, Jsonb]] = []

    def add(self, alert_id: int, action: str, details: dict[str, Any]) -> None:
        self.rows.append((alert_id, action, Jsonb(details)))

    def write(self, conn: psycopg.Connection, *, now: datetime) -> None:
        if not self.rows:
            return
        ids, actions, details = zip(*self.rows, strict=True)
        conn.execute(
            "INSERT INTO alert_events (alert_id, at, action, details)"
            " SELECT a, %s, b, d FROM unnest(%s::bigint[], %s::text[], %s::jsonb[]) AS v(a, b, d)",
            (now, list(ids), list(actions), list(details)),
        )
        self.rows.clear()


def do_record_event(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    action: str,
    now: datetime,
    actor: UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """One step in the alert's history; `actor` is the person who took it (None: the system)."""
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, actor, action, details)"
        " VALUES (%s, %s, %s, %s, %s)",
        (alert_id, now, actor, action, Jsonb(details or {})),
    )


def do_notify(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    severity: Severity,
    policy: Policy,
    route: str,
    now: datetime,
    values: Finding | None,
    events: EventBatch | None = None,
    recipients: Recipients | None = None,
) -> int:
    """Write the outbox rows for one step of an alert's route; returns how many. A batch
    passes `events` to write the 'notified' events with its others, and `recipients` to look
    up each unit's subscribers once. The link to the patient's page is added when the
    dispatcher sends (alerts/dispatch.py), from the configured public address."""
    if route == "out_of_hours":
        targets = [policy.out_of_hours] if policy.out_of_hours else []
    elif route == "on_call":
        targets = [policy.on_call] if policy.on_call else []
    else:
        known = {} if recipients is None else recipients
        wanted = (policy.organisation_id, severity)
        if wanted not in known:
            known[wanted] = recipients_for(
                conn, organisation_id=policy.organisation_id, severity=severity.value, now=now
            )
        targets = known[wanted]
    message = build_message(
        alert_id=alert_id,
        severity=severity.value,
        unit_name=policy.name,
        values=_values(values) if policy.include_values and values is not None else None,
    )
    for channel, address in targets:
        do_enqueue_notification(
            conn, alert_id=alert_id, channel=channel, address=address, message=message, now=now
        )
    details = {"route": route, "unit": policy.name, "recipients": len(targets)}
    if events is None:
        do_record_event(conn, alert_id=alert_id, action="notified", now=now, details=details)
    else:
        events.add(alert_id, "notified", details)
    return len(targets)


def _values(finding: Finding) -> dict[str, Any]:
    return {"code": finding.code, "value": finding.value, "direction": finding.direction}
