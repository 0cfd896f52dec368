"""The registry's work as a member of staff does it from the dashboard: the same one check
(care.access) and the same access log as the API's routes, then the registry's own service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from care.access import (
    Action,
    Interface,
    NotVisibleError,
    Permission,
    Reason,
    authorize,
    do_access_patient,
    do_log_access,
    visible_patients_filter,
)
from care.service import list_patients
from core.auth import Principal
from devices.schemas import DeviceIn
from devices.service import (
    Provisioned,
    RegistryEntry,
    do_assign_device,
    do_provision_device,
    list_devices,
    patient_of_device,
)
from devices.status import DeviceStatus, status_of


@dataclass(frozen=True, slots=True)
class Registry:
    devices: list[RegistryEntry]
    patients: dict[UUID, str]
    """The patients in the viewer's care, by name: whom a device can be handed to."""


def load_registry(
    conn: psycopg.Connection, *, principal: Principal, now: datetime, interface: Interface
) -> Registry:
    """The registry, and the names of the patients a device may be handed to (logged, since it
    names them). Raises ForbiddenError for a role without `devices:manage`."""
    authorize(conn, principal=principal, permission=Permission.MANAGE_DEVICES, now=now)
    patients = list_patients(conn, now=now, visible=visible_patients_filter(principal, now=now))
    if patients:
        do_log_access(
            conn,
            principal=principal,
            patient_ids=[p.id for p in patients],
            resource="patient-list",
            action=Action.READ,
            interface=interface,
            reason=Reason.CARE_TEAM,
            now=now,
        )
    return Registry(
        devices=list_devices(conn, now=now, limit=1000),
        patients={p.id: p.display_name for p in patients},
    )


def do_register_as(
    conn: psycopg.Connection, *, principal: Principal, now: datetime, device: DeviceIn
) -> Provisioned:
    authorize(conn, principal=principal, permission=Permission.MANAGE_DEVICES, now=now)
    return do_provision_device(conn, now=now, **device.registration())


def do_hand_out_as(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    now: datetime,
    interface: Interface,
    device_id: str,
    patient_id: UUID,
) -> None:
    """The device measures for the patient from now: work on the patient's record."""
    with conn.transaction():
        do_access_patient(
            conn,
            principal=principal,
            permission=Permission.MANAGE_DEVICES,
            patient_id=patient_id,
            resource="devices",
            action=Action.UPDATE,
            interface=interface,
            now=now,
        )
        do_assign_device(conn, device_id=device_id, patient_id=patient_id, valid_from=now)


def read_status_as(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    now: datetime,
    interface: Interface,
    device_id: str,
) -> DeviceStatus | None:
    """What a device last reported, for those who may read its patient's record now (logged
    as a read of the patient's data); a device with no patient, for those who keep the
    registry. Raises NotVisibleError for an unknown device, as for a patient not in your care."""
    with conn.transaction():
        patient_id = patient_of_device(conn, device_id=device_id, at=now)
        if patient_id is None:
            authorize(conn, principal=principal, permission=Permission.MANAGE_DEVICES, now=now)
            if not conn.execute("SELECT 1 FROM devices WHERE id = %s", (device_id,)).fetchone():
                raise NotVisibleError
        else:
            do_access_patient(
                conn,
                principal=principal,
                permission=Permission.READ_PATIENT,
                patient_id=patient_id,
                resource="device-status",
                action=Action.READ,
                interface=interface,
                now=now,
            )
        return status_of(conn, device_id=device_id)
