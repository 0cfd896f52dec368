"""The worklist's filters: each change becomes the page's address, and the page follows it, so
the refresh, a reload and a shared link keep what the nurse chose."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from uuid import UUID

from dash import Dash, Input, NoUpdate, Output, State, no_update

from care.models import Condition
from dashboard.context import Context
from dashboard.data.worklist import AlertState, Standing, WorklistFilters
from dashboard.links import Links, language_from_search, worklist_filters_from_search
from dashboard.pages.worklist import (
    FILTER_CONDITION,
    FILTER_NAME,
    FILTER_QUICK,
    FILTER_STANDING,
    FILTER_STATE,
    FILTER_UNIT,
)


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Input(FILTER_UNIT, "value"),
        Input(FILTER_CONDITION, "value"),
        Input(FILTER_STANDING, "value"),
        Input(FILTER_STATE, "value"),
        Input(FILTER_QUICK, "value"),
        Input(FILTER_NAME, "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def choose(  # noqa: PLR0917  # Dash passes inputs and states by position
        unit: str | None,
        condition: str | None,
        standing: str | None,
        state: str | None,
        quick: list[str] | None,
        name: str | None,
        search: str | None,
    ) -> str | NoUpdate:
        """The address for the filters chosen; the list starts again from its first page."""
        quick = quick or []
        before = worklist_filters_from_search(search)
        filters = WorklistFilters(
            unit=_parsed_unit(unit),
            condition=Condition(condition) if condition in set(Condition) else None,
            standing=Standing(standing) if standing in set(Standing) else None,
            state=AlertState(state) if state in set(AlertState) else None,
            mine="mine" in quick,
            unacknowledged="unacknowledged" in quick,
            name=(name or "").strip()[:100],
        )
        if replace(filters, shown=before.shown) == before:
            return no_update
        links = Links(context.url_base, language_from_search(search))
        return "?" + links.worklist(filters).partition("?")[2]


def _parsed_unit(unit: str | None) -> UUID | None:
    with suppress(TypeError, ValueError):
        return UUID(unit)
    return None
