"""The nurses' dashboard: a Dash app served by the platform's FastAPI server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final

import fastapi
import psycopg
from babel.dates import format_skeleton
from dash import Dash, Input, Output, callback_context, dcc, html, no_update
from dash.development.base_component import Component
from psycopg_pool import ConnectionPool
from starlette.types import ASGIApp, Receive, Scope, Send

from care.access import NotAuthenticatedError, NotVisibleError
from core.auth import ANONYMOUS, Principal
from core.clock import Clock
from core.i18n import LANGUAGE_NAMES, LANGUAGES, Translator, translator
from dashboard.formatting import DISPLAY_TIMEZONE, babel_locale
from dashboard.links import (
    LOGIN_SEGMENT,
    PATIENTS_SEGMENT,
    Links,
    Page,
    Route,
    language_from_search,
    resolve,
)
from dashboard.pages import (
    View,
    load_patient,
    load_worklist,
    login_page,
    not_found_page,
    patient_page,
    worklist_page,
)

log = logging.getLogger(__name__)

ASSETS_DIR: Final = Path(__file__).parent / "assets"
REFRESH_MILLISECONDS: Final = 5_000
# Shorter than the refresh interval: during an outage each refresh gives up before the next one,
# instead of piling up threads that wait for a connection.
DATABASE_WAIT_SECONDS: Final = 4.0


def create_dashboard(
    server: fastapi.FastAPI,
    *,
    pool: ConnectionPool,
    clock: Clock,
    principal_of: Callable[[str | None], Principal],
    session_cookie: str,
    url_base: str = "/app/",
) -> Dash:
    """Mount the dashboard on `server` under `url_base`; it reads through `pool` when shown.

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
            html.Div(id="page"),
        ]
    )
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
        except NotAuthenticatedError:
            principal = ANONYMOUS
        if principal.kind not in ("staff", "patient"):
            failed = "failed=1" in (search or "")
            content = login_page(t=t, failed=failed)
        else:
            view = View(principal=principal, now=now, refresh=refresh)
            content = _content(route, view, pool=pool, t=t, links=links)
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
        # The database is read in a worker thread, so the event loop goes on serving other requests.
        token = callback_context.cookies.get(session_cookie)
        refresh = callback_context.triggered_id == "refresh"
        try:
            return await asyncio.to_thread(render, pathname, search, token, refresh=refresh)
        except psycopg.OperationalError:
            log.warning("the dashboard could not read the database", exc_info=True)
            t = translator(language_from_search(search))
            warning = t("The data could not be loaded. Trying again in a few seconds.")
            return no_update, html.Div(warning, role="status", className="status-warning")

    return app


def _content(
    route: Route, view: View, *, pool: ConnectionPool, t: Translator, links: Links
) -> Component:
    if route.page is Page.WORKLIST and view.principal.kind == "patient":
        route = Route(Page.PATIENT, view.principal.uuid)
    if route.page in (Page.WORKLIST, Page.LOGIN):
        with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            rows = load_worklist(conn, view=view)
        return worklist_page(rows, now=view.now, t=t, links=links)
    if route.page is Page.PATIENT and route.patient_id is not None:
        with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            try:
                patient_view = load_patient(conn, patient_id=route.patient_id, view=view)
            except NotVisibleError:
                patient_view = None
        if patient_view is not None:
            return patient_page(patient_view, now=view.now, t=t, links=links)
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
    if principal.kind not in ("staff", "patient"):
        return []
    return [
        html.Span(principal.name, className="user"),
        html.Form(
            html.Button(t("Log out"), type="submit", className="logout"),
            action="/auth/logout",
            method="POST",
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
