"""The access log and the patient's rights: access to all their data (export) and erasure."""

from enum import Enum
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from care import rights
from care.access import Action, Permission, access_log
from care.guard import Checked, PatientRecord, allowed, guarded_router, patient_record
from care.schemas import AuditEntryOut, ErasureIn, ErasureOut
from core.api import Limit, Offset, Page, page
from core.fields import STORABLE, Moment

router = guarded_router()
TAGS: list[str | Enum] = ["patient rights"]

ReadAccessLog = Annotated[Checked, allowed(Permission.READ_ACCESS_LOG)]
ExportPatient = Annotated[
    PatientRecord,
    patient_record(Permission.EXPORT_PATIENT, resource="patient-export", action=Action.EXPORT),
]
ErasePatient = Annotated[
    PatientRecord,
    patient_record(Permission.ERASE_PATIENT, resource="patient", action=Action.ERASE),
]


@router.get("/access-log", tags=["access log"])
def query_access_log(
    checked: ReadAccessLog,
    *,
    patient_id: UUID | None = None,
    actor_id: Annotated[str | None, Query(max_length=200), STORABLE] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuditEntryOut]:
    """For administrators' log follow-up; nobody can change the log through the app."""
    entries = access_log(
        checked.conn,
        patient_id=patient_id,
        actor_id=actor_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return page(
        [AuditEntryOut.model_validate(e, from_attributes=True) for e in entries],
        limit=limit,
        offset=offset,
    )


@router.get("/patients/{patient_id}/export", tags=TAGS)
def export_patient(record: ExportPatient) -> dict[str, Any]:
    """All of one patient's data as JSON (the right of access, GDPR art. 15)."""
    return rights.export_patient(record.conn, patient_id=record.patient_id, now=record.now)


@router.post("/patients/{patient_id}/erasure", tags=TAGS)
def erase_patient(record: ErasePatient, body: ErasureIn) -> ErasureOut:
    """Erase or anonymise on request. The access log keeps its rows (by law it outlives
    the record); everything else about the person goes."""
    readings = rights.do_forget_patient(
        record.conn, patient_id=record.patient_id, anonymise=body.mode == "anonymise"
    )
    return ErasureOut(patient_id=record.patient_id, mode=body.mode, readings=readings)
