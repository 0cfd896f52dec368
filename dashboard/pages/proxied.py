"""A relative's start page: the patients who let them follow their page (care/proxies.py)."""

from __future__ import annotations

from dash import dcc, html
from dash.development.base_component import Component

from care.proxies import ProxiedPatient
from core.i18n import Translator
from dashboard.links import Links


def proxied_page(patients: list[ProxiedPatient], *, t: Translator, links: Links) -> Component:
    """Links to each patient's own page; a relative who follows one patient lands there."""
    body: list[Component] = (
        [html.Ul([html.Li(dcc.Link(p.display_name, href=links.patient(p.id))) for p in patients])]
        if patients
        else [html.P(t("No one has given you access to their page now."), className="empty")]
    )
    return html.Section([html.H1(t("The people you follow")), *body], className="card proxied")
