"""The nurses' dashboard: a Dash app served by the platform's FastAPI server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import fastapi
import psycopg
from babel.dates import format_skeleton
from dash import Dash, Input, NoUpdate, Output, State, callback_context, dcc, html, no_update
from dash.development.base_component import Component
from psycopg_pool import ConnectionPool

from care.access import ForbiddenError, Interface, NotAuthenticatedError, NotVisibleError
from care.staff_work import load_care_plan_record
from core.auth import ANONYMOUS, Principal
from core.clock import Clock
from core.i18n import DEFAULT_LANGUAGE, Translator, translator
from core.links import DASHBOARD_PATH, DEVICES_SEGMENT, FIGURES_SEGMENT
from dashboard.callbacks import alerts as alert_callbacks
from dashboard.callbacks import care_plan as care_plan_callbacks
from dashboard.callbacks import devices as device_callbacks
from dashboard.callbacks import figures as figure_callbacks
from dashboard.callbacks import questionnaire as questionnaire_callbacks
from dashboard.callbacks import relatives as relative_callbacks
from dashboard.callbacks import reminders as reminder_callbacks
from dashboard.callbacks import trend as trend_callbacks
from dashboard.callbacks import worklist as worklist_callbacks
from dashboard.context import DATABASE_WAIT_SECONDS, Context
from dashboard.data.own import load_own, load_proxied
from dashboard.data.patient import load_patient
from dashboard.data.viewing import View
from dashboard.data.worklist import demo_outbox, load_worklist
from dashboard.formatting import DISPLAY_TIMEZONE, babel_locale
from dashboard.links import (
    LOGIN_SEGMENT,
    PATIENTS_SEGMENT,
    Links,
    Page,
    Route,
    care_plan_choice_from_search,
    condition_from_search,
    handled_from_search,
    invitation_from_search,
    language_chosen,
    language_from_search,
    login_failed,
    login_refused,
    login_throttled,
    period_from_search,
    resolve,
    worklist_filters_from_search,
)
from dashboard.middleware import CallbackRequests, ClientSideRoutes
from dashboard.pages.care_plan import care_plan_page
from dashboard.pages.devices import (
    devices_page,
)
from dashboard.pages.login import login_page
from dashboard.pages.not_found import not_found_page
from dashboard.pages.own import own_page
from dashboard.pages.patient import patient_page
from dashboard.pages.proxied import proxied_page
from dashboard.pages.quality import (
    figures_page,
)
from dashboard.pages.shell import SIGNED_IN, header
from dashboard.pages.worklist import worklist_page
from dashboard.ranges import trend_range_from_search
from devices.staff import load_registry
from quality.deviations import load_deviations
from quality.figures import Period, load_figures

log = logging.getLogger(__name__)

_NOT_REFRESHED: Final = (Page.FIGURES, Page.DEVICES, Page.CARE_PLAN)

ASSETS_DIR: Final = Path(__file__).parent / "assets"
REFRESH_MILLISECONDS: Final = 5_000
SHOWN_AT: Final = "shown-at"
"""A store holding when the data on screen was read, for the notice when a refresh fails."""


def create_dashboard(
    server: fastapi.FastAPI,
    *,
    pool: ConnectionPool,
    clock: Clock,
    principal_of: Callable[[str | None], Principal],
    session_cookie: str,
    url_base: str = DASHBOARD_PATH,
    demo_outbox: bool = False,
    log_in_buttons: Sequence[tuple[str, str]] = (),
    password_log_in: bool = True,
) -> Dash:
    """Mount the dashboard on `server` under `url_base`; it reads through `pool` when shown.

    With `demo_outbox` (demo mode) the worklist also shows the notifications the demo would
    have sent. The log-in page offers `log_in_buttons` ((address, label) of each HelseID or
    ID-porten log-in) and, with `password_log_in`, the built-in issuer's form.

    `principal_of` turns the session cookie's token into the caller (the same path as the
    API's bearer tokens); every page goes through care.access's one check.
    """
    app = Dash(
        __name__,
        # Dash runs on FastAPI since 4.2, but its annotation still names only Flask's factory.
        server=server,  # type: ignore[arg-type]
        url_base_pathname=url_base,
        title="Heimvakt",
        suppress_callback_exceptions=True,
        assets_folder=str(ASSETS_DIR),
        # The page refreshes every few seconds; a flickering tab title would too. The renderer
        # leaves the title alone for any empty value (None, as Dash documents it, or "").
        update_title="",
    )
    app.layout = html.Div(
        [
            # A callback that changes the address (a filter, a period) redraws the page itself.
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Interval(id="refresh", interval=REFRESH_MILLISECONDS),
            dcc.Store(id=SHOWN_AT),
            html.Div(id="status"),
            html.Div(id="action-status"),
            html.Div(id="page"),
        ]
    )
    # The page's language is set on its frame (`lang` on the shell); the document itself
    # declares the default, so no text is ever of no language (WCAG 3.1.1).
    app.index_string = app.index_string.replace("<html>", f'<html lang="{DEFAULT_LANGUAGE}">', 1)
    server.add_middleware(CallbackRequests, dash=app)
    server.add_middleware(
        ClientSideRoutes,
        prefixes=(
            f"{url_base}{PATIENTS_SEGMENT}",
            f"{url_base}{LOGIN_SEGMENT}",
            f"{url_base}{FIGURES_SEGMENT}",
            f"{url_base}{DEVICES_SEGMENT}",
        ),
        index=url_base,
    )
    # At server start Dash's FastAPI backend would add a catch-all GET route that answers every
    # unknown address on the whole server with the dashboard (200, HTML): a typo in an API or
    # FHIR address would stop being a 404. ClientSideRoutes serves the dashboard's deep links.
    # Dash (4.4) offers no public way to leave the catch-all out, so its private hook is
    # replaced; tests/dashboard/test_dash_catch_all.py fails as soon as Dash changes that hook.
    # Only Dash's FastAPI backend has the hook: the backend's declared type does not.
    app.backend._setup_catchall = _no_catch_all  # type: ignore[attr-defined]

    def render(
        pathname: str | None, search: str | None, token: str | None, *, refresh: bool
    ) -> tuple[Component | NoUpdate, None]:
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
        if refresh and principal.kind in ("patient", "relative"):
            # The patient's own view does not redraw itself every few seconds: it would wipe
            # answers half given. It is drawn when opened and when the patient (or their
            # relative) acts.
            return no_update, None
        if principal.kind not in SIGNED_IN:
            content = login_page(
                t=t,
                failed=login_failed(search),
                refused=login_refused(search),
                buttons=log_in_buttons,
                password_log_in=password_log_in,
                ended=ended,
                throttled=login_throttled(search),
                language_chosen=language_chosen(search),
                invitation=invitation_from_search(search),
            )
        else:
            view = View(principal=principal, now=now, refresh=refresh)
            if principal.kind == "relative" and route.page in (Page.WORKLIST, Page.LOGIN):
                content = _relative_start(view, search, pool=pool, t=t, links=links)
            else:
                content = _content(
                    route, view, search, pool=pool, t=t, links=links, with_outbox=demo_outbox
                )
        page = html.Div(
            [
                header(route, principal, now=now, t=t, links=links, search=search),
                html.Main(content),
            ],
            lang=language,
            className="shell",
        )
        return page, None

    @app.callback(
        Output("page", "children"),
        Output("status", "children"),
        Output(SHOWN_AT, "data"),
        Input("url", "pathname"),
        Input("url", "search"),
        Input("refresh", "n_intervals"),
        State(SHOWN_AT, "data"),
    )
    async def route_and_refresh(
        pathname: str | None, search: str | None, _refreshes: int | None, shown_at: str | None
    ) -> tuple[Component | NoUpdate, Component | None, str | NoUpdate]:
        """Draw the page the address names, for whoever the session cookie speaks for.

        Opening a page (first load, a link, a new address) is logged; the interval's refresh
        of the same page checks access again and is logged only when no recent row of the same
        view covers it (see `dashboard.pages.View`).
        """
        token = callback_context.cookies.get(session_cookie)
        triggers = callback_context.triggered_prop_ids
        refresh = bool(triggers) and all(prop.startswith("refresh.") for prop in triggers)
        if refresh and (
            resolve(pathname, base=url_base).page in _NOT_REFRESHED
            or handled_from_search(search) is not None
        ):
            # The figures are of whole past days: a refresh would show the same again. The
            # registry, the care plan and an alert's open forms change by the users' own
            # actions, which redraw them; a refresh would redraw a form under the hand that is
            # filling it in, and could take the button away between press and release.
            return no_update, None, no_update
        try:
            # The database is read in a worker thread, so the event loop goes on serving others.
            page, status = await asyncio.to_thread(render, pathname, search, token, refresh=refresh)
        except psycopg.Error:
            # Unreachable, or the access-log row could not be written: fail closed, no new data.
            log.warning("the dashboard could not read the database", exc_info=True)
            return no_update, _stale_notice(shown_at, search), no_update
        return page, status, clock.now().isoformat()

    context = Context(
        pool=pool,
        clock=clock,
        principal_of=principal_of,
        session_cookie=session_cookie,
        url_base=url_base,
        render=render,
    )
    for page_callbacks in (
        alert_callbacks,
        care_plan_callbacks,
        device_callbacks,
        figure_callbacks,
        worklist_callbacks,
        questionnaire_callbacks,
        relative_callbacks,
        reminder_callbacks,
        trend_callbacks,
    ):
        page_callbacks.register(app, context)
    return app


def _content(
    route: Route,
    view: View,
    search: str | None,
    *,
    pool: ConnectionPool,
    t: Translator,
    links: Links,
    with_outbox: bool = False,
) -> Component:
    """The page's main part, read in one transaction with its access-log row."""
    if view.principal.kind == "patient" and route.page in (Page.WORKLIST, Page.LOGIN):
        # A patient's start page is their own page.
        route = Route(Page.PATIENT, view.principal.uuid)
    try:
        if route.page in (Page.WORKLIST, Page.LOGIN):
            outbox = None
            filters = worklist_filters_from_search(search)
            with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                worklist = load_worklist(conn, view=view, filters=filters)
                if with_outbox:
                    outbox = demo_outbox(conn, worklist.rows)
            return worklist_page(
                worklist,
                filters,
                viewer=view.principal.uuid,
                now=view.now,
                t=t,
                links=links,
                handling=handled_from_search(search),
                outbox=outbox,
            )
        if route.page is Page.FIGURES:
            period = period_from_search(search) or Period.default(view.now)
            with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                found = load_figures(
                    conn,
                    principal=view.principal,
                    period=period,
                    now=view.now,
                    interface=Interface.DASHBOARD,
                )
                deviations = load_deviations(
                    conn,
                    principal=view.principal,
                    period=period,
                    now=view.now,
                    interface=Interface.DASHBOARD,
                )
            return figures_page(
                found,
                deviations,
                condition=condition_from_search(search),
                now=view.now,
                t=t,
                links=links,
            )
        if route.page is Page.DEVICES:
            return _devices_content(view, pool=pool, t=t)
        shown = _patient_content(route, view, search, pool=pool, t=t, links=links)
        if shown is not None:
            return shown
    except NotVisibleError:
        pass  # the same answer as for a patient who does not exist
    except ForbiddenError:
        return not_found_page(t("You do not have access to this page."), t=t, links=links)
    missing = (
        t("Patient not found")
        if route.page in (Page.PATIENT, Page.CARE_PLAN)
        else t("Page not found")
    )
    return not_found_page(missing, t=t, links=links)


def _relative_start(
    view: View, search: str | None, *, pool: ConnectionPool, t: Translator, links: Links
) -> Component:
    """A relative's start page: the page of the one patient who lets them follow it, or the
    list of those who do."""
    with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
        proxied = load_proxied(conn, view=view)
    if len(proxied) != 1:
        return proxied_page(proxied, t=t, links=links)
    return _content(Route(Page.PATIENT, proxied[0].id), view, search, pool=pool, t=t, links=links)


def _stale_notice(shown_at: str | None, search: str | None) -> Component:
    """The page on screen stays, and says from when its data is: a nurse must not take an old
    list for the current one."""
    t = translator(language_from_search(search))
    if shown_at is None:
        text = t("The data could not be loaded. Trying again in a few seconds.")
    else:
        moment = datetime.fromisoformat(shown_at)
        text = t("Data from {time}; could not refresh. Trying again in a few seconds.").format(
            time=format_skeleton("Hm", moment, tzinfo=DISPLAY_TIMEZONE, locale=babel_locale(t))
        )
    return html.Div(text, role="status", className="status-warning")


def _patient_content(
    route: Route,
    view: View,
    search: str | None,
    *,
    pool: ConnectionPool,
    t: Translator,
    links: Links,
) -> Component | None:
    """A patient's page (its trend over the range the address names) or their care plan
    page; None for a patient not found. A patient sees any patient page as their own view,
    through the same access check: someone else's page is refused like one that does not
    exist. So does a relative, for the patients whose consent lets them see it."""
    if route.patient_id is None:
        return None
    with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
        if route.page is Page.CARE_PLAN:
            record = load_care_plan_record(
                conn,
                principal=view.principal,
                patient_id=route.patient_id,
                now=view.now,
                interface=Interface.DASHBOARD,
            )
            if record is None:
                return None
            choice = care_plan_choice_from_search(search)
            return care_plan_page(record, t=t, links=links, choice=choice)
        if route.page is Page.PATIENT and view.principal.kind in ("patient", "relative"):
            own_view = load_own(conn, patient_id=route.patient_id, view=view)
            return None if own_view is None else own_page(own_view, now=view.now, t=t)
        if route.page is Page.PATIENT:
            patient_view = load_patient(
                conn,
                patient_id=route.patient_id,
                view=view,
                trend_range=trend_range_from_search(search),
            )
            if patient_view is not None:
                return patient_page(
                    patient_view,
                    now=view.now,
                    t=t,
                    links=links,
                    handling=handled_from_search(search),
                )
    return None


def _devices_content(view: View, *, pool: ConnectionPool, t: Translator) -> Component:
    with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
        registry = load_registry(
            conn, principal=view.principal, now=view.now, interface=Interface.DASHBOARD
        )
    return devices_page(registry, t=t)


def _no_catch_all() -> None:
    """Stands in for Dash's catch-all route, so the server keeps its 404s."""


def routing_request(
    pathname: str,
    search: str = "",
    *,
    trigger: str = "url.pathname",
    shown_at: str | None = None,
) -> dict:
    """The body the browser posts to `route_and_refresh` when the address changes or the
    refresh interval fires; `shown_at` is when the data on screen was read (the store the
    page keeps it in). For the tests, benchmarks and tools that ask for a page as a browser
    does: it lives beside the callback, so the two change together."""
    return {
        "output": "..page.children...status.children...shown-at.data..",
        "outputs": [
            {"id": "page", "property": "children"},
            {"id": "status", "property": "children"},
            {"id": "shown-at", "property": "data"},
        ],
        "inputs": [
            {"id": "url", "property": "pathname", "value": pathname},
            {"id": "url", "property": "search", "value": search},
            {"id": "refresh", "property": "n_intervals", "value": 1},
        ],
        "changedPropIds": [trigger],
        "state": [{"id": "shown-at", "property": "data", "value": shown_at}],
    }
