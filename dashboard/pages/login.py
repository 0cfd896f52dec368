"""The log-in page: HelseID and ID-porten where configured, the built-in issuer's form in demo
and embedded mode."""

from __future__ import annotations

from collections.abc import Sequence

from dash import dcc, html
from dash.development.base_component import Component

from core.i18n import Translator


def _refusal_text(refused: str, t: Translator) -> str:
    """Why a HelseID or ID-porten log-in was refused (core.oidc.Refusal), as the person
    reads it: what happened and what to do."""
    texts = {
        "unknown": t(
            "You are not registered here. Ask the unit that follows you up to register you,"
            " then log in again."
        ),
        "acr": t(
            "This service needs a higher level of security. Log in again with BankID,"
            " Buypass or Commfides."
        ),
        "state": t("This log-in has already been used or has expired. Please log in again."),
        "nonce": t("The log-in could not be confirmed. Please log in again."),
        "invalid": t("The log-in could not be confirmed. Please log in again."),
    }
    return texts.get(refused, t("The log-in did not succeed. Please try again."))


def login_page(
    *,
    t: Translator,
    failed: bool,
    ended: bool = False,
    throttled: bool = False,
    language_chosen: bool = False,
    refused: str | None = None,
    buttons: Sequence[tuple[str, str]] = (),
    password_log_in: bool = True,
) -> Component:
    """The form posts to /auth/login, which sets the session cookie and comes back to the
    dashboard (here again, with ?failed=1, if refused, or ?failed=wait when the log-in
    throttle holds it back); each button starts a log-in at HelseID or ID-porten, which comes
    back here with ?refused=<why> if it does not succeed."""
    notices = []
    if refused is not None:
        notices.append(html.P(_refusal_text(refused, t), role="alert", className="notice"))
    elif failed:
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
    chosen = f"?lang={t.language}" if language_chosen else ""
    # Plain links: the log-in leaves the dashboard for the issuer's own pages.
    issuers = [
        html.A(
            t("Log in with {issuer}").format(issuer=label),
            href=f"{address}{chosen}",
            className="button log-in-with",
        )
        for address, label in buttons
    ]
    form = html.Form(
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
        action=f"/auth/login{chosen}",
        method="POST",
        className="login",
    )
    return html.Section(
        [
            html.H1(t("Log in")),
            *notices,
            *([html.Div(issuers, className="log-in-issuers")] if issuers else []),
            *([form] if password_log_in or not issuers else []),
        ],
        className="card login-card",
    )
