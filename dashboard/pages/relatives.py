"""The patient's relatives on their own page: whom they let follow it, with what scope and
until when, and a button to withdraw each consent at once (care/proxies.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from dash import html
from dash.development.base_component import Component

from care.proxies import ProxyConsent
from core.clock import DISPLAY_TIMEZONE
from core.i18n import Translator
from dashboard.formatting import format_date

WITHDRAW: Final = "relative-withdraw"
"""A consent's withdraw button ({"type", "consent"})."""


def relatives_section(consents: list[ProxyConsent], *, now: datetime, t: Translator) -> Component:
    if consents:
        body: Component = html.Ul(
            [_consent(c, now=now, t=t) for c in consents], className="relatives"
        )
    else:
        body = html.P(t("You have not let any relative follow your page."), className="empty")
    labelled: dict[str, Any] = {"aria-labelledby": "my-relatives-heading"}
    return html.Section(
        [html.H2(t("My relatives"), id="my-relatives-heading"), body],
        className="card my-relatives",
        **labelled,
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
