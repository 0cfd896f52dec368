"""Every step on an alert from the screen (acknowledge, assign, note, snooze, resolve), from the
worklist row or the patient page's card, through the API's own functions in alerts.actions: the
same access check, access-log row and alert events. After a step the page is drawn again at
once, so the list shows the new state without waiting for the refresh."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, cast
from uuid import UUID

import psycopg
from dash import ALL, Dash, Input, NoUpdate, Output, State, callback_context, no_update
from dash.development.base_component import Component

from alerts.actions import (
    AlertStateError,
    Outcome,
    do_acknowledge_alert,
    do_assign_alert,
    do_note_alert,
    do_resolve_alert,
    do_snooze_alert,
)
from care.access import ForbiddenError, Interface, NotAuthenticatedError, NotVisibleError
from core.auth import Principal
from core.i18n import Translator, translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context, done, warning
from dashboard.links import language_from_search
from dashboard.pages.alert_steps import (
    ASSIGNEE,
    FIELDS,
    NOTE,
    OUTCOME,
    RESOLUTION_NOTE,
    SNOOZE_HOURS,
    SNOOZE_REASON,
    STEP,
    outcome_names,
)

log = logging.getLogger(__name__)


class _Refused(Exception):
    """The form is not complete: said to the nurse as it is, nothing is written."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One click: which step, on which alert, with the fields of that alert's form."""

    name: str
    alert_id: int
    fields: dict[str, Any]


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("action-status", "children"),
        Output("page", "children", allow_duplicate=True),
        Input({"type": STEP, "step": ALL, "alert": ALL}, "n_clicks"),
        *(State({"type": field, "alert": ALL}, "value") for field in FIELDS),
        *(State({"type": field, "alert": ALL}, "id") for field in FIELDS),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def take_step(*arguments: Any) -> tuple[Component | NoUpdate, Component | NoUpdate]:
        """Dash passes the clicks, each field's values and ids, and the address by position."""
        # Buttons drawn anew trigger the callback too (without a click), and Dash may merge
        # such a trigger with a real click: the step is the one button with a click.
        clicks = [
            json.loads(prop["prop_id"].rpartition(".")[0])
            for prop in callback_context.triggered
            if prop["value"] and prop["prop_id"].startswith("{")
        ]
        if len(clicks) != 1:
            return no_update, no_update
        [clicked] = clicks
        count = len(FIELDS)
        values, ids = arguments[1 : 1 + count], arguments[1 + count : 1 + 2 * count]
        pathname, search = arguments[-2], arguments[-1]
        alert_id = int(clicked["alert"])
        fields = {
            kind: dict(zip((i["alert"] for i in kind_ids), kind_values, strict=True)).get(alert_id)
            for kind, kind_values, kind_ids in zip(FIELDS, values, ids, strict=True)
        }
        step = _Step(name=str(clicked["step"]), alert_id=alert_id, fields=fields)
        token = context.token()
        return await asyncio.to_thread(_take, context, step, token, pathname, search)


def _take(
    context: Context, step: _Step, token: str | None, pathname: str | None, search: str | None
) -> tuple[Component, Component | NoUpdate]:
    t = translator(language_from_search(search))
    if step.name not in _STEPS:
        return warning(t("This step is not known.")), no_update
    act, said = _STEPS[step.name]
    try:
        principal = context.principal_of(token)
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            act(conn, step, principal, t, context)
    except _Refused as refused:
        return warning(str(refused)), no_update
    except AlertStateError:
        log.info("alert %s: %s refused by its state", step.alert_id, step.name, exc_info=True)
        return warning(t("The alert has changed meanwhile; the page now shows it.")), _redraw(
            context, pathname, search, token
        )
    except (NotAuthenticatedError, ForbiddenError, NotVisibleError):
        log.info("alert %s: %s refused", step.alert_id, step.name, exc_info=True)
        return warning(t("You may not act on this alert.")), no_update
    except psycopg.Error:
        log.warning("alert %s: %s failed", step.alert_id, step.name, exc_info=True)
        return warning(t("The step could not be saved. Try again.")), no_update
    return done(said(t)), _redraw(context, pathname, search, token)


def _redraw(
    context: Context, pathname: str | None, search: str | None, token: str | None
) -> Component | NoUpdate:
    try:
        page, _ = context.render(pathname, search, token, refresh=False)
    except psycopg.Error:
        return no_update  # the step is saved; the next refresh draws it
    return page


def _text(step: _Step, field: str) -> str:
    return str(step.fields.get(field) or "").strip()


def _acknowledge(
    conn: psycopg.Connection, step: _Step, principal: Principal, t: Translator, context: Context
) -> None:
    do_acknowledge_alert(
        conn,
        alert_id=step.alert_id,
        actor=principal,
        interface=Interface.DASHBOARD,
        now=context.clock.now(),
    )


def _assign(to_me: bool) -> Callable[..., None]:
    def assign(
        conn: psycopg.Connection,
        step: _Step,
        principal: Principal,
        t: Translator,
        context: Context,
    ) -> None:
        chosen = principal.uuid if to_me else _text(step, ASSIGNEE)
        try:
            to = UUID(str(chosen))
        except ValueError:
            raise _Refused(t("Choose whom to assign the alert to.")) from None
        do_assign_alert(
            conn,
            alert_id=step.alert_id,
            to=to,
            actor=principal,
            interface=Interface.DASHBOARD,
            now=context.clock.now(),
        )

    return assign


def _note(
    conn: psycopg.Connection, step: _Step, principal: Principal, t: Translator, context: Context
) -> None:
    note = _text(step, NOTE)
    if not note:
        raise _Refused(t("Write the note first."))
    do_note_alert(
        conn,
        alert_id=step.alert_id,
        note=note,
        actor=principal,
        interface=Interface.DASHBOARD,
        now=context.clock.now(),
    )


def _snooze(
    conn: psycopg.Connection, step: _Step, principal: Principal, t: Translator, context: Context
) -> None:
    reason = _text(step, SNOOZE_REASON)
    if not reason:
        raise _Refused(t("A snooze needs a reason."))
    try:
        hours = float(step.fields.get(SNOOZE_HOURS) or "")
    except ValueError:
        raise _Refused(t("Choose how long to snooze.")) from None
    do_snooze_alert(
        conn,
        alert_id=step.alert_id,
        reason=reason,
        duration=timedelta(hours=hours),
        actor=principal,
        interface=Interface.DASHBOARD,
        now=context.clock.now(),
    )


def _resolve(
    conn: psycopg.Connection, step: _Step, principal: Principal, t: Translator, context: Context
) -> None:
    outcome = _text(step, OUTCOME)
    note = _text(step, RESOLUTION_NOTE)
    if outcome not in outcome_names(t):
        raise _Refused(t("Choose the outcome before resolving."))
    if not note:
        raise _Refused(t("Write what was done before resolving."))
    do_resolve_alert(
        conn,
        alert_id=step.alert_id,
        outcome=cast(Outcome, outcome),
        note=note,
        actor=principal,
        interface=Interface.DASHBOARD,
        now=context.clock.now(),
    )


_STEPS: Final[dict[str, tuple[Callable[..., None], Callable[[Translator], str]]]] = {
    "acknowledge": (_acknowledge, lambda t: t("Alert acknowledged.")),
    "assign-me": (_assign(to_me=True), lambda t: t("The alert is assigned to you.")),
    "assign": (_assign(to_me=False), lambda t: t("The alert is assigned.")),
    "note": (_note, lambda t: t("Note saved.")),
    "snooze": (_snooze, lambda t: t("Alert snoozed.")),
    "resolve": (_resolve, lambda t: t("Alert resolved.")),
}
"""Per step: what it does, and what the screen says when it is done."""
