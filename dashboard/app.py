"""The nurses' dashboard: a Dash app served by the platform's FastAPI server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import fastapi
import psycopg
from babel.dates import format_skeleton
from dash import ALL, Dash, Input, Output, State, callback_context, dcc, html, no_update
from dash.development.base_component import Component
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.lifecycle import AlertStateError
from alerts.outbox import recent_notifications
from care.access import ForbiddenError, NotAuthenticatedError, NotVisibleError
from core.auth import ANONYMOUS, Principal
from core.clock import Clock
from core.fields import check_value
from core.i18n import LANGUAGE_NAMES, LANGUAGES, Translator, translator
from core.problems import problem
from dashboard.formatting import DISPLAY_TIMEZONE, babel_locale
from dashboard.links import (
    LOGIN_SEGMENT,
    PATIENTS_SEGMENT,
    Links,
    Page,
    Route,
    language_from_search,
    login_failed,
    login_throttled,
    resolve,
)
from dashboard.pages import (
    ACKNOWLEDGE,
    View,
    do_acknowledge_from_dashboard,
    load_patient,
    load_worklist,
    login_page,
    not_found_page,
    patient_page,
    role_name,
    worklist_page,
)

log = logging.getLogger(__name__)

ASSETS_DIR: Final = Path(__file__).parent / "assets"
REFRESH_MILLISECONDS: Final = 5_000
# Shorter than the refresh interval: during an outage each refresh gives up before the next one,
# instead of piling up threads that wait for a connection.
DATABASE_WAIT_SECONDS: Final = 4.0
SIGNED_IN: Final = frozenset({"staff", "patient"})
"""The kinds of principal the dashboard serves; anyone else (a device token too) must log in."""


def create_dashboard(
    server: fastapi.FastAPI,
    *,
    pool: ConnectionPool,
    clock: Clock,
    principal_of: Callable[[str | None], Principal],
    session_cookie: str,
    url_base: str = "/app/",
    demo_outbox: bool = False,
) -> Dash:
    """Mount the dashboard on `server` under `url_base`; it reads through `pool` when shown.

    With `demo_outbox` (demo mode) the worklist also shows the notifications the demo would
    have sent.

    `principal_of` turns the session cookie's token into the caller (the same path as the
    API's bearer tokens); every page goes through care.access's one check.
    """
    app = Dash(
        __name__,
        server=server,
        url_base_pathname=url_base,
        title="Heimvakt",
        suppress_callback_exceptions=True,
        assets_folder=str(ASSETS_DIR),
        # The page refreshes every few seconds; a flickering tab title would too.
        update_title=None,
    )
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            dcc.Interval(id="refresh", interval=REFRESH_MILLISECONDS),
            html.Div(id="status"),
            html.Div(id="action-status"),
            html.Div(id="page"),
        ]
    )
    server.add_middleware(CallbackRequests, dash=app)
    server.add_middleware(
        ClientSideRoutes,
        prefixes=(f"{url_base}{PATIENTS_SEGMENT}", f"{url_base}{LOGIN_SEGMENT}"),
        index=url_base,
    )
    # At server start Dash's FastAPI backend would add a catch-all GET route that answers every
    # unknown address on the whole server with the dashboard (200, HTML): a typo in an API or
    # FHIR address would stop being a 404. ClientSideRoutes serves the dashboard's deep links.
    app.backend._setup_catchall = _no_catch_all  # type: ignore[method-assign]

    def render(
        pathname: str | None, search: str | None, token: str | None, *, refresh: bool
    ) -> tuple[Component, None]:
        language = language_from_search(search)
        t = translator(language)
        links = Links(url_base, language)
        route = resolve(pathname, base=url_base)
        now = clock.now()
        try:
            principal = principal_of(token)
            ended = False
        except NotAuthenticatedError:
            # An expired, revoked or forged token is no one: the log-in form, no data.
            principal, ended = ANONYMOUS, True
        if principal.kind not in SIGNED_IN:
            content = login_page(
                t=t,
                failed=login_failed(search),
                ended=ended,
                throttled=login_throttled(search),
            )
        else:
            view = View(principal=principal, now=now, refresh=refresh)
            content = _content(route, view, pool=pool, t=t, links=links, demo_outbox=demo_outbox)
        page = html.Div(
            [
                _header(route, principal, now=now, t=t, links=links),
                html.Main(content),
            ],
            lang=language,
            className="shell",
        )
        return page, None

    @app.callback(
        Output("page", "children"),
        Output("status", "children"),
        Input("url", "pathname"),
        Input("url", "search"),
        Input("refresh", "n_intervals"),
    )
    async def route_and_refresh(
        pathname: str | None, search: str | None, _refreshes: int | None
    ) -> tuple[Component, Component | None]:
        """Draw the page the address names, for whoever the session cookie speaks for.

        Opening a page (first load, a link, a new address) is logged; the interval's refresh
        of the same page checks access again and is logged only when no recent row of the same
        view covers it (see `dashboard.pages.View`).
        """
        token = callback_context.cookies.get(session_cookie)
        triggers = callback_context.triggered_prop_ids
        refresh = bool(triggers) and all(prop.startswith("refresh.") for prop in triggers)
        try:
            # The database is read in a worker thread, so the event loop goes on serving others.
            return await asyncio.to_thread(render, pathname, search, token, refresh=refresh)
        except psycopg.Error:
            # Unreachable, or the access-log row could not be written: fail closed, no new data.
            log.warning("the dashboard could not read the database", exc_info=True)
            t = translator(language_from_search(search))
            warning = t("The data could not be loaded. Trying again in a few seconds.")
            return no_update, html.Div(warning, role="status", className="status-warning")

    @app.callback(
        Output("action-status", "children"),
        Input({"type": ACKNOWLEDGE, "alert": ALL}, "n_clicks"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def acknowledge(clicks: list[int | None], search: str | None) -> Component | None:
        triggered = callback_context.triggered_id
        if not isinstance(triggered, dict) or not any(clicks):
            return no_update
        token = callback_context.cookies.get(session_cookie)
        return await asyncio.to_thread(acknowledge_one, int(triggered["alert"]), token, search)

    def acknowledge_one(alert_id: int, token: str | None, search: str | None) -> Component:
        t = translator(language_from_search(search))
        try:
            principal = principal_of(token)
            with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                do_acknowledge_from_dashboard(
                    conn, alert_id=alert_id, principal=principal, now=clock.now()
                )
        except (
            NotAuthenticatedError,
            ForbiddenError,
            NotVisibleError,
            AlertStateError,
            psycopg.Error,
        ):
            log.info("alert %s was not acknowledged from the dashboard", alert_id, exc_info=True)
            return html.Div(
                t("The alert could not be acknowledged."),
                role="status",
                className="status-warning",
            )
        return html.Div(t("Alert acknowledged."), role="status", className="status-ok")

    return app


def _content(
    route: Route,
    view: View,
    *,
    pool: ConnectionPool,
    t: Translator,
    links: Links,
    demo_outbox: bool = False,
) -> Component:
    """The page's main part, read in one transaction with its access-log row."""
    if view.principal.kind == "patient" and route.page in (Page.WORKLIST, Page.LOGIN):
        # A patient's start page is their own page.
        route = Route(Page.PATIENT, view.principal.uuid)
    try:
        if route.page in (Page.WORKLIST, Page.LOGIN):
            outbox = None
            with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                rows = load_worklist(conn, view=view)
                if demo_outbox:
                    # Only alerts on the patients the worklist was allowed to show.
                    shown = [row.patient.id for row in rows]
                    outbox = recent_notifications(conn, patient_ids=shown)
            return worklist_page(rows, now=view.now, t=t, links=links, outbox=outbox)
        if route.page is Page.PATIENT and route.patient_id is not None:
            with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                patient_view = load_patient(conn, patient_id=route.patient_id, view=view)
            if patient_view is not None:
                return patient_page(patient_view, now=view.now, t=t, links=links)
    except NotVisibleError:
        pass  # the same answer as for a patient who does not exist
    except ForbiddenError:
        return not_found_page(t("You do not have access to this page."), t=t, links=links)
    if route.page is Page.PATIENT:
        return not_found_page(t("Patient not found"), t=t, links=links)
    return not_found_page(t("Page not found"), t=t, links=links)


def _header(
    route: Route, principal: Principal, *, now: datetime, t: Translator, links: Links
) -> Component:
    languages = [
        html.Span(LANGUAGE_NAMES[language], className="current")
        if language == t.language
        else dcc.Link(LANGUAGE_NAMES[language], href=links.in_language(route, language))
        for language in LANGUAGES
    ]
    updated = format_skeleton("Hms", now, tzinfo=DISPLAY_TIMEZONE, locale=babel_locale(t))
    return html.Header(
        [
            dcc.Link(
                [html.Span("Heimvakt", className="brand"), html.Span(t("Digital home follow-up"))],
                href=links.worklist(),
                className="home",
            ),
            html.Span(t("Updated {time}").format(time=updated), className="updated"),
            html.Nav(languages, className="languages", **{"aria-label": t("Language")}),
            *_signed_in(principal, t=t),
        ],
        className="topbar",
    )


def _signed_in(principal: Principal, *, t: Translator) -> list[Component]:
    """Who is logged in, as what, and the way out (a form: logging out changes state)."""
    if principal.kind not in SIGNED_IN:
        return []
    return [
        html.Span(
            [
                html.Span(principal.name, className="user-name"),
                html.Span(role_name(principal.role, t), className="user-role"),
            ],
            className="user",
        ),
        html.Form(
            html.Button(t("Log out"), type="submit", className="logout"),
            action="/auth/logout",
            method="POST",
            className="logout-form",
        ),
    ]


def _no_catch_all() -> None:
    """Stands in for Dash's catch-all route, so the server keeps its 404s."""


class ClientSideRoutes:
    """Serves Dash's index page for a deep link to a page the browser draws, such as a patient.

    Dash's FastAPI backend answers only its base path; reloading ``/app/patients/<id>`` would
    otherwise be a 404. The path is rewritten before Dash sees it, the browser keeps the address.
    """

    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...], index: str) -> None:
        self.app = app
        self.prefixes = prefixes
        self.index = index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in {"GET", "HEAD"}
            and scope["path"].startswith(self.prefixes)
        ):
            scope = {**scope, "path": self.index, "raw_path": self.index.encode()}
        await self.app(scope, receive, send)


class _Property(BaseModel):
    """One input, state or output of a callback request, as Dash's renderer sends it."""

    id: str | dict[str, str | int | float | bool]
    property: str
    value: Any = None


_Properties = list[_Property | list[_Property]]


class _CallbackRequest(BaseModel):
    """The body of ``_dash-update-component`` (extra members are Dash's own business)."""

    output: str
    outputs: _Property | _Properties
    inputs: _Properties
    state: _Properties = Field(default_factory=list)
    changedPropIds: list[str] = Field(default_factory=list)  # Dash's name


class CallbackRequests:
    """Refuses a callback request that names no callback of this app or does not fit it, with
    422 problem+json; Dash itself would fail somewhere inside with a 500.

    The body is read here (BodyLimit bounds it), checked, and handed on unchanged. Every text
    in it is checked as API input is (`core.fields.check_value`).
    """

    def __init__(self, app: ASGIApp, *, dash: Dash) -> None:
        self.app = app
        self.dash = dash
        self.path = f"{dash.config.routes_pathname_prefix}_dash-update-component"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = self._refusal(body)
        if refusal is not None:
            await problem(422, refusal)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _refusal(self, body: bytes) -> str | None:
        """Why the body is no callback request of this app; None if it is one."""
        try:
            request = _CallbackRequest.model_validate(check_value(json.loads(body)))
        except (ValueError, ValidationError):
            return "not a callback request"
        callback = self.dash.callback_map.get(request.output)
        if callback is None:
            return "no such callback"
        if len(request.inputs) != len(callback["inputs"]) or len(request.state) != len(
            callback["state"]
        ):
            return "the request does not fit the callback"
        return None
