"""The patient's own access log on their page, as helsenorge.no shows it."""

from __future__ import annotations

from dash import html
from dash.development.base_component import Component

from care.access import AccessLogEntry
from core.i18n import Translator
from dashboard.formatting import NO_VALUE, format_moment
from dashboard.labels import reason_text, role_name


def looked_at_by_section(entries: list[AccessLogEntry], *, t: Translator) -> Component:
    """When, who, as what, from where and why. Names come from people, so every one is a text
    child, never markup."""
    if not entries:
        body: Component = html.P(t("Nobody has looked at your data yet."), className="empty")
    else:
        header = html.Tr(
            [
                html.Th(t("When"), scope="col"),
                html.Th(t("Who"), scope="col"),
                html.Th(t("Role"), scope="col"),
                html.Th(t("Organisation"), scope="col"),
                html.Th(t("Why"), scope="col"),
            ]
        )
        rows = [
            html.Tr(
                [
                    html.Td(format_moment(entry.at, t), className="when"),
                    html.Td(entry.actor_name),
                    html.Td(role_name(entry.role, t)),
                    html.Td(entry.organisation_name or NO_VALUE),
                    html.Td(
                        # The reason an emergency access was opened with is the opener's own
                        # words: a text child, like every name.
                        [reason_text(entry.reason_code, t)]
                        if entry.emergency_reason is None
                        else [
                            reason_text(entry.reason_code, t),
                            html.Q(entry.emergency_reason, className="emergency-reason"),
                        ]
                    ),
                ]
            )
            for entry in entries
        ]
        body = html.Table([html.Thead(header), html.Tbody(rows)], className="access-log")
    return html.Section(
        [html.H2(t("Who has looked at my data")), body], className="card looked-at-by"
    )
