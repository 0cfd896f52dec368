"""Acting on an alert from the screen, through the same action and access check as the API."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from dash import ALL, Dash, Input, NoUpdate, Output, State, callback_context, no_update
from dash.development.base_component import Component

from alerts.actions import AlertStateError, do_acknowledge_alert
from care.access import ForbiddenError, Interface, NotAuthenticatedError, NotVisibleError
from core.i18n import translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context, done, warning
from dashboard.links import language_from_search
from dashboard.pages.patient import ACKNOWLEDGE

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("action-status", "children"),
        Input({"type": ACKNOWLEDGE, "alert": ALL}, "n_clicks"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def acknowledge(
        clicks: list[int | None], search: str | None
    ) -> Component | NoUpdate | None:
        triggered = callback_context.triggered_id
        if not isinstance(triggered, dict) or not any(clicks):
            return no_update
        token = context.token()
        return await asyncio.to_thread(
            _acknowledge, context, int(triggered["alert"]), token, search
        )


def _acknowledge(
    context: Context, alert_id: int, token: str | None, search: str | None
) -> Component:
    t = translator(language_from_search(search))
    try:
        principal = context.principal_of(token)
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            do_acknowledge_alert(
                conn,
                alert_id=alert_id,
                actor=principal,
                interface=Interface.DASHBOARD,
                now=context.clock.now(),
            )
    except (
        NotAuthenticatedError,
        ForbiddenError,
        NotVisibleError,
        AlertStateError,
        psycopg.Error,
    ):
        log.info("alert %s was not acknowledged from the dashboard", alert_id, exc_info=True)
        return warning(t("The alert could not be acknowledged."))
    return done(t("Alert acknowledged."))
