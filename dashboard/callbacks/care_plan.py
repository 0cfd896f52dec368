"""The care plan page's actions: change a limit with a reason, propose a hand-over, answer
one. Each goes through care.staff_work (the one check and the access log), then redraws the
page so the plan, its history and the hand-overs show what changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import UUID

import psycopg
from dash import Dash, Input, NoUpdate, Output, State, no_update
from dash.development.base_component import Component

from care.access import ForbiddenError, Interface, NotAuthenticatedError, NotVisibleError
from care.careplan import InvalidChangeError, ReasonRequiredError, StaleVersionError
from care.handover import HandoverStateError
from care.staff_work import do_change_limits_as, do_decide_handover_as, do_propose_handover_as
from core.i18n import Translator, translator
from core.limits import Limits
from dashboard.context import DATABASE_WAIT_SECONDS, Context, done, warning
from dashboard.formatting import NO_VALUE
from dashboard.labels import measurement_name
from dashboard.links import language_from_search, resolve
from dashboard.pages.care_plan import (
    DECISION_NOTE,
    HANDOVER_ACCEPT,
    HANDOVER_DECLINE,
    HANDOVER_NOTE,
    HANDOVER_PROPOSE,
    HANDOVER_TO,
    LIMIT_BOUNDS,
    LIMIT_CODE,
    LIMIT_REASON,
    LIMIT_SAVE,
    PLAN_VERSION,
)

log = logging.getLogger(__name__)

Outcome = tuple[Component | NoUpdate, Component | NoUpdate]
_REFUSED = (NotAuthenticatedError, ForbiddenError, NotVisibleError, psycopg.Error)


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("action-status", "children", allow_duplicate=True),
        Output("page", "children", allow_duplicate=True),
        Input(LIMIT_SAVE, "n_clicks"),
        State(LIMIT_CODE, "data"),
        *(State(input_id, "value") for input_id, _ in LIMIT_BOUNDS),
        State(LIMIT_REASON, "value"),
        State(PLAN_VERSION, "data"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def save_limit(  # noqa: PLR0917  # Dash passes inputs and states by position
        clicks: int | None,
        code: str | None,
        red_low: float | None,
        low: float | None,
        high: float | None,
        red_high: float | None,
        reason: str | None,
        version: int | None,
        pathname: str | None,
        search: str | None,
    ) -> Outcome:
        if not clicks or code is None or version is None:
            return no_update, no_update
        limits = Limits(code=code, low=low, high=high, red_low=red_low, red_high=red_high)
        return await _act(
            context,
            pathname,
            search,
            lambda conn, t, patient_id: _save_limit(
                conn,
                context=context,
                t=t,
                patient_id=patient_id,
                limits=limits,
                reason=reason or "",
                version=version,
            ),
        )

    @app.callback(
        Output("action-status", "children", allow_duplicate=True),
        Output("page", "children", allow_duplicate=True),
        Input(HANDOVER_PROPOSE, "n_clicks"),
        State(HANDOVER_TO, "data"),
        State(HANDOVER_NOTE, "value"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def propose(
        clicks: int | None,
        unit: str | None,
        note: str | None,
        pathname: str | None,
        search: str | None,
    ) -> Outcome:
        if not clicks:
            return no_update, no_update

        def act(conn: psycopg.Connection, t: Translator, patient_id: UUID) -> Component:
            if not unit:
                return warning(t("Choose the unit to hand over to."))
            try:
                do_propose_handover_as(
                    conn,
                    principal=context.principal_of(context.token()),
                    patient_id=patient_id,
                    to_organisation_id=UUID(unit),
                    note=note or "",
                    now=context.clock.now(),
                    interface=Interface.DASHBOARD,
                )
            except HandoverStateError:
                log.info("no hand-over proposed from the dashboard", exc_info=True)
                if not (note or "").strip():
                    return warning(t("Write a note for the receiving unit."))
                return warning(t("The hand-over could not be proposed."))
            return done(t("Hand-over proposed. Your unit stays responsible until it is accepted."))

        return await _act(context, pathname, search, act)

    @app.callback(
        Output("action-status", "children", allow_duplicate=True),
        Output("page", "children", allow_duplicate=True),
        Input(HANDOVER_ACCEPT, "n_clicks"),
        Input(HANDOVER_DECLINE, "n_clicks"),
        State(DECISION_NOTE, "value"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def decide(
        accepted: int | None,
        declined: int | None,
        note: str | None,
        pathname: str | None,
        search: str | None,
    ) -> Outcome:
        if not (accepted or declined):
            return no_update, no_update
        accept = bool(accepted)

        def act(conn: psycopg.Connection, t: Translator, patient_id: UUID) -> Component:
            pending = conn.execute(
                "SELECT id FROM handovers WHERE patient_id = %s AND state = 'proposed'",
                (patient_id,),
            ).fetchone()
            if pending is None:
                return warning(t("This hand-over has been answered already."))
            try:
                do_decide_handover_as(
                    conn,
                    principal=context.principal_of(context.token()),
                    handover_id=pending[0],
                    accept=accept,
                    note=note or "",
                    now=context.clock.now(),
                    interface=Interface.DASHBOARD,
                )
            except HandoverStateError:
                log.info("no hand-over decided from the dashboard", exc_info=True)
                if not accept and not (note or "").strip():
                    return warning(t("Write why you decline, so the sender can act on it."))
                return warning(t("The hand-over could not be answered."))
            return done(
                t("Hand-over accepted: your unit is responsible from now on.")
                if accept
                else t("Hand-over declined.")
            )

        return await _act(context, pathname, search, act)


async def _act(
    context: Context,
    pathname: str | None,
    search: str | None,
    work: Callable[[psycopg.Connection, Translator, UUID], Component],
) -> Outcome:
    """Run `work` on the page's patient in a worker thread; redraw the page after it."""
    token = context.token()

    def run() -> Outcome:
        t = translator(language_from_search(search))
        patient_id = resolve(pathname, base=context.url_base).patient_id
        if patient_id is None:
            return warning(t("Page not found")), no_update
        try:
            with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                status = work(conn, t, patient_id)
        except _REFUSED:
            log.info("a care plan page action was refused", exc_info=True)
            return warning(t("You do not have access to this page.")), no_update
        page, _ = context.render(pathname, search, token, refresh=False)
        return status, page

    return await asyncio.to_thread(run)


def _save_limit(
    conn: psycopg.Connection,
    *,
    context: Context,
    t: Translator,
    patient_id: UUID,
    limits: Limits,
    reason: str,
    version: int,
) -> Component:
    try:
        plan = do_change_limits_as(
            conn,
            principal=context.principal_of(context.token()),
            patient_id=patient_id,
            expected_version=version,
            limits=limits,
            reason=reason,
            now=context.clock.now(),
            interface=Interface.DASHBOARD,
        )
    except ReasonRequiredError:
        return warning(t("Say why you change the limit: the reason goes into the history."))
    except InvalidChangeError:
        return warning(
            t(
                "Give at least one yellow limit, and limits that rise from left to right: red"
                " below, yellow below, yellow above, red above."
            )
        )
    except StaleVersionError:
        # Nothing was saved: say what the clinician tried, over the plan as it is now.
        return warning(
            t(
                "Someone else changed the care plan after you opened it, so your change was not"
                " saved. The plan below is the current one. Your change was: {measurement}"
                " {limits}, because: {reason}"
            ).format(
                measurement=measurement_name(limits.code, t),
                limits=" / ".join(
                    NO_VALUE if value is None else f"{value:g}"
                    for value in (limits.red_low, limits.low, limits.high, limits.red_high)
                ),
                reason=reason,
            )
        )
    saved = t("Limit saved: the care plan is now version {version}.")
    return done(saved.format(version=plan.version))
