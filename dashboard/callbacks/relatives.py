"""The patient withdraws a relative's consent from their own page: through the same access
check, access-log row and `care.proxies.do_withdraw_consent` as the API, with immediate
effect; the page is drawn again at once."""

from __future__ import annotations

import asyncio
import json
import logging
from uuid import UUID

import psycopg
from dash import ALL, Dash, Input, NoUpdate, Output, State, callback_context, no_update
from dash.development.base_component import Component

from care.access import (
    Action,
    ForbiddenError,
    Interface,
    NotAuthenticatedError,
    NotVisibleError,
    Permission,
    do_access_patient,
)
from care.proxies import do_withdraw_consent
from core.i18n import translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context, done, warning
from dashboard.links import language_from_search
from dashboard.pages.relatives import WITHDRAW

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
        # Buttons drawn anew trigger the callback too, without a click: only a click counts.
        clicked = [
            json.loads(prop["prop_id"].rpartition(".")[0])
            for prop in callback_context.triggered
            if prop["value"] and prop["prop_id"].startswith("{")
        ]
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
