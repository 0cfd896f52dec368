"""The patient answers a questionnaire (the daily check, the CAT) from their own page, or a
relative does on the patient's page with a consent that allows it (the answers then say who):
validated by the API's own models, authorized and logged by care.access, and stored and
evaluated by the one way answers are recorded (alerts.answers.do_record_answers), exactly as
the API does it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

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
from pydantic import TypeAdapter, ValidationError

from alerts.answers import do_record_answers
from alerts.questionnaire_routes import CatIn, DailySymptomsIn, recorded_answers
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
from dashboard.links import language_from_search, resolve
from dashboard.pages.own import (
    ANSWER,
    CHOICE,
    CHOSEN,
    QUESTIONS,
    SEND,
    STATUS,
    YES,
    answer_buttons,
)

log = logging.getLogger(__name__)

_QUESTIONNAIRE: TypeAdapter[DailySymptomsIn | CatIn] = TypeAdapter(DailySymptomsIn | CatIn)
"""The API's request bodies, one of the two by their `kind`."""


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output({"type": CHOICE, "kind": MATCH, "question": MATCH}, "children"),
        Output({"type": CHOSEN, "kind": MATCH, "question": MATCH}, "data"),
        Input({"type": ANSWER, "kind": MATCH, "question": MATCH, "answer": ALL}, "n_clicks"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def choose(
        clicks: list[int | None], search: str | None
    ) -> tuple[list[Component], str] | NoUpdate:
        """Press the answer chosen (and release the others): nothing is stored until Send."""
        pressed = callback_context.triggered_id
        if not isinstance(pressed, dict) or not any(clicks):
            return no_update
        t = translator(language_from_search(search))
        answer = str(pressed["answer"])
        buttons = answer_buttons(str(pressed["kind"]), str(pressed["question"]), answer, t=t)
        return buttons, answer

    @app.callback(
        Output({"type": STATUS, "kind": MATCH}, "children"),
        Input({"type": SEND, "kind": MATCH}, "n_clicks"),
        State({"type": CHOSEN, "kind": MATCH, "question": ALL}, "data"),
        State("url", "search"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )
    async def send(
        clicks: int | None, _chosen: list[str | None], search: str | None, pathname: str | None
    ) -> Component | NoUpdate:
        sent = callback_context.triggered_id
        if not isinstance(sent, dict) or not clicks:
            return no_update
        [chosen, _search, _pathname] = callback_context.states_list
        answers = {state["id"]["question"]: state.get("value") for state in chosen}
        token = context.token()
        return await asyncio.to_thread(
            send_answers, context, str(sent["kind"]), answers, token, search, pathname=pathname
        )


def send_answers(
    context: Context,
    kind: str,
    answers: dict[str, str | None],
    token: str | None,
    search: str | None,
    *,
    pathname: str | None = None,
) -> Component:
    """Record the answers of the patient whose page it is: the caller's own, or, for a
    relative, those of the patient the address names; a question left unanswered is said,
    not stored."""
    t = translator(language_from_search(search))
    now = context.clock.now()
    given = [answers.get(question) for question in QUESTIONS.get(kind, ())]
    if kind == DAILY_CHECK:
        fields: dict[str, Any] = {
            question: None if answer is None else answer == YES
            for question, answer in zip(QUESTIONS[kind], given, strict=True)
        }
    else:
        fields = {"answers": given}
    try:
        body = _QUESTIONNAIRE.validate_python({"kind": kind, "answered_at": now, **fields})
    except ValidationError:
        return warning(t("Please answer every question before you send."))
    recorded, total = recorded_answers(body)
    try:
        principal = context.principal_of(token)
        if principal.kind == "patient":
            patient_id: UUID | None = principal.uuid
        elif principal.kind == "relative":
            patient_id = resolve(pathname, base=context.url_base).patient_id
        else:
            raise ForbiddenError("only a patient or their relative answers on the patient's page")
        if patient_id is None:
            raise NotVisibleError
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            do_access_patient(
                conn,
                principal=principal,
                permission=Permission.SUBMIT_QUESTIONNAIRE,
                patient_id=patient_id,
                resource="questionnaire",
                action=Action.CREATE,
                interface=Interface.DASHBOARD,
                now=now,
            )
            do_record_answers(
                conn,
                patient_id=patient_id,
                kind=body.kind,
                answered_at=body.answered_at,
                answers=recorded,
                total=total,
                now=now,
                answered_by_relative=principal.uuid if principal.kind == "relative" else None,
            )
    except (NotAuthenticatedError, ForbiddenError, NotVisibleError, psycopg.Error):
        log.info("a questionnaire was not stored from the dashboard", exc_info=True)
        return warning(t("Your answers could not be saved. Please try again."))
    return done(t("Thank you. Your answers are saved. Your care team will see them."))
