"""The patient sends their daily check from their own page: validated by the API's own model,
authorized and logged by care.access, and stored and evaluated by the one way answers are
recorded (alerts.answers.do_record_answers), exactly as the API does it."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from dash import Dash, Input, NoUpdate, Output, State, no_update
from dash.development.base_component import Component
from pydantic import ValidationError

from alerts.answers import do_record_answers
from alerts.questionnaire_routes import DailySymptomsIn
from care.access import (
    Action,
    ForbiddenError,
    Interface,
    NotAuthenticatedError,
    NotVisibleError,
    Permission,
    do_access_patient,
)
from core.i18n import translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context, done, warning
from dashboard.data.own import DAILY_CHECK
from dashboard.links import language_from_search
from dashboard.pages.own import DAILY_QUESTIONS, DAILY_STATUS, DAILY_SUBMIT, YES, daily_answer_id

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output(DAILY_STATUS, "children"),
        Input(DAILY_SUBMIT, "n_clicks"),
        *(State(daily_answer_id(question), "value") for question in DAILY_QUESTIONS),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def send_daily_check(
        clicks: int | None, *answers_and_search: str | None
    ) -> Component | NoUpdate:
        if not clicks:
            return no_update
        *answers, search = answers_and_search
        token = context.token()
        return await asyncio.to_thread(
            send_answers, context, dict(zip(DAILY_QUESTIONS, answers, strict=True)), token, search
        )


def send_answers(
    context: Context, answers: dict[str, str | None], token: str | None, search: str | None
) -> Component:
    """Record the caller's own daily check; a question left unanswered is said, not stored."""
    t = translator(language_from_search(search))
    now = context.clock.now()
    try:
        body = DailySymptomsIn.model_validate(
            {
                "kind": DAILY_CHECK,
                "answered_at": now,
                **{q: None if a is None else a == YES for q, a in answers.items()},
            }
        )
    except ValidationError:
        return warning(t("Please answer every question before you send."))
    try:
        principal = context.principal_of(token)
        if principal.kind != "patient":
            raise ForbiddenError("only a patient sends their own daily check from this page")
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            do_access_patient(
                conn,
                principal=principal,
                permission=Permission.SUBMIT_QUESTIONNAIRE,
                patient_id=principal.uuid,
                resource="questionnaire",
                action=Action.CREATE,
                interface=Interface.DASHBOARD,
                now=now,
            )
            do_record_answers(
                conn,
                patient_id=principal.uuid,
                kind=body.kind,
                answered_at=body.answered_at,
                answers=body.model_dump(include=set(DAILY_QUESTIONS)),
                total=None,
                now=now,
            )
    except (NotAuthenticatedError, ForbiddenError, NotVisibleError, psycopg.Error):
        log.info("a daily check was not stored from the dashboard", exc_info=True)
        return warning(t("Your answers could not be saved. Please try again."))
    return done(t("Thank you. Your answers are saved. Your care team will see them."))
