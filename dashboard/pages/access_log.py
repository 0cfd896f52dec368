"""Who has looked at the patient's data, on their own page, as helsenorge.no shows it."""

from __future__ import annotations

from typing import Any

from dash import html
from dash.development.base_component import Component

from core.i18n import Translator
from dashboard.data.own import Look
from dashboard.formatting import NO_VALUE, format_moment
from dashboard.labels import reason_text, role_name


def looks_section(looks: list[Look], *, t: Translator) -> Component:
    """One item per look: when, who, as what, from where and why. A list rather than a table,
    so it reads on a phone. Names come from people, so every one is a text child, never
    markup."""
    if not looks:
        body: Component = html.P(t("Nobody has looked at your data yet."), className="empty")
    else:
        body = html.Ul([_look(look, t=t) for look in looks], className="access-log")
    labelled: dict[str, Any] = {"aria-labelledby": "looked-at-by-heading"}
    return html.Section(
        [html.H2(t("Who has looked at my data"), id="looked-at-by-heading"), body],
        className="card looked-at-by",
        **labelled,
    )


def _look(look: Look, *, t: Translator) -> Component:
    # The reason an emergency access was opened with is the opener's own words: a text
    # child, like every name.
    why: list[Component | str] = [reason_text(look.reason_code, t)]
    if look.emergency_reason is not None:
        why.append(html.Q(look.emergency_reason, className="emergency-reason"))
    details: list[tuple[str, list[Component | str]]] = [
        (t("Who"), [look.actor_name]),
        (t("Role"), [role_name(look.role, t)]),
        (t("Organisation"), [look.organisation_name or NO_VALUE]),
        (t("Why"), why),
    ]
    return html.Li(
        [
            html.P(format_moment(look.at, t), className="when"),
            html.Dl(
                [part for label, text in details for part in (html.Dt(label), html.Dd(text))],
                className="look",
            ),
        ],
        className="look-row",
    )
