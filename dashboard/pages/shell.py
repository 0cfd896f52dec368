"""The frame around every page: the top bar with the languages, who is logged in, and the way
out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from babel.dates import format_skeleton
from dash import dcc, html
from dash.development.base_component import Component

from care.access import ROLES, Permission
from core.auth import Principal
from core.i18n import LANGUAGE_NAMES, LANGUAGES, Translator
from dashboard.formatting import DISPLAY_TIMEZONE, babel_locale
from dashboard.labels import role_name
from dashboard.links import Links, Route

SIGNED_IN: Final = frozenset({"staff", "patient", "relative"})
"""The kinds of principal the dashboard serves; anyone else (a device token too) must log in."""


def header(
    route: Route,
    principal: Principal,
    *,
    now: datetime,
    t: Translator,
    links: Links,
    search: str | None = None,
) -> Component:
    """The top bar; its language links keep what the user chose on the page (`search`)."""
    languages = [
        html.Span(LANGUAGE_NAMES[language], className="current")
        if language == t.language
        else dcc.Link(LANGUAGE_NAMES[language], href=links.in_language(route, language, search))
        for language in LANGUAGES
    ]
    aria: dict[str, Any] = {"aria-label": t("Language")}  # no Python keyword has a hyphen
    updated = format_skeleton("Hms", now, tzinfo=DISPLAY_TIMEZONE, locale=babel_locale(t))
    return html.Header(
        [
            dcc.Link(
                [html.Span("Heimvakt", className="brand"), html.Span(t("Digital home follow-up"))],
                href=links.worklist(),
                className="home",
            ),
            html.Span(t("Updated {time}").format(time=updated), className="updated"),
            *_figures_link(principal, t=t, links=links),
            *_devices_link(principal, t=t, links=links),
            html.Nav(languages, className="languages", **aria),
            *_signed_in(principal, t=t),
        ],
        className="topbar",
    )


def _figures_link(principal: Principal, *, t: Translator, links: Links) -> list[Component]:
    """The way to the figures, for the roles that may see them (the page checks again)."""
    if principal.kind != "staff" or principal.role not in ROLES[Permission.READ_FIGURES]:
        return []
    return [dcc.Link(t("Figures"), href=links.figures(), className="nav-figures")]


def _devices_link(principal: Principal, *, t: Translator, links: Links) -> list[Component]:
    """The way to the device registry, for the roles that keep it (the page checks again)."""
    if principal.kind != "staff" or principal.role not in ROLES[Permission.MANAGE_DEVICES]:
        return []
    return [dcc.Link(t("Devices"), href=links.devices(), className="nav-devices")]


def _signed_in(principal: Principal, *, t: Translator) -> list[Component]:
    """Who is logged in, as what, and the way out (a form: logging out changes state)."""
    if principal.kind not in SIGNED_IN:
        return []
    return [
        html.Span(
            [
                html.Span(principal.name, className="user-name"),
                html.Span(role_name(principal.role, t), className="user-role"),
            ],
            className="user",
        ),
        html.Form(
            html.Button(t("Log out"), type="submit", className="logout"),
            action="/auth/logout",
            method="POST",
            className="logout-form",
        ),
    ]
