"""The patient sends their daily check from their own page: validated by the API's own model,
authorized and logged by care.access, and stored and evaluated by the one way answers are
recorded (alerts.answers.do_record_answers), exactly as the API does it."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from dash import (
    ALL,
    MATCH,
    Dash,
    Input,
    NoUpdate,
    Output,
    State,
    callback_context,
    no_update,
)
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
from dashboard.pages.own import (
    DAILY_ANSWER,
    DAILY_CHOICE,
    DAILY_CHOSEN,
    DAILY_QUESTIONS,
    DAILY_STATUS,
    DAILY_SUBMIT,
    YES,
    answer_buttons,
)

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output({"type": DAILY_CHOICE, "question": MATCH}, "children"),
        Output({"type": DAILY_CHOSEN, "question": MATCH}, "data"),
        Input({"type": DAILY_ANSWER, "question": MATCH, "answer": ALL}, "n_clicks"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def choose(
        clicks: list[int | None], search: str | None
    ) -> tuple[list[Component], str] | NoUpdate:
        """Press the answer chosen (and release the other): nothing is stored until Send."""
        triggered = callback_context.triggered_id
        if not isinstance(triggered, dict) or not any(clicks):
            return no_update
        t = translator(language_from_search(search))
        answer = str(triggered["answer"])
        return answer_buttons(str(triggered["question"]), answer, t=t), answer

    @app.callback(
        Output(DAILY_STATUS, "children"),
        Input(DAILY_SUBMIT, "n_clicks"),
        State({"type": DAILY_CHOSEN, "question": ALL}, "data"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def send_daily_check(
        clicks: int | None, _chosen: list[str | None], search: str | None
    ) -> Component | NoUpdate:
        if not clicks:
            return no_update
        [chosen_states, _search] = callback_context.states_list
        answers = {state["id"]["question"]: state.get("value") for state in chosen_states}
        token = context.token()
        return await asyncio.to_thread(send_answers, context, answers, token, search)


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
                **{
                    q: None if answers.get(q) is None else answers[q] == YES
                    for q in DAILY_QUESTIONS
                },
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
