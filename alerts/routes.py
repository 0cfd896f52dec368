"""The alerts API under /api/v1: list and filter alerts, one alert with its history, the
steps people take on it (acknowledge, assign, resolve, snooze, note), triage and the rule
catalogue; with the alert settings (alerts/settings_routes.py) and questionnaires
(alerts/questionnaire_routes.py) under one router.

Every route names its access check from care/guard.py, which also declares it in the OpenAPI
document; the reads are alerts/queries.py and the steps alerts/actions.py, which the dashboard
calls too (a step checks access and logs it itself, so its route only declares the rule).
"""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alerts import questionnaire_routes, settings_routes
from alerts.actions import (
    AlertStateError,
    Outcome,
    do_acknowledge_alert,
    do_assign_alert,
    do_note_alert,
    do_resolve_alert,
    do_snooze_alert,
)
from alerts.library.catalogue import RULES
from alerts.queries import alert_events, find_alert, find_alerts, patient_of_alert
from alerts.triage import Triage, triage_of
from care.access import (
    Action,
    Interface,
    NotVisibleError,
    Permission,
    Reason,
    visible_patients_filter,
)
from care.guard import (
    AccessGuard,
    Caller,
    Checked,
    PatientRecord,
    allowed,
    guarded_router,
    open_patient_record,
    patient_record,
)
from core.api import AccessRule, Limit, Offset, Page, access, api_context, page
from core.fields import Input
from core.problems import problem

Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patient_id: UUID
    rule_id: str = Field(
        description="The rule that raised the alert, as GET /rules and docs/rules.md list it"
    )
    instance: str = Field(
        description="What the alert is about: rule, measurement and direction "
        "(threshold:59408-5:low). One open alert per patient and instance; a snooze mutes one."
    )
    rule_version: int = Field(description="The version of the rule that raised it")
    severity: Literal["yellow", "red"]
    category: Literal["clinical", "adherence", "technical"]
    state: Literal["open", "acknowledged", "resolved"]
    code: str | None
    direction: Literal["low", "high"] | None
    last_value: float | None
    first_measured_at: datetime
    last_measured_at: datetime
    occurrences: int
    late: bool
    details: dict[str, Any]
    route: Literal["responsible", "backup", "on_call", "out_of_hours"]
    routed_to: UUID | None
    escalation_level: int
    escalate_at: datetime | None
    assigned_to: UUID | None
    acknowledged_by: UUID | None
    acknowledged_at: datetime | None
    resolved_by: UUID | None
    resolved_at: datetime | None
    outcome: str | None
    resolution_note: str | None
    created_at: datetime
    updated_at: datetime
    episode_id: int = Field(
        description="The episode the alert is part of: acknowledge, assign, resolve and snooze "
        "act on the whole episode (docs/rules.md)"
    )


class AlertEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: UUID | None
    action: str
    details: dict[str, Any]


class AlertDetail(AlertOut):
    events: list[AlertEventOut]


class AssignIn(Input):
    staff_id: UUID


class ResolveIn(Input):
    outcome: Outcome
    note: Note


class SnoozeIn(Input):
    reason: Note
    minutes: int = Field(ge=1, le=7 * 24 * 60)


class NoteIn(Input):
    note: Note


class RuleOut(BaseModel):
    id: str
    version: int
    category: str
    title: dict[str, str]
    explanation: dict[str, str]
    source: str
    defaults: dict[str, Any]
    tuning: str


class TriageOut(BaseModel):
    patient_id: UUID
    triage: Triage


def install_alert_problems(app: FastAPI) -> None:
    async def conflict(request: Request, error: Exception) -> JSONResponse:
        return problem(409, str(error))

    app.add_exception_handler(AlertStateError, conflict)


class _AlertRecord(AccessGuard):
    """The record of the patient whose alert the path's ``alert_id`` names."""

    access_rule = AccessRule(Permission.READ_PATIENT, "alert")

    def __call__(
        self, request: Request, principal: Caller, alert_id: int
    ) -> Iterator[PatientRecord]:
        with api_context(request).pool.connection() as conn:
            patient_id = patient_of_alert(conn, alert_id=alert_id)
        with open_patient_record(
            request,
            principal,
            patient_id,
            permission=Permission.READ_PATIENT,
            resource="alert",
            action=Action.READ,
        ) as record:
            yield record


alert_router = guarded_router(tags=["alerts"])

ListAlerts = Annotated[Checked, allowed(Permission.READ_PATIENT, "patients")]
ReadAlert = Annotated[PatientRecord, Depends(_AlertRecord(), scope="function")]
ReadTriage = Annotated[PatientRecord, patient_record(Permission.READ_PATIENT, resource="triage")]
ReadRules = Annotated[Checked, allowed(Permission.READ_DIRECTORY)]


@alert_router.get("/alerts")
def list_alerts(
    checked: ListAlerts,
    *,
    unit: UUID | None = None,
    severity: Literal["yellow", "red"] | None = None,
    state: Literal["open", "acknowledged", "resolved", "unresolved"] = "unresolved",
    category: Literal["clinical", "adherence", "technical"] | None = None,
    patient_id: UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AlertOut]:
    """Alerts of the patients in your care, red first, newest first."""
    principal = checked.principal
    found = find_alerts(
        checked.conn,
        state=state,
        visible=visible_patients_filter(principal, now=checked.now),
        patient_ids=None if patient_id is None else [patient_id],
        unit=unit,
        severity=severity,
        category=category,
        limit=limit,
        offset=offset,
    )
    checked.log_patients(
        sorted({alert.patient_id for alert in found}),
        resource="alerts",
        reason=Reason.OWN_DATA if principal.kind == "patient" else Reason.CARE_TEAM,
    )
    return page([AlertOut.model_validate(alert) for alert in found], limit=limit, offset=offset)


@alert_router.get("/alerts/{alert_id}")
def get_alert(record: ReadAlert, alert_id: int) -> AlertDetail:
    """One alert with every action taken on it."""
    alert = find_alert(record.conn, alert_id=alert_id)
    if alert is None:
        raise NotVisibleError
    events = alert_events(record.conn, alert_id=alert_id)
    return AlertDetail(
        **AlertOut.model_validate(alert).model_dump(),
        events=[AlertEventOut.model_validate(event) for event in events],
    )


@alert_router.get("/patients/{patient_id}/triage")
def patient_triage(record: ReadTriage) -> TriageOut:
    """Red, yellow, missing data or green, from the patient's unresolved alerts."""
    found = triage_of(record.conn, patient_ids=[record.patient_id])
    return TriageOut(patient_id=record.patient_id, triage=found[record.patient_id])


@alert_router.get("/rules")
def rule_catalogue(checked: ReadRules) -> list[RuleOut]:
    """Every rule with its version, plain-language explanation, source and defaults."""
    return [
        RuleOut(
            id=rule.id,
            version=rule.version,
            category=str(rule.category),
            title=dict(rule.title),
            explanation=dict(rule.explanation),
            source=rule.source,
            defaults=dict(rule.defaults),
            tuning=rule.tuning,
        )
        for rule in RULES
    ]


def _act(
    request: Request, principal: Caller, alert_id: int, step: Callable[..., None], **what: Any
) -> AlertOut:
    """Take one step through alerts.actions, which checks access, logs it and records the
    alert event in the step's transaction."""
    context = api_context(request)
    with context.pool.connection() as conn:
        step(
            conn,
            alert_id=alert_id,
            actor=principal,
            interface=Interface.API,
            now=context.clock.now(),
            **what,
        )
        alert = find_alert(conn, alert_id=alert_id)
    assert alert is not None
    return AlertOut.model_validate(alert)


_STEP = access(Permission.ACT_ON_ALERT, "alert")


@alert_router.post("/alerts/{alert_id}/acknowledge", openapi_extra=_STEP)
def acknowledge(request: Request, principal: Caller, alert_id: int) -> AlertOut:
    """I have it: escalation stops."""
    return _act(request, principal, alert_id, do_acknowledge_alert)


@alert_router.post("/alerts/{alert_id}/assign", openapi_extra=_STEP)
def assign(request: Request, principal: Caller, alert_id: int, body: AssignIn) -> AlertOut:
    """Give the alert to a colleague."""
    return _act(request, principal, alert_id, do_assign_alert, to=body.staff_id)


@alert_router.post("/alerts/{alert_id}/resolve", openapi_extra=_STEP)
def resolve(request: Request, principal: Caller, alert_id: int, body: ResolveIn) -> AlertOut:
    """Close with what was done (outcome and note); it stays quiet until values clear."""
    return _act(
        request, principal, alert_id, do_resolve_alert, outcome=body.outcome, note=body.note
    )


@alert_router.post("/alerts/{alert_id}/snooze", openapi_extra=_STEP)
def snooze(request: Request, principal: Caller, alert_id: int, body: SnoozeIn) -> AlertOut:
    """Mute this rule, measurement and direction for this patient for a while; a red
    finding still notifies."""
    return _act(
        request,
        principal,
        alert_id,
        do_snooze_alert,
        reason=body.reason,
        duration=timedelta(minutes=body.minutes),
    )


@alert_router.post("/alerts/{alert_id}/notes", openapi_extra=_STEP)
def note(request: Request, principal: Caller, alert_id: int, body: NoteIn) -> AlertOut:
    """Write down what was learnt or done, without changing the alert's state; it is
    in the alert's history (GET /alerts/{alert_id})."""
    return _act(request, principal, alert_id, do_note_alert, note=body.note)


router = APIRouter()
for module_router in (alert_router, settings_routes.router, questionnaire_routes.router):
    router.include_router(module_router)
