"""The device registry page's actions: register a device, hand one to a patient."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import psycopg
from dash import ALL, Dash, Input, NoUpdate, Output, State, callback_context, no_update
from dash.development.base_component import Component
from pydantic import ValidationError

from care.access import ForbiddenError, Interface, NotAuthenticatedError, NotVisibleError
from core.i18n import translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context, done, warning
from dashboard.links import language_from_search
from dashboard.pages.devices import (
    HAND_OUT,
    HAND_OUT_PATIENT,
    NEW_ID,
    NEW_KIND,
    NEW_SERIAL,
    REGISTER,
    registered_notice,
)
from devices.schemas import DeviceIn
from devices.service import AssignmentConflictError, DeviceExistsError
from devices.staff import do_hand_out_as, do_register_as

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
    """The registry page's two actions; each redraws the page, which shows what changed."""

    @app.callback(
        Output("action-status", "children", allow_duplicate=True),
        Output("page", "children", allow_duplicate=True),
        Input(REGISTER, "n_clicks"),
        State(NEW_ID, "value"),
        State(NEW_KIND, "value"),
        State(NEW_SERIAL, "value"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def register(  # noqa: PLR0917  # Dash passes inputs and states by position
        clicks: int | None,
        device_id: str | None,
        kind: str | None,
        serial: str | None,
        pathname: str | None,
        search: str | None,
    ) -> tuple[Component | NoUpdate, Component | NoUpdate]:
        if not clicks:
            return no_update, no_update
        token = context.token()

        def act() -> tuple[Component, Component | NoUpdate]:
            t = translator(language_from_search(search))
            try:
                body = DeviceIn(
                    id=(device_id or "").strip(), kind=kind or "", serial=serial or None
                )
                with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                    provisioned = do_register_as(
                        conn,
                        principal=context.principal_of(token),
                        now=context.clock.now(),
                        device=body,
                    )
            except ValidationError:
                return warning(
                    t("Give an id of letters, digits, dots, dashes or underscores.")
                ), no_update
            except DeviceExistsError:
                return warning(t("A device with that id is already registered.")), no_update
            except (NotAuthenticatedError, ForbiddenError, psycopg.Error):
                log.info("no device registered from the dashboard", exc_info=True)
                return warning(t("The device could not be registered.")), no_update
            page, _ = context.render(pathname, search, token, refresh=False)
            return registered_notice(provisioned, t=t), page

        return await asyncio.to_thread(act)

    @app.callback(
        Output("action-status", "children", allow_duplicate=True),
        Output("page", "children", allow_duplicate=True),
        Input({"type": HAND_OUT, "device": ALL}, "n_clicks"),
        State({"type": HAND_OUT_PATIENT, "device": ALL}, "value"),
        State({"type": HAND_OUT_PATIENT, "device": ALL}, "id"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def hand_out(
        clicks: list[int | None],
        chosen: list[str | None],
        pickers: list[dict[str, str]],
        pathname: str | None,
        search: str | None,
    ) -> tuple[Component | NoUpdate, Component | NoUpdate]:
        triggered = callback_context.triggered_id
        if not isinstance(triggered, dict) or not any(clicks):
            return no_update, no_update
        device_id = str(triggered["device"])
        patient = dict(zip((p["device"] for p in pickers), chosen, strict=True)).get(device_id)
        token = context.token()

        def act() -> tuple[Component, Component | NoUpdate]:
            t = translator(language_from_search(search))
            if not patient:
                return warning(t("Choose the patient first.")), no_update
            try:
                with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                    do_hand_out_as(
                        conn,
                        principal=context.principal_of(token),
                        now=context.clock.now(),
                        interface=Interface.DASHBOARD,
                        device_id=device_id,
                        patient_id=UUID(patient),
                    )
            except (
                NotAuthenticatedError,
                ForbiddenError,
                NotVisibleError,
                LookupError,
                AssignmentConflictError,
                ValueError,
                psycopg.Error,
            ):
                log.info("device %s was not handed out", device_id, exc_info=True)
                return warning(t("The device could not be handed out.")), no_update
            page, _ = context.render(pathname, search, token, refresh=False)
            return done(t("{device} now measures for the patient.").format(device=device_id)), page

        return await asyncio.to_thread(act)
