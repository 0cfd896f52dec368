"""Care plans: the templates, and each patient's versioned plan (thresholds, schedule,
self-management text), changed with a reason and guarded by ETag / If-Match."""

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Response
from fastapi.responses import JSONResponse

from care import careplan
from care.access import Action, Permission
from care.guard import Checked, PatientRecord, allowed, guarded_router, patient_record
from care.routes.problems import not_visible
from care.schemas import (
    CarePlanCreate,
    CarePlanOut,
    CarePlanUpdate,
    CarePlanVersionOut,
    TemplateOut,
)
from care.templates import TEMPLATES, ScheduledMeasurement
from core.problems import problem_response

router = guarded_router(tags=["care plans"])

ReadDirectory = Annotated[Checked, allowed(Permission.READ_DIRECTORY)]
ReadPlan = Annotated[PatientRecord, patient_record(Permission.READ_PATIENT, resource="care-plan")]
CreatePlan = Annotated[
    PatientRecord,
    patient_record(Permission.WRITE_CARE_PLAN, resource="care-plan", action=Action.CREATE),
]
ChangePlan = Annotated[
    PatientRecord,
    patient_record(Permission.WRITE_CARE_PLAN, resource="care-plan", action=Action.UPDATE),
]


def _expected_version(if_match: Annotated[str | None, Header()] = None) -> int:
    """The plan version named by If-Match (an ETag this API gave out)."""
    if if_match is None:
        raise HTTPException(428, "send the care plan's ETag as If-Match")
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.startswith("v") or not value[1:].isdigit():
        raise HTTPException(412, "If-Match does not name a version of this care plan")
    return int(value[1:])


def _as_answer(plan: careplan.CarePlan, response: Response) -> CarePlanOut:
    response.headers["ETag"] = f'"v{plan.version}"'
    return CarePlanOut.model_validate(careplan.care_plan_as_json(plan))


@router.get("/care-plan-templates")
def list_templates(checked: ReadDirectory) -> list[TemplateOut]:
    return [TemplateOut.model_validate(careplan.template_as_json(t)) for t in TEMPLATES.values()]


@router.get("/patients/{patient_id}/care-plan", response_model=CarePlanOut)
def get_care_plan(record: ReadPlan, response: Response) -> CarePlanOut | JSONResponse:
    """The care plan; its ``ETag`` goes into ``If-Match`` when you change it."""
    plan = careplan.get_care_plan(record.conn, patient_id=record.patient_id)
    if plan is None:
        return not_visible()  # answered, not raised: the read is logged all the same
    return _as_answer(plan, response)


@router.post("/patients/{patient_id}/care-plan", status_code=201)
def create_care_plan(record: CreatePlan, body: CarePlanCreate, response: Response) -> CarePlanOut:
    plan = careplan.do_create_care_plan(
        record.conn,
        patient_id=record.patient_id,
        template=body.template,
        author=record.principal.uuid,
        now=record.now,
        spo2_scale=body.spo2_scale,
        spo2_target=body.spo2_target,
        rule_parameters=body.rule_parameters,
    )
    return _as_answer(plan, response)


@router.patch(
    "/patients/{patient_id}/care-plan",
    responses={
        412: problem_response("The plan changed since you read it (If-Match is stale)"),
        428: problem_response("If-Match is missing"),
    },
)
def update_care_plan(
    expected: Annotated[int, Depends(_expected_version)],
    record: ChangePlan,
    body: CarePlanUpdate,
    response: Response,
) -> CarePlanOut:
    """Change thresholds, schedule, self-management text or SpO2 scale, with a reason.

    Send the ``ETag`` of the plan you read as ``If-Match``: two nurses never silently
    overwrite each other; the second gets 412 and reads the plan again.
    """
    plan = careplan.do_update_care_plan(
        record.conn,
        patient_id=record.patient_id,
        expected_version=expected,
        author=record.principal.uuid,
        now=record.now,
        reason=body.reason,
        thresholds=None if body.thresholds is None else [t.to_limits() for t in body.thresholds],
        measurements=None
        if body.measurements is None
        else [ScheduledMeasurement(**m.model_dump()) for m in body.measurements],
        self_management=body.self_management,
        spo2_scale=body.spo2_scale,
        spo2_target=body.spo2_target,
        rule_parameters=body.rule_parameters,
    )
    return _as_answer(plan, response)


@router.get("/patients/{patient_id}/care-plan/versions")
def care_plan_versions(record: ReadPlan) -> list[CarePlanVersionOut]:
    """Every change: who, when, why, and the plan before and after (newest first)."""
    versions = careplan.care_plan_history(record.conn, patient_id=record.patient_id)
    return [CarePlanVersionOut.model_validate(v, from_attributes=True) for v in versions]
