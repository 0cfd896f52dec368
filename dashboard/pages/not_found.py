"""The page for an address that shows nothing: no such page, patient, or no access."""

from __future__ import annotations

from dash import dcc, html
from dash.development.base_component import Component

from core.i18n import Translator
from dashboard.links import Links


def not_found_page(message: str, *, t: Translator, links: Links) -> Component:
    return html.Section(
        [
            html.H1(message),
            html.P(dcc.Link(["← ", t("Back to the worklist")], href=links.worklist())),
        ],
        className="card not-found",
    )
