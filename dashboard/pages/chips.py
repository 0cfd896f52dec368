"""A choice drawn as a row of links: one click chooses, the address keeps the choice, and a
keyboard and a screen reader use it as any link. Dash 4.4's dropdowns, radio items and
checklists fail axe-core's serious rules (a focusable element hidden from screen readers,
interactive controls nested in a listbox), so the pages choose with these instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dcc, html
from dash.development.base_component import Component

from core.i18n import Translator


def chips(label: str, options: Sequence[tuple[str, str, bool]], *, t: Translator) -> Component:
    """`options`: (text, address, chosen). The chosen one is marked in words as well as by
    look, never by colour alone."""
    group: dict[str, Any] = {"role": "group", "aria-label": label}
    return html.Div(
        [
            html.Span(label, className="filter-label"),
            html.Ul(
                [
                    html.Li(
                        dcc.Link(
                            [text, *([html.Span(t(" (chosen)"), className="sr-only")]
                                     if chosen else [])],
                            href=href,
                            className="chip chip-on" if chosen else "chip",
                        )
                    )
                    for text, href, chosen in options
                ],
                className="chips",
            ),
        ],
        className="filter",
        **group,
    )  # fmt: skip
