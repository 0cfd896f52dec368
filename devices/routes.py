"""The device registry under /api/v1: register (with a broker login shown once), list, revoke
and rotate a device's password; and, on a patient's record, hand a device out, swap a broken
one, and take one back. The broker learns of a change at the next `heimvakt devices
export-broker` (docs/devices.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from care.access import Action, Permission
from care.guard import Checked, PatientRecord, allowed, guarded_router, patient_record
from core import catalog
from core.api import Limit, Offset, Page, page
from core.fields import Input
from core.problems import conflict, problem
from devices import service

router = guarded_router(tags=["devices"])

Manage = Annotated[Checked, allowed(Permission.MANAGE_DEVICES, "none")]
HandOut = Annotated[
    PatientRecord,
    patient_record(Permission.MANAGE_DEVICES, resource="devices", action=Action.UPDATE),
]

DEVICE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
"""As the broker needs a login to be (deploy/mosquitto/README.md): a topic level, no colon."""


def _device_id(value: str) -> str:
    if DEVICE_ID.match(value) is None or value.startswith("heimvakt-"):
        raise ValueError("1 to 64 of A-Z a-z 0-9 . _ -, not starting with heimvakt-")
    return value


def _measurement(value: str) -> str:
    found = catalog.lookup(value)
    if found is None:
        raise ValueError(f"{value!r} is not a measurement of the catalog (LOINC code or alias)")
    return found.code


DeviceId = Annotated[str, AfterValidator(_device_id)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class DeviceIn(Input):
    id: DeviceId = Field(description="The device's id: its broker login and client id")
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")] = Field(
        description="pulse_oximeter, blood_pressure_monitor, scale, thermometer, ..."
    )
    vendor: Text | None = None
    model: Text | None = None
    serial: Text | None = None
    measurements: list[Annotated[str, AfterValidator(_measurement)]] = Field(
        default_factory=list, max_length=10, description="LOINC codes or catalog aliases"
    )


class DeviceOut(BaseModel):
    id: str
    kind: str
    vendor: str | None
    model: str | None
    serial: str | None
    measurements: list[str]
    created_at: datetime | None = None
    revoked_at: datetime | None
    assigned: bool = Field(description="Measures for a patient now")


class BrokerLoginOut(BaseModel):
    """Shown once: only a hash is kept."""

    username: str
    client_id: str
    password: str


class ProvisionedOut(BaseModel):
    device: DeviceOut
    broker_login: BrokerLoginOut


class HandOutIn(Input):
    device_id: DeviceId
    replaces: DeviceId | None = Field(
        default=None, description="A device of the patient's that stops measuring now"
    )


def _login(device_id: str, password: str) -> BrokerLoginOut:
    return BrokerLoginOut(username=device_id, client_id=device_id, password=password)


@router.get("/devices")
def list_devices(checked: Manage, limit: Limit = 50, offset: Offset = 0) -> Page[DeviceOut]:
    """The registry; whose a device is shows on the patient's record, not here."""
    entries = service.list_devices(checked.conn, now=checked.now, limit=limit, offset=offset)
    return page(
        [
            DeviceOut(
                id=e.id,
                kind=e.kind,
                vendor=e.vendor,
                model=e.model,
                serial=e.serial,
                measurements=list(e.measurements),
                created_at=e.created_at,
                revoked_at=e.revoked_at,
                assigned=e.patient_id is not None,
            )
            for e in entries
        ],
        limit=limit,
        offset=offset,
    )


@router.post("/devices", status_code=201)
def register_device(checked: Manage, body: DeviceIn) -> ProvisionedOut:
    """Register a device with a broker login of its own; the password is in this answer only."""
    try:
        provisioned = service.do_provision_device(
            checked.conn,
            device_id=body.id,
            kind=body.kind,
            vendor=body.vendor,
            model=body.model,
            serial=body.serial,
            measurements=body.measurements,
            now=checked.now,
        )
    except service.DeviceExistsError as error:
        raise conflict(error) from error
    device = provisioned.device
    return ProvisionedOut(
        device=DeviceOut(
            id=device.id,
            kind=device.kind,
            vendor=device.vendor,
            model=device.model,
            serial=device.serial,
            measurements=list(device.measurements),
            created_at=checked.now,
            revoked_at=None,
            assigned=False,
        ),
        broker_login=_login(device.id, provisioned.broker_password),
    )


@router.post("/devices/{device_id}/revoke", status_code=204)
def revoke_device(checked: Manage, device_id: str) -> Response:
    """Out of service (lost, broken, stolen): no more log-in or tokens; its history stays."""
    if not service.do_revoke_device(checked.conn, device_id=device_id, now=checked.now):
        return problem(404, f"no device {device_id!r}")
    return Response(status_code=204)


@router.post("/devices/{device_id}/broker-password")
def rotate_broker_password(checked: Manage, device_id: str) -> BrokerLoginOut:
    """A new broker password, in this answer only; the old one works until the next export."""
    try:
        password = service.do_rotate_broker_password(
            checked.conn, device_id=device_id, now=checked.now
        )
    except LookupError as error:
        raise conflict(error) from error
    return _login(device_id, password)


@router.post("/patients/{patient_id}/devices", status_code=204)
def hand_out_device(record: HandOut, body: HandOutIn) -> Response:
    """The device measures for the patient from now on (instead of `replaces`, if given)."""
    try:
        if body.replaces is None:
            service.do_assign_device(
                record.conn,
                device_id=body.device_id,
                patient_id=record.patient_id,
                valid_from=record.now,
            )
        else:
            service.do_replace_device(
                record.conn,
                patient_id=record.patient_id,
                broken_device_id=body.replaces,
                new_device_id=body.device_id,
                at=record.now,
            )
    except (LookupError, service.AssignmentConflictError) as error:
        raise conflict(error) from error
    return Response(status_code=204)


@router.delete("/patients/{patient_id}/devices/{device_id}", status_code=204)
def take_back_device(record: HandOut, device_id: str) -> Response:
    """The device no longer measures for the patient from now; earlier readings stay theirs."""
    if not service.do_unassign_device(
        record.conn, device_id=device_id, patient_id=record.patient_id, at=record.now
    ):
        raise conflict(f"{device_id} does not measure for the patient now")
    return Response(status_code=204)
