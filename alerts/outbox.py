"""The notification outbox: what a notification says, who gets it, and writing it down.

A notification is a row in ``notifications`` written in the same transaction as the alert change
that caused it, so a committed change always has its notifications (none is lost when the
process dies right after the commit) and a change that rolled back has none. The dispatcher
(alerts/dispatch.py) delivers the rows later, at least once; the row's id is the idempotency key
every attempt carries, so a receiver can drop the duplicate a crash mid-send may cause.

A message leaves the hospital's systems by e-mail, SMS or chat, so it carries the minimum: the
severity, the unit and a link to log in. No name, no diagnosis and no measured values, unless
the unit has chosen to include values (``escalation_policies.include_values``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from care.people import current

MESSAGE_VERSION = 1
SEVERITIES = ("yellow", "red")
"""In rising order: a subscription for yellow also receives red."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _one_line(text: str, *, limit: int = 200) -> str:
    """Unit names end up in e-mail subjects and SMS: no line breaks (header injection)."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def build_message(
    *,
    alert_id: int,
    severity: str,
    unit_name: str,
    reasons: Sequence[Mapping[str, Any]] = (),
    episode_id: int | None = None,
) -> dict[str, Any]:
    """The notification's content, as stored in the outbox (JSON).

    `reasons` lists every rule of the episode the notification is about, with the values
    behind them; alerts/notify.py gives them only when the unit's policy includes values.
    Otherwise nothing clinical is in the message, and the reader logs in through the link to
    see it: the dispatcher adds the link when it sends (`with_link`), from the configured
    public address.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    unit = _one_line(unit_name)
    message: dict[str, Any] = {
        "version": MESSAGE_VERSION,
        "alert_id": alert_id,
        "severity": severity,
        "unit": unit,
        "title": f"Heimvakt: {severity} alert for {unit}",
    }
    if episode_id is not None:
        message["episode_id"] = episode_id
    if reasons:
        message["reasons"] = [dict(reason) for reason in reasons]
    return message


def with_link(message: Mapping[str, Any], *, link: str) -> dict[str, Any]:
    """The message as it is sent: with the link to log in and see the alert."""
    return {**message, "link": link}


def do_enqueue_notification(
    conn: psycopg.Connection,
    *,
    alert_id: int | None,
    channel: str,
    address: str,
    message: dict[str, Any],
    now: datetime,
    episode_id: int | None = None,
    reminder_id: int | None = None,
) -> UUID:
    """Write one pending notification, due at once; returns its id (the idempotency key).
    It is about an alert or, for a reminder to a patient (alerts/reminders.py), a reminder.

    Run it inside the transaction of the alert change that causes it: that is what makes the
    notification exactly as durable as the change.
    """
    row = conn.execute(
        "INSERT INTO notifications (alert_id, created_at, channel, address, message,"
        " next_attempt_at, episode_id, reminder_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (alert_id, now, channel, address, Jsonb(message), now, episode_id, reminder_id),
    ).fetchone()
    assert row is not None
    return row[0]


def recipients_for(
    conn: psycopg.Connection, *, organisation_id: UUID, severity: str, now: datetime
) -> list[tuple[str, str]]:
    """(channel, address) of every subscription that wants `severity` from someone employed at
    the organisation now: people who have left stop receiving alerts the day they leave."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    rows = conn.execute(
        f"""
        SELECT DISTINCT s.channel, s.address
          FROM notification_subscriptions s
          JOIN staff_memberships m ON m.staff_id = s.staff_id
         WHERE m.organisation_id = %(organisation)s AND {current("m")}
           AND array_position(%(order)s::text[], s.min_severity)
               <= array_position(%(order)s::text[], %(severity)s)
         ORDER BY s.channel, s.address
        """,
        {
            "organisation": organisation_id,
            "now": now,
            "severity": severity,
            "order": list(SEVERITIES),
        },
    ).fetchall()
    return [(channel, address) for channel, address in rows]


@dataclass(frozen=True, slots=True)
class SentNotification:
    """One outbox row as the demo outbox shows it."""

    created_at: datetime
    channel: str
    address: str
    title: str
    state: str
    patient_id: UUID


def recent_notifications(
    conn: psycopg.Connection, *, patient_ids: Sequence[UUID], limit: int = 10
) -> list[SentNotification]:
    """The newest notifications about alerts on these patients (whom the caller has already
    been allowed to see) and the reminders sent to them, newest first: a reminder that could
    not be delivered shows here as dead."""
    with conn.cursor(row_factory=class_row(SentNotification)) as cur:
        return cur.execute(
            """
            SELECT created_at, channel, address, title, state, patient_id FROM (
                SELECT n.id, n.created_at, n.channel, n.address,
                       n.message->>'title' AS title, n.state, a.patient_id
                  FROM notifications n JOIN alerts a ON a.id = n.alert_id
                 WHERE a.patient_id = ANY(%(patients)s)
                UNION ALL
                SELECT n.id, n.created_at, n.channel, n.address, n.message->>'title', n.state,
                       r.patient_id
                  FROM notifications n JOIN reminders r ON r.id = n.reminder_id
                 WHERE r.patient_id = ANY(%(patients)s)
            ) sent
             ORDER BY created_at DESC, id
             LIMIT %(limit)s
            """,
            {"patients": list(patient_ids), "limit": limit},
        ).fetchall()
