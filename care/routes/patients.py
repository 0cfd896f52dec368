"""Patients: registration, the record's details, the care teams that follow them, readings."""

from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, Response

from care import people, service
from care.access import Action, NotVisibleError, Permission, Reason, visible_patients_filter
from care.guard import Checked, PatientRecord, allowed, guarded_router, patient_record
from care.national_ids import (
    NationalIds,
    bound_national_ids,
    do_register_national_id,
    patient_with_national_id,
)
from care.schemas import (
    CareTeamOut,
    NationalIdIn,
    PatientIn,
    PatientOut,
    PatientUpdate,
    ReadingOut,
    TeamPatientIn,
)
from core.api import Limit, Offset, Page, page
from core.fields import STORABLE, Moment
from core.problems import conflict, problem, problem_response
from core.readings import readings_for_patient

router = guarded_router(tags=["patients"])

ListPatients = Annotated[Checked, allowed(Permission.READ_PATIENT, "patients")]
RegisterPatient = Annotated[Checked, allowed(Permission.REGISTER_PATIENT, "patients")]
ReadPatient = Annotated[PatientRecord, patient_record(Permission.READ_PATIENT, resource="patient")]
UpdatePatient = Annotated[
    PatientRecord,
    patient_record(Permission.UPDATE_PATIENT, resource="patient", action=Action.UPDATE),
]
ReadTeams = Annotated[PatientRecord, patient_record(Permission.READ_PATIENT, resource="care-teams")]
ChangeTeams = Annotated[
    PatientRecord,
    patient_record(Permission.MANAGE_TEAM_PATIENTS, resource="care-teams", action=Action.UPDATE),
]
ReadReadings = Annotated[
    PatientRecord, patient_record(Permission.READ_PATIENT, resource="readings")
]
RegisterNationalId = Annotated[
    PatientRecord,
    patient_record(Permission.REGISTER_PATIENT, resource="national-id", action=Action.UPDATE),
]
Keys = Annotated[NationalIds | None, Depends(bound_national_ids)]


@router.put(
    "/patients/{patient_id}/national-id",
    status_code=204,
    responses={
        409: problem_response("Another patient has this number"),
        503: problem_response("This installation does not store national identity numbers"),
    },
)
def register_national_id(record: RegisterNationalId, body: NationalIdIn, keys: Keys) -> Response:
    """Register (or correct) the patient's national identity number, so that their ID-porten
    log-in finds their record. It is stored sealed and is never shown again (docs/security.md);
    the answer is empty."""
    if keys is None:
        return problem(503, "this installation does not store national identity numbers")
    found = patient_with_national_id(record.conn, national_id=body.national_id, keys=keys)
    if found is not None and found != record.patient_id:
        return problem(409, "another patient is registered with this national identity number")
    do_register_national_id(
        record.conn, patient_id=record.patient_id, national_id=body.national_id, keys=keys
    )
    return Response(status_code=204)


@router.get("/patients")
def list_patients(checked: ListPatients, limit: Limit = 50, offset: Offset = 0) -> Page[PatientOut]:
    """The patients in the caller's care (a patient: only themself); one log row lists them."""
    principal = checked.principal
    rows = service.list_patients(
        checked.conn,
        now=checked.now,
        visible=visible_patients_filter(principal, now=checked.now),
        limit=limit,
        offset=offset,
    )
    checked.log_patients(
        [p.id for p in rows],
        resource="patient-list",
        reason=Reason.OWN_DATA if principal.kind == "patient" else Reason.CARE_TEAM,
    )
    return page(
        [PatientOut.model_validate(p, from_attributes=True) for p in rows],
        limit=limit,
        offset=offset,
    )


@router.post("/patients", status_code=201)
def register_patient(checked: RegisterPatient, body: PatientIn) -> PatientOut:
    """Register a patient into one of your care teams, with a responsible unit from now."""
    checked.require_team(body.team_id)
    conn, now = checked.conn, checked.now
    if service.get_organisation(conn, organisation_id=body.responsible_unit_id) is None:
        raise conflict("no such responsible unit")
    patient_id = service.do_create_patient(
        conn,
        display_name=body.display_name,
        conditions=body.conditions,
        responsible_unit=body.responsible_unit_id,
        since=now,
        birth_date=body.birth_date,
        preferred_language=body.preferred_language,
        phone=body.phone,
        email=body.email,
    )
    people.do_add_team_patient(conn, team_id=body.team_id, patient_id=patient_id, since=now)
    checked.log_patients(
        [patient_id], resource="patient", reason=Reason.CARE_TEAM, action=Action.CREATE
    )
    created = service.get_patient(conn, patient_id=patient_id, now=now)
    return PatientOut.model_validate(created, from_attributes=True)


@router.get("/patients/{patient_id}")
def get_patient(record: ReadPatient) -> PatientOut:
    found = service.get_patient(record.conn, patient_id=record.patient_id, now=record.now)
    return PatientOut.model_validate(found, from_attributes=True)


@router.patch("/patients/{patient_id}")
def update_patient(record: UpdatePatient, body: PatientUpdate) -> PatientOut:
    service.do_update_patient(
        record.conn, patient_id=record.patient_id, changes=body.model_dump(exclude_unset=True)
    )
    found = service.get_patient(record.conn, patient_id=record.patient_id, now=record.now)
    return PatientOut.model_validate(found, from_attributes=True)


@router.get("/patients/{patient_id}/care-teams")
def patient_care_teams(record: ReadTeams) -> list[CareTeamOut]:
    teams = people.teams_of_patient(record.conn, patient_id=record.patient_id, now=record.now)
    return [CareTeamOut.model_validate(t, from_attributes=True) for t in teams]


@router.post("/patients/{patient_id}/care-teams", status_code=204)
def add_patient_to_team(record: ChangeTeams, body: TeamPatientIn) -> Response:
    """Let another team you belong to follow the patient too."""
    record.require_team(body.team_id)
    people.do_add_team_patient(
        record.conn, team_id=body.team_id, patient_id=record.patient_id, since=record.now
    )
    return Response(status_code=204)


@router.delete("/patients/{patient_id}/care-teams/{team_id}", status_code=204)
def remove_patient_from_team(record: ChangeTeams, team_id: UUID) -> Response:
    """Only a member of the team takes a patient off it: another unit's team is not yours
    to change, even for a patient you share."""
    record.require_team(team_id)
    if not people.do_remove_team_patient(
        record.conn, team_id=team_id, patient_id=record.patient_id, now=record.now
    ):
        raise NotVisibleError
    return Response(status_code=204)


@router.get("/patients/{patient_id}/readings")
def patient_readings(
    record: ReadReadings,
    since: Moment | None = None,
    until: Moment | None = None,
    code: Annotated[str | None, Query(max_length=64), STORABLE] = None,
) -> list[ReadingOut]:
    """Readings in [since, until), oldest first; by default the last 30 days, at most 90."""
    until = until or record.now
    since = since or until - timedelta(days=30)
    if until - since > timedelta(days=90):
        since = until - timedelta(days=90)
    rows = readings_for_patient(record.conn, patient_id=record.patient_id, since=since, until=until)
    return [
        ReadingOut.model_validate(r, from_attributes=True)
        for r in rows
        if code is None or r.code == code
    ]
