"""The demo outbox below the worklist in demo mode."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from dash import html
from dash.development.base_component import Component

from alerts.outbox import SentNotification
from core.i18n import Translator
from dashboard.formatting import NO_VALUE, format_moment, format_relative
from dashboard.labels import notification_channel_name, notification_state_name


def demo_outbox_section(
    outbox: list[SentNotification], *, names: dict[UUID, str], now: datetime, t: Translator
) -> Component:
    """What the platform would have sent by e-mail or webhook: in demo mode nothing leaves the
    machine, and this is where the notifications can be seen instead."""
    intro = html.P(
        t(
            "Demo mode: without a configured e-mail server or webhook secret, notifications "
            "stay on this machine. These are the ones the demo staff would have received."
        ),
        className="summary",
    )
    heading = html.Div([html.H2(t("Demo outbox")), intro])
    if not outbox:
        return html.Section(
            [heading, html.P(t("No notifications yet."), className="empty")],
            className="card demo-outbox",
        )
    header = html.Thead(
        html.Tr(
            [
                html.Th(t("Sent"), scope="col"),
                html.Th(t("To"), scope="col"),
                html.Th(t("Patient"), scope="col"),
                html.Th(t("Message"), scope="col"),
                html.Th(t("State"), scope="col"),
            ]
        )
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(
                        html.Span(
                            format_relative(n.created_at, now, t),
                            title=format_moment(n.created_at, t),
                        ),
                        className="when",
                    ),
                    html.Td(f"{notification_channel_name(n.channel, t)}: {n.address}"),
                    html.Td(names.get(n.patient_id, NO_VALUE)),
                    html.Td(n.title),
                    html.Td(notification_state_name(n.state, t)),
                ]
            )
            for n in outbox
        ]
    )
    return html.Section(
        [heading, html.Table([header, body], className="worklist")],
        className="card demo-outbox",
    )
