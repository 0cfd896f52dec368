"""State changes (``do_*``) and queries for the device registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from devices.credentials import mosquitto_hash, new_password


class AssignmentConflictError(ValueError):
    """The device already measures for someone in that period."""


class DeviceExistsError(ValueError):
    """A device with that id is already registered."""


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: str
    vendor: str | None
    model: str | None
    serial: str | None = None
    measurements: Sequence[str] = ()
    """The LOINC codes it produces, as registered."""
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Provisioned:
    """A device just registered, with its broker password: shown this once, kept as a hash."""

    device: Device
    broker_password: str


def do_register_device(
    conn: psycopg.Connection,
    *,
    device_id: str,
    kind: str,
    vendor: str | None = None,
    model: str | None = None,
    serial: str | None = None,
    measurements: Sequence[str] = (),
    now: datetime | None = None,
) -> Device:
    """Register a device; `now` is the moment of registration (the database's clock when not
    given), from which a device never heard from counts as silent (alerts/adherence.py)."""
    conn.execute(
        "INSERT INTO devices (id, kind, vendor, model, serial, measurements, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()))",
        (device_id, kind, vendor, model, serial, list(measurements), now),
    )
    return Device(
        id=device_id,
        kind=kind,
        vendor=vendor,
        model=model,
        serial=serial,
        measurements=tuple(measurements),
    )


def do_provision_device(
    conn: psycopg.Connection,
    *,
    device_id: str,
    kind: str,
    now: datetime,
    vendor: str | None = None,
    model: str | None = None,
    serial: str | None = None,
    measurements: Sequence[str] = (),
) -> Provisioned:
    """Register a device with a broker login of its own. Raises `DeviceExistsError`."""
    with conn.transaction():
        if conn.execute("SELECT 1 FROM devices WHERE id = %s", (device_id,)).fetchone():
            raise DeviceExistsError(f"device {device_id!r} is already registered")
        device = do_register_device(
            conn,
            device_id=device_id,
            kind=kind,
            vendor=vendor,
            model=model,
            serial=serial,
            measurements=measurements,
            now=now,
        )
        return Provisioned(device, do_rotate_broker_password(conn, device_id=device_id, now=now))


def do_rotate_broker_password(conn: psycopg.Connection, *, device_id: str, now: datetime) -> str:
    """A new broker password for the device, returned this once; the old one stops working at
    the next broker export. Raises LookupError for an unknown or revoked device."""
    password = new_password()
    row = conn.execute(
        "UPDATE devices SET broker_secret = %s, broker_secret_set_at = %s"
        " WHERE id = %s AND revoked_at IS NULL RETURNING 1",
        (mosquitto_hash(password), now, device_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"no device {device_id!r} in service")
    return password


def do_revoke_device(conn: psycopg.Connection, *, device_id: str, now: datetime) -> bool:
    """Take a device out of service (lost, broken, stolen): its broker login goes at the next
    export and its HTTP tokens at once; its assignments and readings stay. False if unknown;
    revoking twice keeps the first time."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, %s), broker_secret = NULL"
            " WHERE id = %s RETURNING 1",
            (now, device_id),
        ).fetchone()
        conn.execute(
            "UPDATE device_tokens SET revoked_at = %s WHERE device_id = %s AND revoked_at IS NULL",
            (now, device_id),
        )
    return row is not None


def broker_logins(conn: psycopg.Connection) -> str:
    """Every device in service as a line of a Mosquitto password file (``id:$7$...``)."""
    rows = conn.execute(
        "SELECT id, broker_secret FROM devices"
        " WHERE revoked_at IS NULL AND broker_secret IS NOT NULL ORDER BY id"
    ).fetchall()
    return "".join(f"{device_id}:{secret}\n" for device_id, secret in rows)


def revoked_devices(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT id FROM devices WHERE revoked_at IS NOT NULL")}


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
            conn.execute(
                "SELECT 1 FROM devices WHERE id = %s AND revoked_at IS NULL FOR UPDATE",
                (device_id,),
            ).fetchone()
            is None
        ):
            raise LookupError(f"no device {device_id!r} in service")
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
            SELECT d.id, d.kind, d.vendor, d.model, d.serial, d.measurements, d.revoked_at
            FROM devices d JOIN device_assignments a ON a.device_id = d.id
            WHERE a.patient_id = %(patient)s AND a.valid_from <= %(at)s
              AND (a.valid_to IS NULL OR a.valid_to > %(at)s)
            ORDER BY d.id
            """,
            {"patient": patient_id, "at": at},
        ).fetchall()


def do_unassign_device(
    conn: psycopg.Connection, *, device_id: str, patient_id: UUID, at: datetime
) -> bool:
    """End the device's assignment to the patient at `at`: readings measured from then on are
    no longer the patient's. False if it was not assigned to the patient at that time."""
    row = conn.execute(
        """
        UPDATE device_assignments SET valid_to = %(at)s
        WHERE device_id = %(device)s AND patient_id = %(patient)s AND valid_from < %(at)s
          AND (valid_to IS NULL OR valid_to > %(at)s)
        RETURNING 1
        """,
        {"device": device_id, "patient": patient_id, "at": at},
    ).fetchone()
    return row is not None


def do_replace_device(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    broken_device_id: str,
    new_device_id: str,
    at: datetime,
) -> None:
    """Swap a broken device for another at `at`, in one step: the patient is never without."""
    with conn.transaction():
        if not do_unassign_device(conn, device_id=broken_device_id, patient_id=patient_id, at=at):
            raise LookupError(f"{broken_device_id} is not the patient's device at {at}")
        do_assign_device(conn, device_id=new_device_id, patient_id=patient_id, valid_from=at)


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A device as the registry lists it, with whom it measures for now (if anyone)."""

    id: str
    kind: str
    vendor: str | None
    model: str | None
    serial: str | None
    measurements: Sequence[str]
    created_at: datetime
    revoked_at: datetime | None
    broker_secret_set_at: datetime | None
    patient_id: UUID | None
    assigned_since: datetime | None


def list_devices(
    conn: psycopg.Connection, *, now: datetime, limit: int = 100, offset: int = 0
) -> list[RegistryEntry]:
    with conn.cursor(row_factory=class_row(RegistryEntry)) as cur:
        return cur.execute(
            """
            SELECT d.id, d.kind, d.vendor, d.model, d.serial, d.measurements, d.created_at,
                   d.revoked_at, d.broker_secret_set_at, a.patient_id,
                   a.valid_from AS assigned_since
            FROM devices d
            LEFT JOIN device_assignments a
              ON a.device_id = d.id AND a.valid_from <= %(now)s
             AND (a.valid_to IS NULL OR a.valid_to > %(now)s)
            ORDER BY d.id
            LIMIT %(limit)s OFFSET %(offset)s
            """,
            {"now": now, "limit": limit, "offset": offset},
        ).fetchall()


def patient_of_device(conn: psycopg.Connection, *, device_id: str, at: datetime) -> UUID | None:
    """Whom the device measures for at `at`, if anyone."""
    row = conn.execute(
        "SELECT patient_id FROM device_assignments WHERE device_id = %s AND valid_from <= %s"
        " AND (valid_to IS NULL OR valid_to > %s)",
        (device_id, at, at),
    ).fetchone()
    return None if row is None else row[0]
