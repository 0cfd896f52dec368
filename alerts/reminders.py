"""Reminders to the patient: a scheduled measurement that is due and has not come is first
the patient's to fix, and only then the nurse's.

The sweep (alerts/engine.py `do_sweep`) does three things, in the transaction that also
applies the adherence findings:

1. *Close*: a reading newer than a reminder's `since` closes it (it is no longer about a
   missing measurement; a reminder not yet sent is never sent).
2. *Plan*: a scheduled measurement past its due time (the last reading, or the plan's start,
   plus `every_hours + grace_hours`) of a patient who has someone to remind gets one reminder,
   at the due time (in practice the first sweep after it, never a time already past) moved
   into the plan's allowed hours of the day (Oslo time: no reminders at night), and a second
   deadline `alert_after_hours` after it. The missing-measurement alert waits for that
   deadline (alerts/adherence.py); a patient with no one to remind gets the alert at the due
   time, as before reminders.
3. *Send*: a planned reminder whose time has come, inside the allowed hours, is written to the
   outbox (alerts/outbox.py) for every recipient, in the recipient's language; one the sweep
   finds only after the window shut moves to its next opening, and its deadline with it. The
   dispatcher delivers it like any notification, at least once and with the row's id as
   idempotency key; a reminder that cannot be delivered is a dead outbox row. One message per
   patient and sweep, however many of their measurements are missing.

The message names no measurement and no value: it leaves the hospital's systems, so it says
only that a planned measurement has not come, and links to the patient's own view.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg

from alerts.adherence import Scheduled
from alerts.outbox import do_enqueue_notification
from core.clock import DISPLAY_TIMEZONE
from core.i18n import translator
from core.rule_parameters import TUNABLES

MESSAGE_KIND: Final = "reminder"
REMINDER_CHANNELS: Final = ("email", "apprise")
"""The channels a patient may choose for reminders ("none" is no channel at all)."""
FROM_HOUR: Final = "missing_measurement.remind_from_hour"
UNTIL_HOUR: Final = "missing_measurement.remind_until_hour"
ALERT_AFTER: Final = "missing_measurement.alert_after_hours"


@dataclass(frozen=True, slots=True)
class Recipient:
    """Someone a patient's reminders go to, on one channel, in their language."""

    channel: str
    address: str
    language: str


def reminder_recipients(
    conn: psycopg.Connection, *, patient_ids: Collection[UUID], now: datetime
) -> dict[UUID, list[Recipient]]:
    """Who is reminded of each patient's missing measurements at `now`: the patient, on the
    channel they chose, in their preferred language. A patient with nobody to remind (they
    chose none) is left out. The one place that answers it, for a whole sweep at once, so
    relatives who may receive the patient's reminders (by the patient's consent, valid at
    `now`) can be added here."""
    found: dict[UUID, list[Recipient]] = defaultdict(list)
    for patient_id, channel, address, language in conn.execute(
        "SELECT c.patient_id, c.channel, c.address, p.preferred_language"
        " FROM reminder_channels c JOIN patients p ON p.id = c.patient_id"
        " WHERE c.patient_id = ANY(%s) ORDER BY c.patient_id",
        (list(patient_ids),),
    ):
        found[patient_id].append(Recipient(channel, address, language))
    return dict(found)


def reminder_channel(conn: psycopg.Connection, *, patient_id: UUID) -> tuple[str, str] | None:
    """The (channel, address) the patient chose for their reminders; None: no reminders."""
    row = conn.execute(
        "SELECT channel, address FROM reminder_channels WHERE patient_id = %s", (patient_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


def do_choose_reminder_channel(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    channel: str | None,
    address: str | None,
    now: datetime,
) -> None:
    """The patient's choice: reminders by `channel` to `address`, or none (channel None).
    The caller has checked the address as the channel will when it sends."""
    if channel is None:
        conn.execute("DELETE FROM reminder_channels WHERE patient_id = %s", (patient_id,))
        return
    if channel not in REMINDER_CHANNELS or not address:
        raise ValueError(f"reminders go by {' or '.join(REMINDER_CHANNELS)}, to an address")
    conn.execute(
        "INSERT INTO reminder_channels (patient_id, channel, address, updated_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (patient_id) DO UPDATE SET"
        " channel = EXCLUDED.channel, address = EXCLUDED.address,"
        " updated_at = EXCLUDED.updated_at",
        (patient_id, channel, address, now),
    )


@dataclass(frozen=True, slots=True)
class Window:
    """The hours of the day (Oslo time) a reminder may go out: from `start` up to `end`."""

    start: int
    end: int

    @classmethod
    def of(cls, parameters: Mapping[str, float]) -> Window:
        """The plan's window (the care plan keeps it open: core.rule_parameters.WINDOWS)."""
        return cls(int(_parameter(parameters, FROM_HOUR)), int(_parameter(parameters, UNTIL_HOUR)))

    def allows(self, moment: datetime) -> bool:
        local = moment.astimezone(DISPLAY_TIMEZONE)
        return self.start <= local.hour < self.end

    def first_from(self, moment: datetime) -> datetime:
        """`moment` if the window allows it, else the next time the window opens."""
        if self.allows(moment):
            return moment
        local = moment.astimezone(DISPLAY_TIMEZONE)
        day = local.date() if local.hour < self.start else local.date() + timedelta(days=1)
        return datetime.combine(day, time(self.start), DISPLAY_TIMEZONE)


def _parameter(parameters: Mapping[str, float], name: str) -> float:
    value = parameters.get(name, TUNABLES[name].default)
    assert value is not None, f"{name} has a default"
    return value


def do_remind(
    conn: psycopg.Connection, *, schedule: Sequence[Scheduled], now: datetime
) -> list[Scheduled]:
    """Close, plan and send the reminders due at `now` (see the module's docstring); returns
    `schedule` with the second deadline of each reminder planned or moved now. Run it inside
    the sweep's transaction."""
    _do_close(conn, now=now)
    planned = _do_plan(conn, schedule=schedule, now=now)
    moved = _do_send_due(conn, now=now)
    return [
        replace(item, alert_at=moved.get((item.patient_id, item.code, item.since), item.alert_at))
        for item in planned
    ]


def _do_close(conn: psycopg.Connection, *, now: datetime) -> None:
    """A reading taken after `since` closes the reminder; `closed_at` is when it was taken."""
    conn.execute(
        """
        UPDATE reminders r SET closed_at = x.first_at
          FROM (SELECT r2.id, min(x.measured_at) AS first_at
                  FROM reminders r2
                  JOIN readings x ON x.patient_id = r2.patient_id AND x.code = r2.code
                                 AND x.measured_at > r2.since AND x.measured_at <= %(now)s
                 WHERE r2.closed_at IS NULL
                 GROUP BY r2.id) x
         WHERE r.id = x.id
        """,
        {"now": now},
    )


def _do_plan(
    conn: psycopg.Connection, *, schedule: Sequence[Scheduled], now: datetime
) -> list[Scheduled]:
    """A reminder for each measurement newly past its due time whose patient has someone to
    remind; `schedule` with their second deadlines."""
    overdue = {item.patient_id for item in schedule if item.alert_at is None and now > item.due_at}
    reminded = reminder_recipients(conn, patient_ids=overdue, now=now) if overdue else {}
    planned: list[Scheduled] = []
    for item in schedule:
        if item.alert_at is not None or now <= item.due_at or item.patient_id not in reminded:
            planned.append(item)
            continue
        # Never in the past: after a sweep that ran late the patient still gets the whole
        # `alert_after_hours` between the reminder and the nurse's alert.
        remind_at = Window.of(item.parameters).first_from(max(item.due_at, now))
        alert_at = remind_at + timedelta(hours=_parameter(item.parameters, ALERT_AFTER))
        # A sweep beside this one may have planned it a moment ago: then its deadline holds.
        row = conn.execute(
            "INSERT INTO reminders (patient_id, code, since, due_at, remind_at, alert_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (patient_id, code, since) DO UPDATE SET code = EXCLUDED.code"
            " RETURNING alert_at",
            (item.patient_id, item.code, item.since, item.due_at, remind_at, alert_at),
        ).fetchone()
        assert row is not None
        planned.append(replace(item, alert_at=row[0]))
    return planned


def _do_send_due(
    conn: psycopg.Connection, *, now: datetime
) -> dict[tuple[UUID, str, datetime], datetime]:
    """Send the open reminders whose time has come, if the measurement is still scheduled.
    One message per patient: it is about all of their reminders sent now. A reminder whose
    time came while the window was shut (the sweep ran late, past the window's end) moves to
    the window's next opening, and its second deadline with it: the nurse's alert never
    overtakes a reminder that was never sent. One that has nobody to go to any more is the
    nurse's from the next sweep. Returns the moved reminders' new deadlines."""
    rows = conn.execute(
        """
        SELECT r.id, r.patient_id, r.code, r.since, r.remind_at, r.alert_at, c.rule_parameters
          FROM reminders r
          JOIN care_plans c ON c.patient_id = r.patient_id
          JOIN care_plan_measurements m ON m.patient_id = r.patient_id AND m.code = r.code
         WHERE r.closed_at IS NULL AND r.sent_at IS NULL AND r.remind_at <= %(now)s
         ORDER BY r.patient_id, r.id
           FOR UPDATE OF r SKIP LOCKED
        """,
        {"now": now},
    ).fetchall()
    due: dict[UUID, list[tuple[int, str, datetime]]] = defaultdict(list)
    moved: dict[tuple[UUID, str, datetime], datetime] = {}
    for reminder_id, patient_id, code, since, remind_at, alert_at, parameters in rows:
        window = Window.of(parameters)
        if window.allows(now):
            due[patient_id].append((reminder_id, code, since))
            continue
        later = window.first_from(now)
        moved[(patient_id, code, since)] = alert_at + (later - remind_at)
        conn.execute(
            "UPDATE reminders SET remind_at = %s, alert_at = %s WHERE id = %s",
            (later, moved[(patient_id, code, since)], reminder_id),
        )
    everyone = reminder_recipients(conn, patient_ids=due.keys(), now=now) if due else {}
    for patient_id, reminders in due.items():
        ids = [reminder_id for reminder_id, _code, _since in reminders]
        recipients = everyone.get(patient_id, [])
        for recipient in recipients:
            do_enqueue_notification(
                conn,
                alert_id=None,
                reminder_id=ids[0],
                channel=recipient.channel,
                address=recipient.address,
                message=reminder_message(recipient.language),
                now=now,
            )
        if recipients:
            conn.execute(
                "UPDATE reminders SET sent_at = %s, recipients = %s WHERE id = ANY(%s)",
                (now, len(recipients), ids),
            )
            continue
        # Nobody to remind any more (the patient chose none since): nothing to wait for.
        conn.execute(
            "UPDATE reminders SET sent_at = %s, recipients = 0, alert_at = %s WHERE id = ANY(%s)",
            (now, now, ids),
        )
        moved.update({(patient_id, code, since): now for _id, code, since in reminders})
    return moved


def reminder_message(language: str) -> dict[str, Any]:
    """The reminder as stored in the outbox, in `language`: plain words, no measurement named
    and no value. The dispatcher adds the link to the patient's own view when it sends."""
    t = translator(language)
    return {
        "version": 1,
        "kind": MESSAGE_KIND,
        "title": t("Heimvakt: a reminder to measure"),
        "text": t(
            "We have not received a measurement your care plan asks for. Please measure when"
            " you can: the result is sent to your care team by itself. If you cannot measure,"
            " or you feel worse, call your care team."
        ),
        "link_text": t("See what your care plan asks for"),
    }
