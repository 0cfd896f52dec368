"""The log-in form of the built-in issuer."""

from __future__ import annotations

from dash import dcc, html
from dash.development.base_component import Component

from core.i18n import Translator


def login_page(
    *,
    t: Translator,
    failed: bool,
    ended: bool = False,
    throttled: bool = False,
    language_chosen: bool = False,
) -> Component:
    """Password log-in of the built-in issuer; the form posts to /auth/login, which sets the
    session cookie and comes back to the dashboard (here again, with ?failed=1, if refused,
    or ?failed=wait when the log-in throttle holds it back)."""
    notices = []
    if failed:
        notices.append(html.P(t("Wrong user name or password"), role="alert", className="notice"))
    elif throttled:
        notices.append(
            html.P(
                t("Too many log-in attempts. Wait a few minutes and try again."),
                role="alert",
                className="notice",
            )
        )
    elif ended:
        notices.append(
            html.P(t("Your session has ended. Please log in again."), className="notice")
        )
    return html.Section(
        [
            html.H1(t("Log in")),
            *notices,
            html.Form(
                [
                    html.Label(t("User name"), htmlFor="username"),
                    dcc.Input(
                        id="username",
                        name="username",
                        type="text",
                        autoComplete="username",
                        required=True,
                        maxLength=64,
                    ),
                    html.Label(t("Password"), htmlFor="password"),
                    dcc.Input(
                        id="password",
                        name="password",
                        type="password",
                        autoComplete="current-password",
                        required=True,
                        maxLength=1024,
                    ),
                    html.Button(t("Log in"), type="submit"),
                ],
                # A language the user chose here rides along, so the dashboard after log-in
                # speaks it too; otherwise the dashboard speaks the user's own (a patient's).
                action=f"/auth/login?lang={t.language}" if language_chosen else "/auth/login",
                method="POST",
                className="login",
            ),
        ],
        className="card login-card",
    )
