"""What an alert's history and its notifications are written through: the alert events and
the outbox rows of one step (opening, a raised severity, an escalation, a person's action).

Every step on an alert, whoever takes it, records an `alert_events` row here, and its
notifications are written to the outbox in the same transaction as the change that caused
them, so a committed change always has them and a rolled-back one has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from alerts.findings import Finding, Severity
from alerts.library.catalogue import RULES_BY_ID
from alerts.outbox import build_message, do_enqueue_notification, recipients_for
from alerts.routing import Policy
from core import catalog

Recipients = dict[tuple[UUID, Severity], list[tuple[str, str]]]
"""Per (unit, severity): the subscribers' (channel, address), looked up once per batch."""


class EventBatch:
    """Alert events gathered to be written in one statement (a batch of findings)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, Jsonb, UUID | None]] = []

    def add(
        self, alert_id: int, action: str, details: dict[str, Any], *, actor: UUID | None = None
    ) -> None:
        """`actor`: the person who took the step (None: the system)."""
        self.rows.append((alert_id, action, Jsonb(details), actor))

    def write(self, conn: psycopg.Connection, *, now: datetime) -> None:
        if not self.rows:
            return
        ids, actions, details, actors = zip(*self.rows, strict=True)
        conn.execute(
            "INSERT INTO alert_events (alert_id, at, action, details, actor)"
            " SELECT a, %s, b, d, p"
            " FROM unnest(%s::bigint[], %s::text[], %s::jsonb[], %s::uuid[]) AS v(a, b, d, p)",
            (now, list(ids), list(actions), list(details), list(actors)),
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


@dataclass(frozen=True, slots=True)
class Part:
    """One alert of an episode as a notification lists it."""

    instance: str
    severity: str
    code: str | None
    value: float | None
    direction: str | None
    details: Mapping[str, Any]

    @classmethod
    def of(cls, finding: Finding) -> Part:
        return cls(
            finding.instance,
            finding.severity.value,
            finding.code,
            finding.value,
            finding.direction,
            finding.details,
        )


def reason(part: Part) -> dict[str, Any]:
    """What a notification says about one part: the rule in words and the value behind it (a
    NEWS2 score with the parameters it used and those missing). In English, like the rest of
    the message; never a raw rule id. Only a unit whose policy includes values gets these
    (alerts/outbox.py: a message carries the minimum otherwise)."""
    rule_id = part.instance.partition(":")[0]
    rule = RULES_BY_ID.get(rule_id)
    title = rule.title["en"] if rule is not None else rule_id.replace("_", " ")
    measurement = catalog.lookup(part.code) if part.code else None
    text = title if measurement is None else f"{title}: {measurement.name('en')}"
    if part.direction and measurement is not None:
        text += f" ({part.direction})"
    if rule_id == "news2_partial":
        used = part.details.get("used", {})
        names = [_name(code) + f" {v['value']:g} ({v['score']})" for code, v in used.items()]
        missing = [_name(code) for code in part.details.get("missing", [])]
        text += (
            f" {part.details.get('total')} on SpO2 scale {part.details.get('spo2_scale')},"
            f" from {', '.join(names)}; missing {', '.join(missing)}"
        )
    elif part.value is not None and measurement is not None:
        text += f" {part.value:g} {measurement.unit}"
    return {
        "rule": rule_id,
        "severity": part.severity,
        "code": part.code,
        "value": part.value,
        "direction": part.direction,
        "text": text,
    }


def _name(code: str) -> str:
    measurement = catalog.lookup(code)
    return measurement.name("en") if measurement is not None else code


def do_notify(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    severity: Severity,
    policy: Policy,
    route: str,
    now: datetime,
    parts: Sequence[Part] = (),
    episode_id: int | None = None,
    events: EventBatch | None = None,
    recipients: Recipients | None = None,
) -> int:
    """Write the outbox rows for one step of an episode's route; returns how many. `parts`
    are the episode's alerts, which the message lists with their values when the unit's
    policy includes values (and leaves out otherwise). A batch passes `events` to write the
    'notified' events with its others, and `recipients` to look up each unit's subscribers
    once. The link to the patient's page is added when the dispatcher sends
    (alerts/dispatch.py), from the configured public address."""
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
        reasons=[reason(part) for part in parts] if policy.include_values else [],
        episode_id=episode_id,
    )
    _enqueue_to(conn, targets, alert_id=alert_id, episode_id=episode_id, message=message, now=now)
    details = {"route": route, "unit": policy.name, "recipients": len(targets)}
    if episode_id is not None:
        details["episode"] = episode_id
    if events is None:
        do_record_event(conn, alert_id=alert_id, action="notified", now=now, details=details)
    else:
        events.add(alert_id, "notified", details)
    return len(targets)


def do_notify_technical_contacts(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    episode_id: int,
    unit: UUID,
    failed_channel: str,
    now: datetime,
) -> int:
    """Tell the unit's technical contacts that a notification could not be delivered, on every
    channel of theirs except the one that failed (the same channel would most likely fail
    again and hide its own failure); returns how many were written."""
    row = conn.execute("SELECT name FROM organisations WHERE id = %s", (unit,)).fetchone()
    targets = conn.execute(
        "SELECT channel, address FROM technical_contacts"
        " WHERE organisation_id = %s AND channel <> %s ORDER BY channel, address",
        (unit, failed_channel),
    ).fetchall()
    message = build_message(
        alert_id=alert_id,
        severity=Severity.RED.value,
        unit_name="" if row is None else row[0],
        reasons=[
            {
                "rule": "notification_undeliverable",
                "severity": Severity.RED.value,
                "text": f"Notification undeliverable on the {failed_channel} channel",
            }
        ],
        episode_id=episode_id,
    )
    _enqueue_to(conn, targets, alert_id=alert_id, episode_id=episode_id, message=message, now=now)
    if targets:
        do_record_event(
            conn,
            alert_id=alert_id,
            action="notified",
            now=now,
            details={
                "route": "technical_contact",
                "recipients": len(targets),
                "episode": episode_id,
            },
        )
    return len(targets)


def _enqueue_to(
    conn: psycopg.Connection,
    targets: Sequence[tuple[str, str]],
    *,
    alert_id: int,
    episode_id: int | None,
    message: dict[str, Any],
    now: datetime,
) -> None:
    """One outbox row per (channel, address), all carrying the same message."""
    for channel, address in targets:
        do_enqueue_notification(
            conn,
            alert_id=alert_id,
            channel=channel,
            address=address,
            message=message,
            now=now,
            episode_id=episode_id,
        )
