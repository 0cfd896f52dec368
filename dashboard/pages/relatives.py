"""The patient's relatives on their own page: whom they let follow it, with what scope and
until when, and a button to withdraw each consent at once (care/proxies.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from dash import dcc, html
from dash.development.base_component import Component

from care.proxies import ProxyConsent
from core.clock import DISPLAY_TIMEZONE
from core.i18n import Translator
from dashboard.formatting import format_date
from dashboard.pages.patient import DAY_FIELD

WITHDRAW: Final = "relative-withdraw"
"""A consent's withdraw button ({"type", "consent"})."""
INVITE: Final = "relative-invite"
"""The invite buttons ({"type", "answer"}): "no" to let the relative see the page, "yes" to
let them answer the questionnaires too."""
NAME: Final = "relative-name"
EMAIL: Final = "relative-email"
UNTIL: Final = "relative-until"


def relatives_section(consents: list[ProxyConsent], *, now: datetime, t: Translator) -> Component:
    if consents:
        body: Component = html.Ul(
            [_consent(c, now=now, t=t) for c in consents], className="relatives"
        )
    else:
        body = html.P(t("You have not let any relative follow your page."), className="empty")
    labelled: dict[str, Any] = {"aria-labelledby": "my-relatives-heading"}
    return html.Section(
        [html.H2(t("My relatives"), id="my-relatives-heading"), body, _invite_form(t=t)],
        className="card my-relatives",
        **labelled,
    )


def _invite_form(*, t: Translator) -> Component:
    """Plain inputs and two buttons (Dash's checklists and date picker fail axe-core): the
    button pressed says whether the relative may answer for the patient; an e-mail address,
    if given, is where the patient's reminders reach them too."""
    return html.Div(
        [
            html.H3(t("Invite a relative")),
            html.P(
                t(
                    "You give them a code, and they choose their own log-in. They see your "
                    "page until the day you choose; you can withdraw it at any time."
                )
            ),
            html.Label(t("Their name"), htmlFor=NAME),
            dcc.Input(id=NAME, type="text", maxLength=200, autoComplete="off"),
            html.Label(t("Their e-mail, to get your reminders too (optional)"), htmlFor=EMAIL),
            dcc.Input(id=EMAIL, type="email", maxLength=254, autoComplete="off"),
            html.Label(t("Until (the last day)"), htmlFor=UNTIL),
            dcc.Input(id=UNTIL, type="text", **DAY_FIELD),
            html.Div(
                [
                    html.Button(t("Invite"), id={"type": INVITE, "answer": "no"}, type="button"),
                    html.Button(
                        t("Invite, and let them answer the questions for me"),
                        id={"type": INVITE, "answer": "yes"},
                        type="button",
                    ),
                ],
                className="invite-buttons",
            ),
        ],
        className="invite-relative",
    )


def _consent(consent: ProxyConsent, *, now: datetime, t: Translator) -> Component:
    scope = [
        text
        for allowed, text in (
            (consent.see_own_view, t("may see your page")),
            (consent.receive_reminders, t("gets your reminders")),
            (consent.answer_questionnaires, t("may answer your questions for you")),
        )
        if allowed
    ]
    ends = format_date(consent.valid_to.astimezone(DISPLAY_TIMEZONE).date(), t)
    if consent.withdrawn_at is not None:
        state = t("withdrawn")
    elif consent.valid_to <= now:
        state = t("ended")
    elif consent.accepted_at is None:
        state = t("until {date}, waiting for them to accept").format(date=ends)
    else:
        state = t("until {date}").format(date=ends)
    parts: list[Component] = [
        html.P(consent.relative_name, className="relative-name"),
        html.P(", ".join(scope)),
        html.P(state, className="relative-state"),
    ]
    if consent.withdrawn_at is None and consent.valid_to > now:
        parts.append(
            html.Button(
                t("Withdraw consent"),
                id={"type": WITHDRAW, "consent": str(consent.id)},
                type="button",
                className="withdraw",
            )
        )
    return html.Li(parts, className="relative")
