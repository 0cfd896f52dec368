"""Where an alert goes: the unit responsible for the patient at that moment, within its opening
hours; else the out-of-hours route. How long it may wait before it escalates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from alerts.findings import Severity
from care.handover import backup_unit, responsible_unit

DEFAULT_RED_MINUTES = 15
DEFAULT_YELLOW_MINUTES = 480


@dataclass(frozen=True, slots=True)
class Policy:
    organisation_id: UUID
    name: str
    timezone: str
    opening_hours: list[dict[str, Any]]
    red_minutes: int
    yellow_minutes: int
    on_call: tuple[str, str] | None
    """(channel, address) of the on-call contact, the last step of escalation."""
    out_of_hours: tuple[str, str] | None
    include_values: bool

    def deadline(self, severity: Severity, *, now: datetime) -> datetime:
        minutes = self.red_minutes if severity is Severity.RED else self.yellow_minutes
        return now + timedelta(minutes=minutes)

    def is_open(self, moment: datetime) -> bool:
        """Opening hours in the unit's own time zone; no hours given means always open."""
        if not self.opening_hours:
            return True
        local = moment.astimezone(ZoneInfo(self.timezone))
        clock = local.time()
        return any(
            hours["weekday"] == local.weekday()
            and time.fromisoformat(hours["opens"]) <= clock < time.fromisoformat(hours["closes"])
            for hours in self.opening_hours
        )


def policy_of(conn: psycopg.Connection, *, organisation_id: UUID) -> Policy:
    row = conn.execute(
        """
        SELECT o.name, o.timezone, o.opening_hours,
               coalesce(p.red_minutes, %(red)s), coalesce(p.yellow_minutes, %(yellow)s),
               p.on_call_channel, p.on_call_address, p.out_of_hours_channel,
               p.out_of_hours_address, coalesce(p.include_values, false)
          FROM organisations o LEFT JOIN escalation_policies p ON p.organisation_id = o.id
         WHERE o.id = %(org)s
        """,
        {"org": organisation_id, "red": DEFAULT_RED_MINUTES, "yellow": DEFAULT_YELLOW_MINUTES},
    ).fetchone()
    assert row is not None, f"no organisation {organisation_id}"
    name, tz, hours, red, yellow, call_ch, call_to, ooh_ch, ooh_to, values = row
    return Policy(
        organisation_id=organisation_id,
        name=name,
        timezone=tz,
        opening_hours=hours,
        red_minutes=red,
        yellow_minutes=yellow,
        on_call=(call_ch, call_to) if call_ch and call_to else None,
        out_of_hours=(ooh_ch, ooh_to) if ooh_ch and ooh_to else None,
        include_values=values,
    )


def units_for(
    conn: psycopg.Connection, *, patient_id: UUID, at: datetime
) -> tuple[UUID | None, UUID | None]:
    """The responsible and the back-up unit at `at`."""
    return (
        responsible_unit(conn, patient_id=patient_id, at=at),
        backup_unit(conn, patient_id=patient_id, at=at),
    )
