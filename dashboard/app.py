"""The nurses' dashboard: a Dash app served by the platform's FastAPI server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import fastapi
import psycopg
from dash import ALL, Dash, Input, NoUpdate, Output, State, callback_context, dcc, html, no_update
from dash.development.base_component import Component
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from alerts.actions import AlertStateError, do_acknowledge_alert
from care.access import Action, ForbiddenError, Interface, NotAuthenticatedError, NotVisibleError
from core.auth import ANONYMOUS, Principal
from core.clock import Clock
from core.i18n import Translator, translator
from core.links import DASHBOARD_PATH, DEVICES_SEGMENT, FIGURES_SEGMENT
from dashboard.data.patient import load_patient
from dashboard.data.viewing import View
from dashboard.data.worklist import demo_outbox, load_worklist
from dashboard.labels import deviation_name, figure_name
from dashboard.links import (
    LOGIN_SEGMENT,
    PATIENTS_SEGMENT,
    Links,
    Page,
    Route,
    condition_from_search,
    language_from_search,
    login_failed,
    login_throttled,
    period_from_search,
    resolve,
)
from dashboard.middleware import CallbackRequests, ClientSideRoutes
from dashboard.pages.devices import (
    HAND_OUT,
    HAND_OUT_PATIENT,
    NEW_ID,
    NEW_KIND,
    NEW_SERIAL,
    REGISTER,
    devices_page,
    registered_notice,
)
from dashboard.pages.login import login_page
from dashboard.pages.not_found import not_found_page
from dashboard.pages.patient import ACKNOWLEDGE, patient_page
from dashboard.pages.quality import (
    DOWNLOAD,
    DOWNLOAD_DEVIATIONS,
    DOWNLOAD_FIGURES,
    PERIOD_PICKER,
    figures_page,
)
from dashboard.pages.shell import SIGNED_IN, header
from dashboard.pages.worklist import worklist_page
from devices.schemas import DeviceIn
from devices.service import AssignmentConflictError, DeviceExistsError
from devices.staff import do_hand_out_as, do_register_as, load_registry
from quality.deviations import deviations_csv, load_deviations
from quality.figures import Period, figures_csv, load_figures

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
    url_base: str = DASHBOARD_PATH,
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
            content = _content(
                route, view, search, pool=pool, t=t, links=links, with_outbox=demo_outbox
            )
        page = html.Div(
            [
                header(route, principal, now=now, t=t, links=links),
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
    ) -> tuple[Component | NoUpdate, Component | None]:
        """Draw the page the address names, for whoever the session cookie speaks for.

        Opening a page (first load, a link, a new address) is logged; the interval's refresh
        of the same page checks access again and is logged only when no recent row of the same
        view covers it (see `dashboard.pages.View`).
        """
        token = callback_context.cookies.get(session_cookie)
        triggers = callback_context.triggered_prop_ids
        refresh = bool(triggers) and all(prop.startswith("refresh.") for prop in triggers)
        if refresh and resolve(pathname, base=url_base).page in (Page.FIGURES, Page.DEVICES):
            # The figures are of whole past days: a refresh would show the same again. The
            # registry changes by the user's own actions, which redraw it; a refresh would wipe
            # a choice half made.
            return no_update, None
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
    async def acknowledge(
        clicks: list[int | None], search: str | None
    ) -> Component | NoUpdate | None:
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
                do_acknowledge_alert(
                    conn,
                    alert_id=alert_id,
                    actor=principal,
                    interface=Interface.DASHBOARD,
                    now=clock.now(),
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

    _devices_callbacks(
        app,
        pool=pool,
        clock=clock,
        principal_of=principal_of,
        session_cookie=session_cookie,
        render=render,
    )
    _figures_callbacks(
        app,
        pool=pool,
        clock=clock,
        principal_of=principal_of,
        session_cookie=session_cookie,
        url_base=url_base,
    )
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
            with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                rows = load_worklist(conn, view=view)
                if with_outbox:
                    outbox = demo_outbox(conn, rows)
            return worklist_page(rows, now=view.now, t=t, links=links, outbox=outbox)
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
        if route.page is Page.PATIENT and route.patient_id is not None:
            with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                patient_view = load_patient(conn, patient_id=route.patient_id, view=view)
            if patient_view is not None:
                return patient_page(patient_view, now=view.now, t=t, links=links)
    except NotVisibleError:
        pass  # the same answer as for a patient who does not exist
    except ForbiddenError:
        return not_found_page(t("You do not have access to this page."), t=t, links=links)
    missing = t("Patient not found") if route.page is Page.PATIENT else t("Page not found")
    return not_found_page(missing, t=t, links=links)


def _devices_content(view: View, *, pool: ConnectionPool, t: Translator) -> Component:
    with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
        registry = load_registry(
            conn, principal=view.principal, now=view.now, interface=Interface.DASHBOARD
        )
    return devices_page(registry, t=t)


def _devices_callbacks(
    app: Dash,
    *,
    pool: ConnectionPool,
    clock: Clock,
    principal_of: Callable[[str | None], Principal],
    session_cookie: str,
    render: Callable[..., tuple[Component, None]],
) -> None:
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
        token = callback_context.cookies.get(session_cookie)

        def act() -> tuple[Component, Component | NoUpdate]:
            t = translator(language_from_search(search))
            try:
                body = DeviceIn(
                    id=(device_id or "").strip(), kind=kind or "", serial=serial or None
                )
                with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                    provisioned = do_register_as(
                        conn, principal=principal_of(token), now=clock.now(), device=body
                    )
            except ValidationError:
                return _warning(
                    t("Give an id of letters, digits, dots, dashes or underscores.")
                ), no_update
            except DeviceExistsError:
                return _warning(t("A device with that id is already registered.")), no_update
            except (NotAuthenticatedError, ForbiddenError, psycopg.Error):
                log.info("no device registered from the dashboard", exc_info=True)
                return _warning(t("The device could not be registered.")), no_update
            page, _ = render(pathname, search, token, refresh=False)
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
        token = callback_context.cookies.get(session_cookie)

        def act() -> tuple[Component, Component | NoUpdate]:
            t = translator(language_from_search(search))
            if not patient:
                return _warning(t("Choose the patient first.")), no_update
            try:
                with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
                    do_hand_out_as(
                        conn,
                        principal=principal_of(token),
                        now=clock.now(),
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
                return _warning(t("The device could not be handed out.")), no_update
            page, _ = render(pathname, search, token, refresh=False)
            done = html.Div(
                t("{device} now measures for the patient.").format(device=device_id),
                role="status",
                className="status-ok",
            )
            return done, page

        return await asyncio.to_thread(act)


def _warning(text: str) -> Component:
    return html.Div(text, role="status", className="status-warning")


def _figures_callbacks(
    app: Dash,
    *,
    pool: ConnectionPool,
    clock: Clock,
    principal_of: Callable[[str | None], Principal],
    session_cookie: str,
    url_base: str,
) -> None:
    """The figures page's period picker and CSV downloads."""

    @app.callback(
        Output("url", "search"),
        Input(PERIOD_PICKER, "start_date"),
        Input(PERIOD_PICKER, "end_date"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def pick_period(first: str | None, last: str | None, search: str | None) -> str | NoUpdate:
        """Two days picked on the figures page become its address; the page follows."""
        if first is None or last is None:
            return no_update  # one end still open
        try:
            period = Period(date.fromisoformat(first[:10]), date.fromisoformat(last[:10]))
        except ValueError:
            return no_update  # one end still open, or backwards
        links = Links(url_base, language_from_search(search))
        return "?" + links.figures(period, condition_from_search(search)).partition("?")[2]

    @app.callback(
        Output(DOWNLOAD, "data"),
        Input(DOWNLOAD_FIGURES, "n_clicks"),
        Input(DOWNLOAD_DEVIATIONS, "n_clicks"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def download(
        _figures: int | None, _deviations: int | None, search: str | None
    ) -> dict[str, Any] | NoUpdate:
        """The figures or the deviations of the page's period as CSV, through the same check
        and computation as the page, logged as an export."""
        token = callback_context.cookies.get(session_cookie)
        which = callback_context.triggered_id
        return await asyncio.to_thread(
            _download_csv,
            which,
            token,
            search,
            pool=pool,
            clock=clock,
            principal_of=principal_of,
        )


def _download_csv(
    which: Any,
    token: str | None,
    search: str | None,
    *,
    pool: ConnectionPool,
    clock: Clock,
    principal_of: Callable[[str | None], Principal],
) -> dict[str, Any] | NoUpdate:
    """The figures or the deviations of the page's period as CSV, through the same check
    and computation as the page, logged as an export."""
    if which not in _CSV_EXPORTS:
        return no_update
    t = translator(language_from_search(search))
    now = clock.now()
    period = period_from_search(search) or Period.default(now)
    try:
        principal = principal_of(token)
        with pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            load, to_csv, label, stem = _CSV_EXPORTS[which]
            found = load(
                conn,
                principal=principal,
                period=period,
                now=now,
                interface=Interface.DASHBOARD,
                action=Action.EXPORT,
            )
            text = to_csv(found, label=lambda key: label(key, t))
            name = f"{stem}-{period.first}-{period.last}.csv"
    except (NotAuthenticatedError, ForbiddenError, psycopg.Error):
        log.info("no CSV for the figures page", exc_info=True)
        return no_update
    return dict(dcc.send_string(text, name, type="text/csv"))


_CSV_EXPORTS: Final[
    dict[str, tuple[Callable[..., Any], Callable[..., str], Callable[[str, Translator], str], str]]
] = {
    DOWNLOAD_FIGURES: (load_figures, figures_csv, figure_name, "figures"),
    DOWNLOAD_DEVIATIONS: (load_deviations, deviations_csv, deviation_name, "deviations"),
}
"""Per download button: what it loads, how it becomes CSV, the words for its codes, its name."""


def _no_catch_all() -> None:
    """Stands in for Dash's catch-all route, so the server keeps its 404s."""
