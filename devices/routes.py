"""The device registry under /api/v1: register (with a broker login shown once), list, revoke
and rotate a device's password; and, on a patient's record, hand a device out, swap a broken
one, and take one back. The broker learns of a change at the next `heimvakt devices
export-broker` (docs/devices.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Request, Response
from pydantic import BaseModel, Field

from care.access import Action, Interface, Permission
from care.guard import Caller, Checked, PatientRecord, allowed, guarded_router, patient_record
from core.api import Limit, Offset, Page, access, api_context, page
from core.fields import Input
from core.problems import conflict, problem, problem_response
from devices import service
from devices.schemas import DeviceId, DeviceIn
from devices.staff import read_status_as

router = guarded_router(tags=["devices"])

Manage = Annotated[Checked, allowed(Permission.MANAGE_DEVICES, "none")]
HandOut = Annotated[
    PatientRecord,
    patient_record(Permission.MANAGE_DEVICES, resource="devices", action=Action.UPDATE),
]


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


def _out(
    device: service.Device | service.RegistryEntry,
    *,
    created_at: datetime,
    revoked_at: datetime | None,
    assigned: bool,
) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        kind=device.kind,
        vendor=device.vendor,
        model=device.model,
        serial=device.serial,
        measurements=list(device.measurements),
        created_at=created_at,
        revoked_at=revoked_at,
        assigned=assigned,
    )


def _login(device_id: str, password: str) -> BrokerLoginOut:
    return BrokerLoginOut(username=device_id, client_id=device_id, password=password)


@router.get("/devices")
def list_devices(checked: Manage, limit: Limit = 50, offset: Offset = 0) -> Page[DeviceOut]:
    """The registry; whose a device is shows on the patient's record, not here."""
    entries = service.list_devices(checked.conn, now=checked.now, limit=limit, offset=offset)
    return page(
        [
            _out(e, created_at=e.created_at, revoked_at=e.revoked_at, assigned=bool(e.patient_id))
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
            checked.conn, now=checked.now, **body.registration()
        )
    except service.DeviceExistsError as error:
        raise conflict(error) from error
    device = provisioned.device
    return ProvisionedOut(
        device=_out(device, created_at=checked.now, revoked_at=None, assigned=False),
        broker_login=_login(device.id, provisioned.broker_password),
    )


class DeviceStatusOut(BaseModel):
    """Every field is empty until the device has reported it."""

    device_id: str
    online: bool | None = None
    battery_pct: float | None = None
    firmware: str | None = None
    signal_dbm: float | None = None
    backlog: int | None = Field(
        default=None, description="Measurements the gateway holds, not yet sent"
    )
    reported_at: datetime | None = None
    last_seen_at: datetime | None = None


@router.get(
    "/devices/{device_id}/status",
    openapi_extra=access(Permission.READ_PATIENT, "patient"),
    responses={404: problem_response("No such device, or its patient is not in your care")},
)
def device_status(request: Request, principal: Caller, device_id: str) -> DeviceStatusOut:
    """What the device last reported (status topic, last will) and when it was last heard
    from: read as its patient's data, so only those who may read the patient see it."""
    context = api_context(request)
    with context.pool.connection() as conn:
        found = read_status_as(
            conn,
            principal=principal,
            now=context.clock.now(),
            interface=Interface.API,
            device_id=device_id,
        )
    if found is None:
        return DeviceStatusOut(device_id=device_id)
    return DeviceStatusOut.model_validate(found, from_attributes=True)


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
