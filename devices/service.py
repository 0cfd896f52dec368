"""State changes (``do_*``) and queries for the device registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg.rows import class_row


class AssignmentConflictError(ValueError):
    """The device already measures for someone in that period."""


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: str
    vendor: str | None
    model: str | None


def do_register_device(
    conn: psycopg.Connection,
    *,
    device_id: str,
    kind: str,
    vendor: str | None = None,
    model: str | None = None,
    now: datetime | None = None,
) -> Device:
    """Register a device; `now` is the moment of registration (the database's clock when not
    given), from which a device never heard from counts as silent (alerts/adherence.py)."""
    conn.execute(
        "INSERT INTO devices (id, kind, vendor, model, created_at)"
        " VALUES (%s, %s, %s, %s, coalesce(%s, now()))",
        (device_id, kind, vendor, model, now),
    )
    return Device(id=device_id, kind=kind, vendor=vendor, model=model)


def do_assign_device(
    conn: psycopg.Connection,
    *,
    device_id: str,
    patient_id: UUID,
    valid_from: datetime,
    valid_to: datetime | None = None,
) -> None:
    """Attribute the device's readings in [valid_from, valid_to) to the patient.

    The device row is locked so two assignments cannot slip past the overlap check together.
    """
    with conn.transaction():
        if (
            conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", (device_id,)).fetchone()
            is None
        ):
            raise LookupError(f"no device {device_id!r}")
        overlapping = conn.execute(
            """
            SELECT 1 FROM device_assignments
            WHERE device_id = %(device)s
              AND (valid_to IS NULL OR valid_to > %(start)s)
              AND (%(end)s::timestamptz IS NULL OR valid_from < %(end)s)
            """,
            {"device": device_id, "start": valid_from, "end": valid_to},
        ).fetchone()
        if overlapping is not None:
            raise AssignmentConflictError(f"{device_id} is already assigned in that period")
        conn.execute(
            "INSERT INTO device_assignments (device_id, patient_id, valid_from, valid_to)"
            " VALUES (%s, %s, %s, %s)",
            (device_id, patient_id, valid_from, valid_to),
        )


def devices_for_patient(
    conn: psycopg.Connection, *, patient_id: UUID, at: datetime
) -> list[Device]:
    with conn.cursor(row_factory=class_row(Device)) as cur:
        return cur.execute(
            """
            SELECT d.id, d.kind, d.vendor, d.model
            FROM devices d JOIN device_assignments a ON a.device_id = d.id
            WHERE a.patient_id = %(patient)s AND a.valid_from <= %(at)s
              AND (a.valid_to IS NULL OR a.valid_to > %(at)s)
            ORDER BY d.id
            """,
            {"patient": patient_id, "at": at},
        ).fetchall()
