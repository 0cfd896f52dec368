"""Staff: people, their employments and the identities they log in with."""

from typing import Annotated
from uuid import UUID

import psycopg
from fastapi import Response

from care import people
from care.access import Action, NotVisibleError, Permission, refuse_self_grant
from care.guard import Checked, allowed, guarded_router
from care.schemas import IdentityIn, MembershipIn, MembershipOut, StaffIn, StaffOut
from core.api import Limit, Offset, Page, page
from core.problems import conflict

router = guarded_router(tags=["staff"])

ReadStaff = Annotated[Checked, allowed(Permission.READ_STAFF)]
ManageStaff = Annotated[Checked, allowed(Permission.MANAGE_STAFF)]
ManageEmployment = Annotated[Checked, allowed(Permission.MANAGE_STAFF, "staff")]


@router.get("/staff")
def list_staff(checked: ReadStaff, limit: Limit = 50, offset: Offset = 0) -> Page[StaffOut]:
    rows = people.list_staff(checked.conn, limit=limit, offset=offset)
    return page(
        [StaffOut.model_validate(s, from_attributes=True) for s in rows],
        limit=limit,
        offset=offset,
    )


@router.post("/staff", status_code=201)
def create_staff(checked: ManageStaff, body: StaffIn) -> StaffOut:
    created = people.do_create_staff(checked.conn, **body.model_dump())
    return StaffOut.model_validate(created, from_attributes=True)


@router.get("/staff/{staff_id}")
def get_staff(checked: ReadStaff, staff_id: UUID) -> StaffOut:
    found = people.get_staff(checked.conn, staff_id=staff_id)
    if found is None:
        raise NotVisibleError
    return StaffOut.model_validate(found, from_attributes=True)


@router.get("/staff/{staff_id}/memberships")
def staff_memberships(checked: ReadStaff, staff_id: UUID) -> list[MembershipOut]:
    """Employment and care-team memberships, current and past."""
    rows = people.memberships_of(checked.conn, staff_id=staff_id)
    return [MembershipOut.model_validate(m, from_attributes=True) for m in rows]


@router.post("/staff/{staff_id}/employments", status_code=201)
def add_employment(checked: ManageEmployment, staff_id: UUID, body: MembershipIn) -> MembershipOut:
    """Employment opens the patients of the care teams the person is a member of for it;
    nobody employs themselves."""
    with checked.membership_change(staff_id, resource="employment", action=Action.CREATE):
        refuse_self_grant(checked.principal, staff_id=staff_id)
        created = people.do_add_employment(
            checked.conn, staff_id=staff_id, organisation_id=body.organisation_id, since=checked.now
        )
    return MembershipOut.model_validate(created, from_attributes=True)


@router.delete("/staff/{staff_id}/employments/{membership_id}")
def end_employment(checked: ManageEmployment, staff_id: UUID, membership_id: UUID) -> MembershipOut:
    """End an employment now; the history is kept. Access through the care-team memberships
    held for that organisation ends with it, and without another employment, log-in too."""
    with checked.membership_change(staff_id, resource="employment", action=Action.DELETE):
        found = people.get_employment(checked.conn, membership_id=membership_id)
        if found is None or found.staff_id != staff_id:
            raise NotVisibleError
        ended = people.do_end_employment(checked.conn, membership_id=membership_id, now=checked.now)
        if not ended:
            raise conflict("the employment has already ended")
    return MembershipOut.model_validate(ended, from_attributes=True)


@router.post("/staff/{staff_id}/identities", status_code=204)
def link_staff_identity(checked: ManageStaff, staff_id: UUID, body: IdentityIn) -> Response:
    """Let tokens from an issuer (HelseID) with this subject speak for the staff member."""
    if people.get_staff(checked.conn, staff_id=staff_id) is None:
        raise NotVisibleError
    try:
        people.do_link_identity(
            checked.conn, issuer=body.issuer, subject=body.subject, staff_id=staff_id
        )
    except psycopg.errors.UniqueViolation as error:
        raise conflict("this identity is already linked") from error
    return Response(status_code=204)
