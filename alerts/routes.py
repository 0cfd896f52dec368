"""The alerts API under /api/v1: list and filter, acknowledge, assign, resolve, snooze; the
rule catalogue; escalation policies; one's own notification channels; questionnaires.

Every route goes through care.access's one check and, on patient data, its access log.
"""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field, StringConstraints

from alerts.channels import DeliveryError, PermanentDeliveryError, check_target
from alerts.engine import do_evaluate
from alerts.library.catalogue import RULES
from alerts.lifecycle import (
    AlertStateError,
    Outcome,
    do_acknowledge,
    do_assign,
    do_resolve,
    do_snooze,
)
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
    id: int
    patient_id: UUID
    rule_id: str
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


class RuleOut(BaseModel):
    id: str
    version: int
    category: str
    title: dict[str, str]
    explanation: dict[str, str]
    source: str
    defaults: dict[str, Any]
    tuning: str


Channel = Literal["email", "webhook", "apprise"]


class EscalationPolicyIn(Input):
    red_minutes: int = Field(default=15, ge=1, le=1440)
    yellow_minutes: int = Field(default=480, ge=1, le=10080)
    on_call_channel: Channel | None = None
    on_call_address: Annotated[str, StringConstraints(max_length=2000)] | None = None
    out_of_hours_channel: Channel | None = None
    out_of_hours_address: Annotated[str, StringConstraints(max_length=2000)] | None = None
    include_values: bool = Field(
        default=False, description="Put measured values in notifications (off: minimum only)"
    )


class EscalationPolicyOut(EscalationPolicyIn):
    organisation_id: UUID


class SubscriptionIn(Input):
    channel: Channel
    address: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    min_severity: Literal["yellow", "red"] = "red"


class SubscriptionOut(SubscriptionIn):
    id: int


class DailySymptomsIn(Input):
    kind: Literal["daily_symptoms"]
    answered_at: datetime
    more_breathless: bool
    more_swelling: bool
    more_cough: bool


class CatIn(Input):
    kind: Literal["cat"]
    answered_at: datetime
    answers: list[Annotated[int, Field(ge=0, le=5)]] = Field(min_length=8, max_length=8)


class QuestionnaireOut(BaseModel):
    id: int
    kind: str
    answered_at: datetime
    total: int | None


class TriageOut(BaseModel):
    patient_id: UUID
    triage: Triage


_ALERT_COLUMNS = ", ".join(AlertOut.model_fields)


def install_alert_problems(app: FastAPI) -> None:
    async def conflict(request: Request, error: Exception) -> JSONResponse:
        return problem(409, str(error))

    app.add_exception_handler(AlertStateError, conflict)


def alerts_router(
    *,
    pool: ConnectionPool,
    clock: Clock,
    authenticate: Authenticator,
    public_url: str,
    allow_private_targets: bool = False,
) -> APIRouter:
    """`allow_private_targets`: notification targets may be loopback or private addresses
    (HEIMVAKT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES), as the dispatcher's channels allow."""
    api = Guard(router=api_router(authenticate), pool=pool, clock=clock)
    caller = Annotated[Principal, Depends(authenticate)]
    for add in (_alert_routes, _action_routes):
        add(api, caller)
    _settings_routes(api, caller, allow_private_targets=allow_private_targets)
    _questionnaire_routes(api, caller, public_url=public_url)
    return api.router


def _alert(conn: psycopg.Connection, alert_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,)
        ).fetchone()


def _patient_of(api: Guard, alert_id: int) -> UUID:
    with api.pool.connection() as conn:
        row = conn.execute("SELECT patient_id FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise NotVisibleError
    return row[0]


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
            visible, parameters = visible_patients_filter(principal, now=now)
            with conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(
                    f"""
                    SELECT {_ALERT_COLUMNS} FROM alerts a
                     WHERE a.patient_id IN (SELECT p.id FROM patients p WHERE {visible})
                       AND (%(unit)s::uuid IS NULL OR a.routed_to = %(unit)s)
                       AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
                       AND (%(category)s::text IS NULL OR a.category = %(category)s)
                       AND (%(patient)s::uuid IS NULL OR a.patient_id = %(patient)s)
                       AND CASE %(state)s WHEN 'unresolved' THEN a.state <> 'resolved'
                                ELSE a.state = %(state)s END
                     ORDER BY a.severity = 'red' DESC, a.updated_at DESC, a.id DESC
                     LIMIT %(limit)s OFFSET %(offset)s
                    """,
                    {
                        **parameters,
                        "unit": unit,
                        "severity": severity,
                        "category": category,
                        "patient": patient_id,
                        "state": state,
                        "limit": limit,
                        "offset": offset,
                    },
                ).fetchall()
            do_log_access(
                conn,
                principal=principal,
                patient_ids=sorted({row["patient_id"] for row in rows}),
                resource="alerts",
                action=Action.READ,
                interface=Interface.API,
                reason=Reason.OWN_DATA if principal.kind == "patient" else Reason.CARE_TEAM,
                now=now,
            )
        return page([AlertOut(**row) for row in rows], limit=limit, offset=offset)

    @api.router.get(
        "/alerts/{alert_id}",
        tags=["alerts"],
        response_model=AlertDetail,
        openapi_extra=access(Permission.READ_PATIENT, "alert"),
    )
    def get_alert(principal: Caller, alert_id: int) -> Any:
        """One alert with every action taken on it."""
        patient_id = _patient_of(api, alert_id)
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="alert"
        ) as conn:
            row = _alert(conn, alert_id)
            with conn.cursor(row_factory=dict_row) as cur:
                events = cur.execute(
                    "SELECT at, actor, action, details FROM alert_events WHERE alert_id = %s"
                    " ORDER BY id",
                    (alert_id,),
                ).fetchall()
        assert row is not None
        return AlertDetail(**row, events=[AlertEventOut(**e) for e in events])

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
    """Acting on an alert: every step is an alert event and an access-log row."""

    def act(principal: Principal, alert_id: int, what: str) -> Any:
        patient_id = _patient_of(api, alert_id)
        return patient_id, api.patient_record(
            principal,
            patient_id,
            permission=Permission.ACT_ON_ALERT,
            resource=f"alert:{what}",
            action=Action.UPDATE,
        )

    def answer(alert_id: int) -> AlertOut:
        with api.pool.connection() as conn:
            row = _alert(conn, alert_id)
        assert row is not None
        return AlertOut(**row)

    @api.router.post(
        "/alerts/{alert_id}/acknowledge",
        tags=["alerts"],
        response_model=AlertOut,
        openapi_extra=access(Permission.ACT_ON_ALERT, "alert"),
    )
    def acknowledge(principal: Caller, alert_id: int) -> Any:
        """I have it: escalation stops."""
        _patient, record = act(principal, alert_id, "acknowledge")
        with record as conn:
            do_acknowledge(conn, alert_id=alert_id, by=principal.uuid, now=api.clock.now())
        return answer(alert_id)

    @api.router.post(
        "/alerts/{alert_id}/assign",
        tags=["alerts"],
        response_model=AlertOut,
        openapi_extra=access(Permission.ACT_ON_ALERT, "alert"),
    )
    def assign(principal: Caller, alert_id: int, body: AssignIn) -> Any:
        _patient, record = act(principal, alert_id, "assign")
        with record as conn:
            do_assign(
                conn, alert_id=alert_id, to=body.staff_id, by=principal.uuid, now=api.clock.now()
            )
        return answer(alert_id)

    @api.router.post(
        "/alerts/{alert_id}/resolve",
        tags=["alerts"],
        response_model=AlertOut,
        openapi_extra=access(Permission.ACT_ON_ALERT, "alert"),
    )
    def resolve(principal: Caller, alert_id: int, body: ResolveIn) -> Any:
        """Close with what was done (outcome and note); it stays quiet until values clear."""
        _patient, record = act(principal, alert_id, "resolve")
        with record as conn:
            do_resolve(
                conn,
                alert_id=alert_id,
                by=principal.uuid,
                outcome=body.outcome,
                note=body.note,
                now=api.clock.now(),
            )
        return answer(alert_id)

    @api.router.post(
        "/alerts/{alert_id}/snooze",
        tags=["alerts"],
        response_model=AlertOut,
        openapi_extra=access(Permission.ACT_ON_ALERT, "alert"),
    )
    def snooze(principal: Caller, alert_id: int, body: SnoozeIn) -> Any:
        """Mute this rule, measurement and direction for this patient for a while; a red
        finding still notifies."""
        _patient, record = act(principal, alert_id, "snooze")
        with record as conn:
            do_snooze(
                conn,
                alert_id=alert_id,
                by=principal.uuid,
                reason=body.reason,
                duration=timedelta(minutes=body.minutes),
                now=api.clock.now(),
            )
        return answer(alert_id)


def _settings_routes(api: Guard, Caller: Any, *, allow_private_targets: bool) -> None:
    """Escalation policies and one's own notification channels."""

    def check(channel: str | None, address: str | None) -> None:
        """Refuse a target the channel would refuse at send time (SSRF), when it is named."""
        if channel is None or address is None:
            return
        try:
            check_target(channel, address, allow_private_addresses=allow_private_targets)
        except (PermanentDeliveryError, DeliveryError) as error:
            raise HTTPException(422, f"the {channel} address is refused: {error}") from None

    @api.router.get(
        "/organisations/{organisation_id}/escalation-policy",
        tags=["alert settings"],
        response_model=EscalationPolicyOut,
        openapi_extra=access(Permission.MANAGE_ESCALATION, "organisation"),
    )
    def get_policy(principal: Caller, organisation_id: UUID) -> Any:
        with api.allowed(
            principal, Permission.MANAGE_ESCALATION, organisation_id=organisation_id
        ) as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM organisations WHERE id = %s", (organisation_id,)
                ).fetchone()
                is None
            ):
                raise NotVisibleError
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    "SELECT * FROM escalation_policies WHERE organisation_id = %s",
                    (organisation_id,),
                ).fetchone()
        if row is None:
            return EscalationPolicyOut(organisation_id=organisation_id)
        row.pop("updated_at")
        return EscalationPolicyOut(**row)

    @api.router.put(
        "/organisations/{organisation_id}/escalation-policy",
        tags=["alert settings"],
        response_model=EscalationPolicyOut,
        openapi_extra=access(Permission.MANAGE_ESCALATION, "organisation"),
    )
    def put_policy(principal: Caller, organisation_id: UUID, body: EscalationPolicyIn) -> Any:
        """Deadlines per severity, the on-call and out-of-hours routes, and whether messages
        may carry values."""
        with api.allowed(
            principal, Permission.MANAGE_ESCALATION, organisation_id=organisation_id
        ) as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM organisations WHERE id = %s", (organisation_id,)
                ).fetchone()
                is None
            ):
                raise NotVisibleError
            check(body.on_call_channel, body.on_call_address)
            check(body.out_of_hours_channel, body.out_of_hours_address)
            values = body.model_dump()
            conn.execute(
                """
                INSERT INTO escalation_policies (organisation_id, red_minutes, yellow_minutes,
                    on_call_channel, on_call_address, out_of_hours_channel,
                    out_of_hours_address, include_values, updated_at)
                VALUES (%(org)s, %(red_minutes)s, %(yellow_minutes)s, %(on_call_channel)s,
                    %(on_call_address)s, %(out_of_hours_channel)s, %(out_of_hours_address)s,
                    %(include_values)s, %(now)s)
                ON CONFLICT (organisation_id) DO UPDATE SET
                    red_minutes = EXCLUDED.red_minutes, yellow_minutes = EXCLUDED.yellow_minutes,
                    on_call_channel = EXCLUDED.on_call_channel,
                    on_call_address = EXCLUDED.on_call_address,
                    out_of_hours_channel = EXCLUDED.out_of_hours_channel,
                    out_of_hours_address = EXCLUDED.out_of_hours_address,
                    include_values = EXCLUDED.include_values, updated_at = EXCLUDED.updated_at
                """,
                {**values, "org": organisation_id, "now": api.clock.now()},
            )
        return EscalationPolicyOut(organisation_id=organisation_id, **values)

    @api.router.get(
        "/me/notification-subscriptions",
        tags=["alert settings"],
        response_model=list[SubscriptionOut],
        openapi_extra=access(Permission.MANAGE_OWN_NOTIFICATIONS, "self"),
    )
    def my_subscriptions(principal: Caller) -> Any:
        with (
            api.allowed(principal, Permission.MANAGE_OWN_NOTIFICATIONS) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            rows = cur.execute(
                "SELECT id, channel, address, min_severity FROM notification_subscriptions"
                " WHERE staff_id = %s ORDER BY id",
                (principal.uuid,),
            ).fetchall()
        return [SubscriptionOut(**row) for row in rows]

    @api.router.post(
        "/me/notification-subscriptions",
        tags=["alert settings"],
        status_code=201,
        response_model=SubscriptionOut,
        openapi_extra=access(Permission.MANAGE_OWN_NOTIFICATIONS, "self"),
    )
    def subscribe(principal: Caller, body: SubscriptionIn) -> Any:
        """Be told on this channel about alerts of at least this severity for your units."""
        with api.allowed(principal, Permission.MANAGE_OWN_NOTIFICATIONS) as conn:
            check(body.channel, body.address)
            row = conn.execute(
                "INSERT INTO notification_subscriptions (staff_id, channel, address,"
                " min_severity) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (staff_id, channel, address)"
                " DO UPDATE SET min_severity = EXCLUDED.min_severity RETURNING id",
                (principal.uuid, body.channel, body.address, body.min_severity),
            ).fetchone()
        assert row is not None
        return SubscriptionOut(id=row[0], **body.model_dump())

    @api.router.delete(
        "/me/notification-subscriptions/{subscription_id}",
        tags=["alert settings"],
        status_code=204,
        openapi_extra=access(Permission.MANAGE_OWN_NOTIFICATIONS, "self"),
    )
    def unsubscribe(principal: Caller, subscription_id: int) -> Response:
        with api.allowed(principal, Permission.MANAGE_OWN_NOTIFICATIONS) as conn:
            deleted = conn.execute(
                "DELETE FROM notification_subscriptions WHERE id = %s AND staff_id = %s",
                (subscription_id, principal.uuid),
            ).rowcount
        if not deleted:
            raise NotVisibleError
        return Response(status_code=204)


def _questionnaire_routes(api: Guard, Caller: Any, *, public_url: str) -> None:
    @api.router.post(
        "/patients/{patient_id}/questionnaires",
        tags=["alerts"],
        status_code=201,
        response_model=QuestionnaireOut,
        openapi_extra=access(Permission.SUBMIT_QUESTIONNAIRE, "patient"),
    )
    def submit_questionnaire(
        principal: Caller,
        patient_id: UUID,
        body: Annotated[DailySymptomsIn | CatIn, Field(discriminator="kind")],
    ) -> Any:
        """The daily symptom check (yes/no) or the CAT (8 items, 0-5); evaluated at once, and
        a yes raises a simultaneous weight or SpO2 finding (symptom gating)."""
        now = api.clock.now()
        if body.answered_at > now + timedelta(minutes=5):
            raise HTTPException(422, "answered_at lies in the future")
        if isinstance(body, CatIn):
            answers: dict[str, Any] = {f"q{i + 1}": v for i, v in enumerate(body.answers)}
            total: int | None = sum(body.answers)
        else:
            answers = body.model_dump(include={"more_breathless", "more_swelling", "more_cough"})
            total = None
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.SUBMIT_QUESTIONNAIRE,
            resource="questionnaire",
            action=Action.CREATE,
        ) as conn:
            row = conn.execute(
                "INSERT INTO questionnaire_responses (patient_id, kind, answered_at, answers,"
                " total, received_at) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (patient_id, kind, answered_at) DO UPDATE"
                " SET answers = EXCLUDED.answers, total = EXCLUDED.total RETURNING id",
                (patient_id, body.kind, body.answered_at, Jsonb(answers), total, now),
            ).fetchone()
            do_evaluate(
                conn, moments={patient_id: [body.answered_at]}, now=now, public_url=public_url
            )
        assert row is not None
        return QuestionnaireOut(
            id=row[0], kind=body.kind, answered_at=body.answered_at, total=total
        )
