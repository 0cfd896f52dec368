"""The worklist's name search: what the nurse types becomes the page's address, and the page
follows it, so the refresh, a reload and a shared link keep it. The other filters are links
(dashboard/pages/worklist.py) and need no callback."""

from __future__ import annotations

from dataclasses import replace

from dash import Dash, Input, NoUpdate, Output, State, no_update

from dashboard.context import Context
from dashboard.data.worklist import PAGE_SIZE
from dashboard.links import Links, language_from_search, worklist_filters_from_search
from dashboard.pages.worklist import FILTER_NAME


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input(FILTER_NAME, "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def search_by_name(name: str | None, search: str | None) -> str | NoUpdate:
        """The address for the name typed; the list starts again from its first page."""
        before = worklist_filters_from_search(search)
        wanted = (name or "").strip()[:100]
        if wanted == before.name:
            return no_update
        filters = replace(before, name=wanted, shown=PAGE_SIZE)
        links = Links(context.url_base, language_from_search(search))
        return "?" + links.worklist(filters).partition("?")[2]
