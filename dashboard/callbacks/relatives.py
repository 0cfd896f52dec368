"""The patient invites a relative, or withdraws a relative's consent, from their own page:
through the API's own model, the same access check and access-log row, and
`care.proxies.do_invite_relative` or `do_withdraw_consent` as the API; a withdrawal takes
effect at once. The page is drawn again after either, and the invitation's code is said once
in the action status above it."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from uuid import UUID

import psycopg
from dash import ALL, Dash, Input, NoUpdate, Output, State, callback_context, no_update
from dash.development.base_component import Component
from pydantic import ValidationError

from care.access import (
    Action,
    ForbiddenError,
    Interface,
    NotAuthenticatedError,
    NotVisibleError,
    Permission,
    do_access_patient,
)
from care.proxies import ProxyScope, do_invite_relative, do_withdraw_consent
from care.schemas import RelativeInviteIn
from core.clock import DISPLAY_TIMEZONE
from core.i18n import translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context, done, warning
from dashboard.links import language_from_search
from dashboard.pages.relatives import EMAIL, INVITE, NAME, UNTIL, WITHDRAW

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("action-status", "children", allow_duplicate=True),
        Output("page", "children", allow_duplicate=True),
        Input({"type": WITHDRAW, "consent": ALL}, "n_clicks"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def withdraw(
        _clicks: list[int | None], pathname: str | None, search: str | None
    ) -> tuple[Component | NoUpdate, Component | NoUpdate]:
        clicked = _clicked(WITHDRAW)
        if len(clicked) != 1:
            return no_update, no_update
        token = context.token()
        said, withdrawn = await asyncio.to_thread(
            withdraw_consent, context, str(clicked[0]["consent"]), token, search
        )
        if not withdrawn:
            return said, no_update
        page, _ = await asyncio.to_thread(context.render, pathname, search, token, refresh=False)
        return said, page

    @app.callback(
        Output("action-status", "children", allow_duplicate=True),
        Output("page", "children", allow_duplicate=True),
        Input({"type": INVITE, "answer": ALL}, "n_clicks"),
        State(NAME, "value"),
        State(EMAIL, "value"),
        State(UNTIL, "value"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def invite(  # Dash passes inputs and states by position
        _clicks: list[int | None],
        name: str | None,
        email: str | None,
        until: str | None,
        pathname: str | None,
        search: str | None,
    ) -> tuple[Component | NoUpdate, Component | NoUpdate]:
        clicked = _clicked(INVITE)
        if len(clicked) != 1:
            return no_update, no_update
        form = _InviteForm(
            name=name, email=email, until=until, answer=clicked[0]["answer"] == "yes"
        )
        token = context.token()
        said, invited = await asyncio.to_thread(invite_relative, context, form, token, search)
        if not invited:
            return said, no_update
        page, _ = await asyncio.to_thread(context.render, pathname, search, token, refresh=False)
        return said, page


@dataclass(frozen=True, slots=True)
class _InviteForm:
    name: str | None
    email: str | None
    until: str | None
    """The last day of the consent, as the date input gives it (YYYY-MM-DD)."""
    answer: bool


def invite_relative(
    context: Context, form: _InviteForm, token: str | None, search: str | None
) -> tuple[Component, bool]:
    """The patient's invitation, validated by the API's model: what to say (the code, once),
    and whether the relative was invited."""
    t = translator(language_from_search(search))
    now = context.clock.now()
    try:
        last_day = date.fromisoformat(form.until or "")
        body = RelativeInviteIn.model_validate(
            {
                "display_name": form.name or "",
                "email": (form.email or "").strip() or None,
                "answer_questionnaires": form.answer,
                "receive_reminders": bool((form.email or "").strip()),
                # Through the last day, Oslo time.
                "valid_to": datetime.combine(
                    last_day + timedelta(days=1), time(), DISPLAY_TIMEZONE
                ),
            }
        )
        if body.valid_to <= now:
            raise ValueError("the last day has passed")
    except (ValueError, ValidationError):
        return warning(t("Write their name and choose a last day after today.")), False
    try:
        principal = context.principal_of(token)
        if principal.kind != "patient":
            raise ForbiddenError("only the patient invites from their own page")
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            do_access_patient(
                conn,
                principal=principal,
                permission=Permission.MANAGE_PROXIES,
                patient_id=principal.uuid,
                resource="relatives",
                action=Action.CREATE,
                interface=Interface.DASHBOARD,
                now=now,
            )
            invitation = do_invite_relative(
                conn,
                patient_id=principal.uuid,
                display_name=body.display_name,
                email=body.email,
                scope=ProxyScope(
                    see_own_view=True,
                    receive_reminders=body.receive_reminders,
                    answer_questionnaires=body.answer_questionnaires,
                ),
                valid_to=body.valid_to,
                inviter=principal,
                consent_note=None,
                now=now,
            )
    except (NotAuthenticatedError, ForbiddenError, NotVisibleError, psycopg.Error):
        log.info("a relative was not invited from the dashboard", exc_info=True)
        return warning(t("The invitation could not be made. Try again.")), False
    said = t(
        "Give {name} this code: {code}. They accept it on the log-in page. "
        "It works once and is shown only now."
    )
    return done(said.format(name=body.display_name, code=invitation.code)), True


def _clicked(kind: str) -> list[dict]:
    """The buttons of `kind` that were clicked (buttons drawn anew trigger without a click)."""
    return [
        json.loads(prop["prop_id"].rpartition(".")[0])
        for prop in callback_context.triggered
        if prop["value"] and prop["prop_id"].startswith("{") and kind in prop["prop_id"]
    ]


def withdraw_consent(
    context: Context, consent: str, token: str | None, search: str | None
) -> tuple[Component, bool]:
    """The patient's own consent, withdrawn now: what to say, and whether it was withdrawn
    (only then is the page drawn again)."""
    t = translator(language_from_search(search))
    try:
        consent_id = UUID(consent)
        principal = context.principal_of(token)
        if principal.kind != "patient":
            raise ForbiddenError("only the patient withdraws from their own page")
        now = context.clock.now()
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            do_access_patient(
                conn,
                principal=principal,
                permission=Permission.MANAGE_PROXIES,
                patient_id=principal.uuid,
                resource="relatives",
                action=Action.UPDATE,
                interface=Interface.DASHBOARD,
                now=now,
            )
            withdrawn = do_withdraw_consent(
                conn,
                patient_id=principal.uuid,
                consent_id=consent_id,
                withdrawn_by=principal,
                now=now,
            )
            if withdrawn is None:
                raise NotVisibleError
    except (ValueError, NotAuthenticatedError, ForbiddenError, NotVisibleError, psycopg.Error):
        log.info("a consent was not withdrawn from the dashboard", exc_info=True)
        return warning(t("The consent could not be withdrawn. Try again.")), False
    said = t("Consent withdrawn. {name} can no longer see your page.")
    return done(said.format(name=withdrawn.relative_name)), True
