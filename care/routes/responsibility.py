"""Responsibility over time: who is responsible (and back-up) for a patient, and proposing to
hand the patient over to another unit."""

from typing import Annotated

from fastapi import Response

from care import handover, service
from care.access import Action, Permission
from care.guard import PatientRecord, guarded_router, patient_record
from care.schemas import BackupUnitIn, HandoverIn, HandoverOut, ResponsibilityPeriodOut
from care.staff_work import do_propose_from_responsible_unit
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
    created = do_propose_from_responsible_unit(
        record.conn,
        principal=record.principal,
        patient_id=record.patient_id,
        to_organisation_id=body.to_organisation_id,
        note=body.note,
        now=record.now,
    )
    return HandoverOut.model_validate(created, from_attributes=True)
