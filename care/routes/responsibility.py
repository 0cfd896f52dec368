"""Responsibility over time: who is responsible (and back-up) for a patient, and proposing to
hand the patient over to another unit."""

from typing import Annotated

from fastapi import Response

from care import careplan, handover, service
from care.access import Action, ForbiddenError, Permission, works_at
from care.guard import PatientRecord, guarded_router, patient_record
from care.schemas import BackupUnitIn, HandoverIn, HandoverOut, ResponsibilityPeriodOut
from core.problems import conflict

router = guarded_router(tags=["responsibility"])

ReadResponsibility = Annotated[
    PatientRecord, patient_record(Permission.READ_PATIENT, resource="responsibility")
]
ManageResponsibility = Annotated[
    PatientRecord,
    patient_record(
        Permission.MANAGE_RESPONSIBILITY, resource="responsibility", action=Action.UPDATE
    ),
]
ReadHandovers = Annotated[
    PatientRecord, patient_record(Permission.READ_PATIENT, resource="handover")
]
ProposeHandover = Annotated[
    PatientRecord,
    patient_record(Permission.PROPOSE_HANDOVER, resource="handover", action=Action.CREATE),
]


@router.get("/patients/{patient_id}/responsibility")
def responsibility(record: ReadResponsibility) -> list[ResponsibilityPeriodOut]:
    """Who was responsible (and back-up) when, oldest first; the open period is now."""
    periods = handover.responsibility_history(record.conn, patient_id=record.patient_id)
    return [ResponsibilityPeriodOut.model_validate(p, from_attributes=True) for p in periods]


@router.put("/patients/{patient_id}/backup-unit", status_code=204)
def set_backup_unit(record: ManageResponsibility, body: BackupUnitIn) -> Response:
    if (
        body.organisation_id is not None
        and service.get_organisation(record.conn, organisation_id=body.organisation_id) is None
    ):
        raise conflict("no such organisation")
    handover.do_set_backup_unit(
        record.conn,
        patient_id=record.patient_id,
        organisation_id=body.organisation_id,
        now=record.now,
    )
    return Response(status_code=204)


@router.get("/patients/{patient_id}/handovers")
def patient_handovers(record: ReadHandovers) -> list[HandoverOut]:
    rows = handover.handovers_for_patient(record.conn, patient_id=record.patient_id)
    return [HandoverOut.model_validate(h, from_attributes=True) for h in rows]


@router.post("/patients/{patient_id}/handovers", status_code=201)
def propose_handover(record: ProposeHandover, body: HandoverIn) -> HandoverOut:
    """Propose to hand the patient over; your unit stays responsible until acceptance."""
    conn, now, proposer = record.conn, record.now, record.principal.uuid
    sender = handover.responsible_unit(conn, patient_id=record.patient_id, at=now)
    if sender is None or not works_at(conn, staff_id=proposer, organisation_id=sender, now=now):
        raise ForbiddenError
    plan = careplan.get_care_plan(conn, patient_id=record.patient_id)
    created = handover.do_propose_handover(
        conn,
        patient_id=record.patient_id,
        to_organisation_id=body.to_organisation_id,
        proposed_by=proposer,
        note=body.note,
        now=now,
        care_plan_version=None if plan is None else plan.version,
        from_organisation_id=sender,
    )
    return HandoverOut.model_validate(created, from_attributes=True)
