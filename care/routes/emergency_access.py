"""Emergency access ("break the glass") and its review."""

from typing import Annotated
from uuid import UUID

from care.access import Interface, Permission, Reason
from care.emergency import do_open_emergency_access, emergency_accesses_to_review
from care.guard import Checked, allowed, guarded_router
from care.schemas import EmergencyAccessIn, EmergencyAccessOut
from core.api import Limit, Offset, Page, page

router = guarded_router(tags=["emergency access"])

OpenEmergencyAccess = Annotated[Checked, allowed(Permission.OPEN_EMERGENCY_ACCESS, "patient")]
ReviewEmergencyAccess = Annotated[Checked, allowed(Permission.REVIEW_EMERGENCY_ACCESS, "patients")]


@router.post("/patients/{patient_id}/emergency-access", status_code=201)
def open_emergency_access(
    checked: OpenEmergencyAccess, patient_id: UUID, body: EmergencyAccessIn
) -> EmergencyAccessOut:
    """Read a patient outside your care teams, now, for a few hours, with a reason: the
    patient sees it, a coordinator reviews it, and every read through it is logged as
    `emergency`. Changing the record still takes a care team."""
    opened = do_open_emergency_access(
        checked.conn,
        principal=checked.principal,
        patient_id=patient_id,
        reason=body.reason,
        interface=Interface.API,
        now=checked.now,
    )
    return EmergencyAccessOut.model_validate(opened, from_attributes=True)


@router.get("/emergency-access")
def review_emergency_access(
    checked: ReviewEmergencyAccess, limit: Limit = 50, offset: Offset = 0
) -> Page[EmergencyAccessOut]:
    """Emergency accesses opened for, or to patients of, the organisations you work for,
    newest first, for follow-up; one log row names the patients listed."""
    rows = emergency_accesses_to_review(
        checked.conn, reviewer=checked.principal.uuid, now=checked.now, limit=limit, offset=offset
    )
    checked.log_patients(
        sorted({r.patient_id for r in rows}),
        resource="emergency-access",
        reason=Reason.ADMINISTRATION,
    )
    return page(
        [EmergencyAccessOut.model_validate(r, from_attributes=True) for r in rows],
        limit=limit,
        offset=offset,
    )
