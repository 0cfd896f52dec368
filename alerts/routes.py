"""The alerts API under /api/v1: list and filter alerts, one alert with its history, the
steps people take on it (acknowledge, assign, resolve, snooze, note), triage and the rule
catalogue; with the alert settings (alerts/settings_routes.py) and questionnaires
(alerts/questionnaire_routes.py) under one router.

Every route goes through care.access's one check and, on patient data, its access log; the
reads are alerts/queries.py and the steps alerts/actions.py, which the dashboard calls too.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
from alerts.questionnaire_routes import questionnaire_routes
from alerts.settings_routes import settings_routes
from alerts.triage import Triage, triage_of
from care.access import (
    Action,
    Interface,
    NotVisibleError,
    Permission,
    Reason,
    do_log_access,
    visible_patients_filter,
)
from care.guard import Guard, api_router
from core.api import Authenticator, Limit, Offset, Page, access, page
from core.auth import Principal
from core.clock import Clock
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


def alerts_router(
    *,
    pool: ConnectionPool,
    clock: Clock,
    authenticate: Authenticator,
    allow_private_targets: bool = False,
) -> APIRouter:
    """`allow_private_targets`: notification targets may be loopback or private addresses
    (HEIMVAKT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES), as the dispatcher's channels allow."""
    api = Guard(router=api_router(authenticate), pool=pool, clock=clock)
    caller = Annotated[Principal, Depends(authenticate)]
    _alert_routes(api, caller)
    _action_routes(api, caller)
    settings_routes(api, caller, allow_private_targets=allow_private_targets)
    questionnaire_routes(api, caller)
    return api.router


def _alert_routes(api: Guard, Caller: Any) -> None:
    """Reading alerts."""

    @api.router.get(
        "/alerts",
        tags=["alerts"],
        response_model=Page[AlertOut],
        openapi_extra=access(Permission.READ_PATIENT, "patients"),
    )
    def list_alerts(
        principal: Caller,
        *,
        unit: UUID | None = None,
        severity: Literal["yellow", "red"] | None = None,
        state: Literal["open", "acknowledged", "resolved", "unresolved"] = "unresolved",
        category: Literal["clinical", "adherence", "technical"] | None = None,
        patient_id: UUID | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Any:
        """Alerts of the patients in your care, red first, newest first."""
        now = api.clock.now()
        with api.allowed(principal, Permission.READ_PATIENT) as conn:
            found = find_alerts(
                conn,
                state=state,
                visible=visible_patients_filter(principal, now=now),
                patient_ids=None if patient_id is None else [patient_id],
                unit=unit,
                severity=severity,
                category=category,
                limit=limit,
                offset=offset,
            )
            do_log_access(
                conn,
                principal=principal,
                patient_ids=sorted({alert.patient_id for alert in found}),
                resource="alerts",
                action=Action.READ,
                interface=Interface.API,
                reason=Reason.OWN_DATA if principal.kind == "patient" else Reason.CARE_TEAM,
                now=now,
            )
        return page([AlertOut.model_validate(alert) for alert in found], limit=limit, offset=offset)

    @api.router.get(
        "/alerts/{alert_id}",
        tags=["alerts"],
        response_model=AlertDetail,
        openapi_extra=access(Permission.READ_PATIENT, "alert"),
    )
    def get_alert(principal: Caller, alert_id: int) -> Any:
        """One alert with every action taken on it."""
        with api.pool.connection() as conn:
            patient_id = patient_of_alert(conn, alert_id=alert_id)
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="alert"
        ) as conn:
            alert = find_alert(conn, alert_id=alert_id)
            events = alert_events(conn, alert_id=alert_id)
        if alert is None:
            raise NotVisibleError
        return AlertDetail(
            **AlertOut.model_validate(alert).model_dump(),
            events=[AlertEventOut.model_validate(event) for event in events],
        )

    @api.router.get(
        "/patients/{patient_id}/triage",
        tags=["alerts"],
        response_model=TriageOut,
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def patient_triage(principal: Caller, patient_id: UUID) -> Any:
        """Red, yellow, missing data or green, from the patient's unresolved alerts."""
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="triage"
        ) as conn:
            found = triage_of(conn, patient_ids=[patient_id])
        return TriageOut(patient_id=patient_id, triage=found[patient_id])

    @api.router.get(
        "/rules",
        tags=["alerts"],
        response_model=list[RuleOut],
        openapi_extra=access(Permission.READ_DIRECTORY, "none"),
    )
    def rule_catalogue(principal: Caller) -> Any:
        """Every rule with its version, plain-language explanation, source and defaults."""
        with api.allowed(principal, Permission.READ_DIRECTORY):
            pass
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


def _action_routes(api: Guard, Caller: Any) -> None:
    """The steps on an alert, through alerts.actions: each its access check, access-log row
    and alert event, in one transaction."""

    def act(step: Callable[..., None], principal: Principal, alert_id: int, **what: Any) -> Any:
        with api.pool.connection() as conn:
            step(
                conn,
                alert_id=alert_id,
                actor=principal,
                interface=Interface.API,
                now=api.clock.now(),
                **what,
            )
            alert = find_alert(conn, alert_id=alert_id)
        assert alert is not None
        return AlertOut.model_validate(alert)

    def declared(path: str) -> Any:
        return api.router.post(
            f"/alerts/{{alert_id}}/{path}",
            tags=["alerts"],
            response_model=AlertOut,
            openapi_extra=access(Permission.ACT_ON_ALERT, "alert"),
        )

    @declared("acknowledge")
    def acknowledge(principal: Caller, alert_id: int) -> Any:
        """I have it: escalation stops."""
        return act(do_acknowledge_alert, principal, alert_id)

    @declared("assign")
    def assign(principal: Caller, alert_id: int, body: AssignIn) -> Any:
        """Give the alert to a colleague."""
        return act(do_assign_alert, principal, alert_id, to=body.staff_id)

    @declared("resolve")
    def resolve(principal: Caller, alert_id: int, body: ResolveIn) -> Any:
        """Close with what was done (outcome and note); it stays quiet until values clear."""
        return act(do_resolve_alert, principal, alert_id, outcome=body.outcome, note=body.note)

    @declared("snooze")
    def snooze(principal: Caller, alert_id: int, body: SnoozeIn) -> Any:
        """Mute this rule, measurement and direction for this patient for a while; a red
        finding still notifies."""
        return act(
            do_snooze_alert,
            principal,
            alert_id,
            reason=body.reason,
            duration=timedelta(minutes=body.minutes),
        )

    @declared("notes")
    def note(principal: Caller, alert_id: int, body: NoteIn) -> Any:
        """Write down what was learnt or done, without changing the alert's state; it is
        in the alert's history (GET /alerts/{alert_id})."""
        return act(do_note_alert, principal, alert_id, note=body.note)
