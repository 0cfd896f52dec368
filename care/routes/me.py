"""Who am I, and (for a patient) who has looked at my data."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from care.access import ForbiddenError, Interface, Permission, access_log
from care.guard import AccessGuard, Caller, Checked, guarded_router
from care.schemas import AccessLogEntryOut, MeOut
from core.api import AccessRule, Limit, Offset, Page, api_context, page
from core.auth import Principal

router = guarded_router(tags=["me"])


class _Person(AccessGuard):
    """The caller's own account: staff or patient (a device has none)."""

    access_rule = AccessRule("any", "self")

    def __call__(self, principal: Caller) -> Principal:
        if principal.kind not in ("staff", "patient"):
            raise ForbiddenError
        return principal


class _OwnRecord(AccessGuard):
    """A patient's own record, for what it says about others' access to it."""

    access_rule = AccessRule(Permission.READ_PATIENT, "self")

    def __call__(self, request: Request, principal: Caller) -> Iterator[Checked]:
        if principal.kind != "patient":
            raise ForbiddenError
        context = api_context(request)
        with context.pool.connection() as conn:
            yield Checked(
                conn=conn,
                principal=principal,
                permission=Permission.READ_PATIENT,
                now=context.clock.now(),
                interface=Interface.API,
            )


Person = Annotated[Principal, Depends(_Person())]
OwnRecord = Annotated[Checked, Depends(_OwnRecord(), scope="function")]


@router.get("/me")
def me(principal: Person) -> MeOut:
    return MeOut(
        kind="staff" if principal.kind == "staff" else "patient",
        id=principal.uuid,
        name=principal.name,
        role=principal.role,
        hpr_number=principal.hpr_number,
        organisation_name=principal.organisation_name,
    )


@router.get("/me/access-log")
def my_access_log(
    record: OwnRecord, limit: Limit = 50, offset: Offset = 0
) -> Page[AccessLogEntryOut]:
    """Who has looked at my data, when, from which organisation, and why (patients only)."""
    entries = access_log(record.conn, patient_id=record.principal.uuid, limit=limit, offset=offset)
    return page(
        [AccessLogEntryOut.model_validate(e, from_attributes=True) for e in entries],
        limit=limit,
        offset=offset,
    )
