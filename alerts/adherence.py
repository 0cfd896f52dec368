"""Time-based findings, evaluated by the sweep rather than on ingest: a scheduled measurement
that has not come (adherence), and a device that has gone silent, whose battery is running out,
or whose gateway holds readings it has not sent (technical: the data's quality, not the
patient's state). All are kept apart from clinical findings, and none can be switched off: only
acknowledged and resolved.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg

from alerts.findings import Category, Finding, Severity
from alerts.library.catalogue import RULES_BY_ID, Rule

DEVICE_SILENT_WITHOUT_SCHEDULE: Final = timedelta(hours=48)
"""The silent-device limit of a patient whose plan has no schedule and sets no limit."""
MISSING_MEASUREMENT_VERSION: Final = RULES_BY_ID["missing_measurement"].version
DEVICE_SILENT_VERSION: Final = RULES_BY_ID["device_silent"].version
BATTERY_LOW: Final = RULES_BY_ID["battery_low"]
GATEWAY_BACKLOG: Final = RULES_BY_ID["gateway_backlog"]


@dataclass(frozen=True, slots=True)
class Scheduled:
    """One scheduled measurement of one patient as the sweep finds it: when it was last taken
    (or the plan began), when it is due, and when a missing one becomes the nurse's alert."""

    patient_id: UUID
    code: str
    every_hours: int
    grace_hours: int
    last_at: datetime | None
    since: datetime
    """The last reading, or the plan's start when there is none."""
    parameters: dict[str, float]
    """The plan's rule parameters (core/rule_parameters.py)."""
    alert_at: datetime | None
    """The second deadline of the reminder about this `since` (alerts/reminders.py); None
    when the patient was not reminded, and the alert comes at `due_at`."""

    @property
    def due_at(self) -> datetime:
        return self.since + timedelta(hours=self.every_hours + self.grace_hours)


def scheduled_measurements(conn: psycopg.Connection, *, now: datetime) -> list[Scheduled]:
    """Every scheduled measurement of every plan that has begun, with its reminder's second
    deadline when there is one."""
    rows = conn.execute(
        """
        SELECT m.patient_id, m.code, m.every_hours, m.grace_hours, l.last_at,
               coalesce(l.last_at, v.since) AS since, c.rule_parameters AS parameters,
               r.alert_at
          FROM care_plan_measurements m
          JOIN care_plans c ON c.patient_id = m.patient_id
          CROSS JOIN LATERAL (
              SELECT max(x.measured_at) AS last_at FROM readings x
               WHERE x.patient_id = m.patient_id AND x.code = m.code
                 AND x.measured_at <= %(now)s) l
          CROSS JOIN LATERAL (
              SELECT min(p.changed_at) AS since FROM care_plan_versions p
               WHERE p.patient_id = m.patient_id) v
          LEFT JOIN reminders r ON r.patient_id = m.patient_id AND r.code = m.code
                               AND r.since = coalesce(l.last_at, v.since)
         WHERE coalesce(l.last_at, v.since) IS NOT NULL
        """,
        {"now": now},
    ).fetchall()
    return [Scheduled(*row) for row in rows]


def adherence_findings(
    conn: psycopg.Connection, *, now: datetime, schedule: Sequence[Scheduled] | None = None
) -> Iterator[tuple[UUID, Finding]]:
    """`schedule`: the scheduled measurements as the sweep's reminders left them (read here
    when not given)."""
    if schedule is None:
        schedule = scheduled_measurements(conn, now=now)
    yield from _missing_measurements(schedule, now=now)
    yield from _silent_devices(conn, now=now)
    yield from _device_health(conn, now=now)


def _missing_measurements(
    schedule: Sequence[Scheduled], *, now: datetime
) -> Iterator[tuple[UUID, Finding]]:
    """Per scheduled measurement: missing once `every_hours + grace_hours` have passed since the
    last reading (or since the plan started) and, when the patient was reminded of it, the
    reminder's second deadline has passed too; back on schedule re-arms it."""
    for item in schedule:
        deadline = item.due_at if item.alert_at is None else max(item.due_at, item.alert_at)
        overdue = now > deadline
        yield (
            item.patient_id,
            Finding(
                rule="missing_measurement",
                rule_version=MISSING_MEASUREMENT_VERSION,
                instance=f"missing_measurement:{item.code}",
                severity=Severity.YELLOW if overdue else Severity.GREEN,
                category=Category.ADHERENCE,
                measured_at=now,
                code=item.code,
                details={
                    "last_reading_at": item.last_at,
                    "every_hours": item.every_hours,
                    "grace_hours": item.grace_hours,
                    "reminded": item.alert_at is not None,
                },
            ),
        )


def _silent_devices(conn: psycopg.Connection, *, now: datetime) -> Iterator[tuple[UUID, Finding]]:
    """A device assigned now that we have not heard from for longer than the patient's limit:
    the care plan's `device_silent.hours`, else the longest interval plus grace of its
    schedule (a device quiet that long has missed a reading whatever it measures; a missed
    daily reading is the missing-measurement rule's), else 48 hours. Silence counts from the
    device's last reading or status, and never from before its registration or assignment:
    an assignment dated back does not make a new device silent at once."""
    rows = conn.execute(
        """
        SELECT a.patient_id, a.device_id, s.last_seen_at,
               greatest(s.last_seen_at, a.valid_from, d.created_at) AS since,
               (c.rule_parameters->>'device_silent.hours')::float8 AS tuned,
               (SELECT max(m.every_hours + m.grace_hours) FROM care_plan_measurements m
                 WHERE m.patient_id = a.patient_id) AS scheduled
          FROM device_assignments a
          JOIN devices d ON d.id = a.device_id
          LEFT JOIN device_status s ON s.device_id = a.device_id
          LEFT JOIN care_plans c ON c.patient_id = a.patient_id
         WHERE a.valid_from <= %(now)s AND (a.valid_to IS NULL OR a.valid_to > %(now)s)
        """,
        {"now": now},
    ).fetchall()
    for patient_id, device_id, last_seen_at, since, tuned, scheduled in rows:
        if tuned is not None:
            limit = timedelta(hours=tuned)
        elif scheduled is not None:
            limit = timedelta(hours=scheduled)
        else:
            limit = DEVICE_SILENT_WITHOUT_SCHEDULE
        silent = now - since > limit
        yield (
            patient_id,
            Finding(
                rule="device_silent",
                rule_version=DEVICE_SILENT_VERSION,
                instance=f"device_silent:{device_id}",
                severity=Severity.YELLOW if silent else Severity.GREEN,
                category=Category.TECHNICAL,
                measured_at=now,
                details={
                    "device_id": device_id,
                    "last_seen_at": last_seen_at,
                    "silent_since": since,
                    "limit_hours": limit.total_seconds() / 3600,
                },
            ),
        )


def _device_health(conn: psycopg.Connection, *, now: datetime) -> Iterator[tuple[UUID, Finding]]:
    """From each assigned device's last status report: a battery below 20 % and a gateway
    holding 50 readings or more are yellow; 30 % or more, and 10 or fewer, are clearly normal
    and re-arm; in between, nothing changes (so a value hovering at a limit cannot flap)."""
    rows = conn.execute(
        """
        SELECT a.patient_id, s.device_id, s.battery_pct, s.backlog, s.reported_at
          FROM device_assignments a
          JOIN device_status s ON s.device_id = a.device_id
         WHERE a.valid_from <= %(now)s AND (a.valid_to IS NULL OR a.valid_to > %(now)s)
           AND (s.battery_pct IS NOT NULL OR s.backlog IS NOT NULL)
        """,
        {"now": now},
    ).fetchall()
    battery, backlog = BATTERY_LOW.defaults, GATEWAY_BACKLOG.defaults
    for patient_id, device_id, battery_pct, waiting, reported_at in rows:
        details = {"device_id": device_id, "reported_at": reported_at}
        if battery_pct is not None:
            low = battery_pct < battery["below_percent"]
            if low or battery_pct >= battery["clearly_normal_percent"]:
                yield (
                    patient_id,
                    _technical(
                        BATTERY_LOW, device_id, low, now, {**details, "battery_pct": battery_pct}
                    ),
                )
        if waiting is not None:
            behind = waiting >= backlog["waiting_at_least"]
            if behind or waiting <= backlog["clearly_normal_at_most"]:
                yield (
                    patient_id,
                    _technical(
                        GATEWAY_BACKLOG, device_id, behind, now, {**details, "backlog": waiting}
                    ),
                )


def _technical(
    rule: Rule, device_id: str, found: bool, now: datetime, details: dict[str, object]
) -> Finding:
    return Finding(
        rule=rule.id,
        rule_version=rule.version,
        instance=f"{rule.id}:{device_id}",
        severity=Severity.YELLOW if found else Severity.GREEN,
        category=Category.TECHNICAL,
        measured_at=now,
        details=details,
    )
