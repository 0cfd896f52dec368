"""The figures page's actions: the period picker and the two CSV downloads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date
from typing import Any, Final

import psycopg
from dash import Dash, Input, NoUpdate, Output, State, callback_context, dcc, no_update

from care.access import Action, ForbiddenError, Interface, NotAuthenticatedError
from core.i18n import Translator, translator
from dashboard.context import DATABASE_WAIT_SECONDS, Context
from dashboard.labels import deviation_name, figure_name
from dashboard.links import Links, condition_from_search, language_from_search, period_from_search
from dashboard.pages.quality import DOWNLOAD, DOWNLOAD_DEVIATIONS, DOWNLOAD_FIGURES, PERIOD_PICKER
from quality.deviations import deviations_csv, load_deviations
from quality.figures import Period, figures_csv, load_figures

log = logging.getLogger(__name__)


def register(app: Dash, context: Context) -> None:
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
        links = Links(context.url_base, language_from_search(search))
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
        token = context.token()
        which = callback_context.triggered_id
        return await asyncio.to_thread(_download_csv, context, which, token, search)


def _download_csv(
    context: Context, which: Any, token: str | None, search: str | None
) -> dict[str, Any] | NoUpdate:
    """The figures or the deviations of the page's period as CSV, through the same check
    and computation as the page, logged as an export."""
    if which not in _CSV_EXPORTS:
        return no_update
    t = translator(language_from_search(search))
    now = context.clock.now()
    period = period_from_search(search) or Period.default(now)
    try:
        principal = context.principal_of(token)
        with context.pool.connection(timeout=DATABASE_WAIT_SECONDS) as conn:
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
