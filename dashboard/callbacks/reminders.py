"""The patient chooses how to be reminded of a missing measurement, from their own page:
validated by the API's own model, authorized and logged by care.access, and stored by the one
way the choice is stored (alerts.reminders.do_choose_reminder_channel), as the API does it."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from dash import ALL, Dash, Input, NoUpdate, Output, State, callback_context, no_update
from dash.development.base_component import Component
from pydantic import ValidationError

from alerts.channels import DeliveryError, PermanentDeliveryError, check_target
from alerts.reminders import do_choose_reminder_channel
from alerts.settings_routes import ReminderChannelIn
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
from dashboard.links import language_from_search
from dashboard.pages.own import (
    REMIND_BY,
    REMINDER_ADDRESS,
    REMINDER_CHOICE,
    REMINDER_STATUS,
    reminder_choice,
)

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output(REMINDER_STATUS, "children"),
        Output(REMINDER_CHOICE, "children"),
        Input({"type": REMIND_BY, "channel": ALL}, "n_clicks"),
        State(REMINDER_ADDRESS, "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def remind_by(
        clicks: list[int | None], address: str | None, search: str | None
    ) -> tuple[Component, list[Component] | NoUpdate] | NoUpdate:
        pressed = callback_context.triggered_id
        if not isinstance(pressed, dict) or not any(clicks):
            return no_update
        token = context.token()
        return await asyncio.to_thread(
            save_choice, context, str(pressed["channel"]), address, token, search
        )


def save_choice(
    context: Context, channel: str, address: str | None, token: str | None, search: str | None
) -> tuple[Component, list[Component] | NoUpdate]:
    """Store the caller's own choice and show it chosen; an address a reminder could not
    reach is said, not stored. The address is checked by the rule the channel applies when it
    sends (no local or private hosts)."""
    t = translator(language_from_search(search))
    now = context.clock.now()
    try:
        body = ReminderChannelIn.model_validate(
            {"channel": channel, "address": (address or "").strip() or None}
        )
    except ValidationError:
        return warning(t("That address cannot receive reminders. Please check it.")), no_update
    chosen = None if body.channel == "none" else body.channel
    if chosen is not None:
        if body.address is None:
            return warning(t("Please write the address to send reminders to.")), no_update
        try:
            check_target(chosen, body.address, allow_private_addresses=False)
        except (PermanentDeliveryError, DeliveryError):
            return warning(t("That address cannot receive reminders. Please check it.")), no_update
    try:
        principal = context.principal_of(token)
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            do_access_patient(
                conn,
                principal=principal,
                permission=Permission.CHOOSE_REMINDERS,
                patient_id=principal.uuid,
                resource="reminder_channel",
                action=Action.UPDATE,
                interface=Interface.DASHBOARD,
                now=now,
            )
            do_choose_reminder_channel(
                conn,
                patient_id=principal.uuid,
                channel=chosen,
                address=None if chosen is None else body.address,
                now=now,
            )
    except (NotAuthenticatedError, ForbiddenError, NotVisibleError, psycopg.Error):
        log.info("a reminder choice was not stored from the dashboard", exc_info=True)
        return warning(t("Your choice could not be saved. Please try again.")), no_update
    address = body.address or ""
    choice = reminder_choice(body.channel, address, t=t)
    if chosen is None:
        return done(t("Saved. You will get no reminders.")), choice
    return done(t("Saved. Reminders go to {address}.").format(address=address)), choice
