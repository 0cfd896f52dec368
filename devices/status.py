"""Device status reports (battery, firmware, signal, gateway backlog) and online/offline state.

A gateway publishes a report on ``{prefix}/devices/{device_id}/status`` and registers the same
topic as its MQTT last will with ``{"online": false}``, so the broker reports it offline when
the connection dies without a goodbye.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from pydantic import BaseModel, ConfigDict, Field


class StatusReport(BaseModel):
    """The status payload. Unknown fields are ignored; every field is optional."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    online: bool = True
    battery: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    """Battery charge, percent."""
    firmware: str | None = Field(default=None, max_length=64)
    signal: float | None = Field(default=None, ge=-150, le=0, allow_inf_nan=False)
    """Radio signal strength, dBm."""
    backlog: int | None = Field(default=None, ge=0)
    """Readings the gateway holds that it has not yet published."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: str
    online: bool | None
    battery_pct: float | None
    firmware: str | None
    signal_dbm: float | None
    backlog: int | None
    reported_at: datetime | None
    last_seen_at: datetime


def do_record_status(
    conn: psycopg.Connection, *, device_id: str, report: StatusReport, received_at: datetime
) -> bool:
    """Record a report; False when no such device is registered (nothing is written)."""
    row = conn.execute(
        """
        INSERT INTO device_status AS s (device_id, online, battery_pct, firmware, signal_dbm,
                                        backlog, reported_at, last_seen_at)
        SELECT id, %(online)s, %(battery)s, %(firmware)s, %(signal)s, %(backlog)s,
               %(at)s, %(at)s
        FROM devices WHERE id = %(device)s
        ON CONFLICT (device_id) DO UPDATE SET
            online = EXCLUDED.online,
            battery_pct = coalesce(EXCLUDED.battery_pct, s.battery_pct),
            firmware = coalesce(EXCLUDED.firmware, s.firmware),
            signal_dbm = coalesce(EXCLUDED.signal_dbm, s.signal_dbm),
            backlog = coalesce(EXCLUDED.backlog, s.backlog),
            reported_at = EXCLUDED.reported_at,
            last_seen_at = greatest(s.last_seen_at, EXCLUDED.last_seen_at)
        WHERE s.reported_at IS NULL OR s.reported_at <= EXCLUDED.reported_at
        RETURNING 1
        """,
        {
            "device": device_id,
            "online": report.online,
            "battery": report.battery,
            "firmware": report.firmware,
            "signal": report.signal,
            "backlog": report.backlog,
            "at": received_at,
        },
    ).fetchone()
    if row is not None:
        return True
    return conn.execute("SELECT 1 FROM devices WHERE id = %s", (device_id,)).fetchone() is not None


def status_of(conn: psycopg.Connection, *, device_id: str) -> DeviceStatus | None:
    with conn.cursor(row_factory=class_row(DeviceStatus)) as cur:
        return cur.execute(
            """
            SELECT device_id, online, battery_pct, firmware, signal_dbm, backlog, reported_at,
                   last_seen_at
            FROM device_status WHERE device_id = %s
            """,
            (device_id,),
        ).fetchone()


@dataclass(frozen=True, slots=True)
class DeviceOverview:
    """A device a patient measures with now, and what we last heard from it."""

    device_id: str
    kind: str
    online: bool | None
    battery_pct: float | None
    last_seen_at: datetime | None
    firmware: str | None = None
    """As the device last reported it: its own text, shown escaped."""


def devices_with_status(
    conn: psycopg.Connection, *, patient_id: UUID, at: datetime
) -> list[DeviceOverview]:
    with conn.cursor(row_factory=class_row(DeviceOverview)) as cur:
        return cur.execute(
            """
            SELECT d.id AS device_id, d.kind, s.online, s.battery_pct, s.last_seen_at, s.firmware
            FROM devices d
            JOIN device_assignments a ON a.device_id = d.id
            LEFT JOIN device_status s ON s.device_id = d.id
            WHERE a.patient_id = %(patient)s AND a.valid_from <= %(at)s
              AND (a.valid_to IS NULL OR a.valid_to > %(at)s)
            ORDER BY d.kind, d.id
            """,
            {"patient": patient_id, "at": at},
        ).fetchall()
