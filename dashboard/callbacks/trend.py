"""The patient page's trend actions: a picked range becomes the address, and what the charts
show comes as a table or a CSV file, each through the access check and logged (the CSV as
an export, like the figures page's)."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from datetime import date
from typing import Any

import psycopg
from dash import Dash, Input, NoUpdate, Output, State, dcc, no_update
from dash.development.base_component import Component

from care.access import Action, ForbiddenError, NotAuthenticatedError, NotVisibleError
from core.i18n import translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context
from dashboard.data.patient import load_patient_trend
from dashboard.figures import trend_rows
from dashboard.links import Links, language_from_search, resolve
from dashboard.pages.patient import (
    DOWNLOAD_TREND,
    RANGE_FROM,
    RANGE_SHOW,
    RANGE_TO,
    SHOW_TABLE,
    TREND_DOWNLOAD,
    TREND_TABLE,
    trend_table,
)
from dashboard.ranges import LONGEST_CUSTOM, TrendRange, trend_range_from_search

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
    """The range picker, the table view and the CSV download of the patient page's trend."""

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input(RANGE_SHOW, "n_clicks"),
        State(RANGE_FROM, "value"),
        State(RANGE_TO, "value"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def pick_range(
        clicks: int | None,
        first: str | None,
        last: str | None,
        pathname: str | None,
        search: str | None,
    ) -> str | NoUpdate:
        """Two days given become the page's address; the page follows."""
        route = resolve(pathname, base=context.url_base)
        if not clicks or first is None or last is None or route.patient_id is None:
            return no_update
        try:
            picked = TrendRange(None, date.fromisoformat(first[:10]), date.fromisoformat(last[:10]))
        except ValueError:
            return no_update
        if picked.first is None or picked.last is None or picked.last < picked.first:
            return no_update
        if picked.last - picked.first >= LONGEST_CUSTOM:
            return no_update
        links = Links(context.url_base, language_from_search(search))
        return "?" + links.patient(route.patient_id, picked).partition("?")[2]

    @app.callback(
        Output(TREND_TABLE, "children"),
        Input(SHOW_TABLE, "n_clicks"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def show_table(
        _clicks: int | None, pathname: str | None, search: str | None
    ) -> Component | NoUpdate:
        token = context.token()
        shown = await asyncio.to_thread(_rows, context, token, pathname, search, Action.READ)
        if shown is None:
            return no_update
        return trend_table(*shown, t=translator(language_from_search(search)))

    @app.callback(
        Output(TREND_DOWNLOAD, "data"),
        Input(DOWNLOAD_TREND, "n_clicks"),
        State("url", "pathname"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    async def download(
        _clicks: int | None, pathname: str | None, search: str | None
    ) -> dict[str, Any] | NoUpdate:
        token = context.token()
        shown = await asyncio.to_thread(_rows, context, token, pathname, search, Action.EXPORT)
        if shown is None:
            return no_update
        header, rows = shown
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
        name = f"trend-{context.clock.now().date()}.csv"
        return dict(dcc.send_string(out.getvalue(), name, type="text/csv"))


def _rows(
    context: Context, token: str | None, pathname: str | None, search: str | None, action: Action
) -> tuple[list[str], list[list[str]]] | None:
    """The rows the trend of the page's patient and range shows, after the access check that
    logs `action`; None when the caller may not see them."""
    route = resolve(pathname, base=context.url_base)
    if route.patient_id is None:
        return None
    t = translator(language_from_search(search))
    try:
        principal = context.principal_of(token)
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
            trend = load_patient_trend(
                conn,
                principal=principal,
                patient_id=route.patient_id,
                trend_range=trend_range_from_search(search),
                now=context.clock.now(),
                action=action,
            )
    except (NotAuthenticatedError, NotVisibleError, ForbiddenError, psycopg.Error):
        log.info("no trend table for the patient page", exc_info=True)
        return None
    return trend_rows(trend, t)
