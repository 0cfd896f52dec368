"""Time-based findings, evaluated by the sweep rather than on ingest: a scheduled measurement
that has not come (adherence), and a device that has gone silent, whose battery is running out,
or whose gateway holds readings it has not sent (technical: the data's quality, not the
patient's state). All are kept apart from clinical findings, and none can be switched off: only
acknowledged and resolved.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def adherence_findings(
    conn: psycopg.Connection, *, now: datetime
) -> Iterator[tuple[UUID, Finding]]:
    yield from _missing_measurements(conn, now=now)
    yield from _silent_devices(conn, now=now)
    yield from _device_health(conn, now=now)


def _missing_measurements(
    conn: psycopg.Connection, *, now: datetime
) -> Iterator[tuple[UUID, Finding]]:
    """Per scheduled measurement: missing once `every_hours + grace_hours` have passed since the
    last reading (or since the plan started); back on schedule re-arms it."""
    rows = conn.execute(
        """
        SELECT m.patient_id, m.code, m.every_hours, m.grace_hours,
               (SELECT max(r.measured_at) FROM readings r
                 WHERE r.patient_id = m.patient_id AND r.code = m.code
                   AND r.measured_at <= %(now)s) AS last_at,
               (SELECT min(v.changed_at) FROM care_plan_versions v
                 WHERE v.patient_id = m.patient_id) AS plan_since
          FROM care_plan_measurements m
        """,
        {"now": now},
    ).fetchall()
    for patient_id, code, every, grace, last_at, plan_since in rows:
        since = last_at or plan_since
        if since is None:
            continue
        overdue = now - since > timedelta(hours=every + grace)
        yield (
            patient_id,
            Finding(
                rule="missing_measurement",
                rule_version=MISSING_MEASUREMENT_VERSION,
                instance=f"missing_measurement:{code}",
                severity=Severity.YELLOW if overdue else Severity.GREEN,
                category=Category.ADHERENCE,
                measured_at=now,
                code=code,
                details={
                    "last_reading_at": last_at,
                    "every_hours": every,
                    "grace_hours": grace,
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
