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
    invitation: str | None = None,
    refused: str | None = None,
    buttons: Sequence[tuple[str, str]] = (),
    password_log_in: bool = True,
) -> Component:
    """The form posts to /auth/login, which sets the session cookie and comes back to the
    dashboard (here again, with ?failed=1, if refused, or ?failed=wait when the log-in
    throttle holds it back); each button starts a log-in at HelseID or ID-porten, which comes
    back here with ?refused=<why> if it does not succeed. With `invitation` (see
    dashboard.links.invitation_from_search) the form to accept a relative's invitation, where
    the built-in issuer's password log-in is on."""
    if invitation is not None and password_log_in:
        return _invitation_form(invitation, t=t)
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
            *_credentials(t("User name"), t("Password"), autocomplete="current-password"),
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
            # A relative's invitation makes a password log-in of the built-in issuer.
            *(
                [
                    html.P(
                        html.A(
                            t("Invited as a relative? Accept the invitation"),
                            href=f"?invitation=new&lang={t.language}",
                        )
                    )
                ]
                if password_log_in
                else []
            ),
        ],
        className="card login-card",
    )


def _invitation_form(state: str, *, t: Translator) -> Component:
    """A relative accepts a patient's invitation with its code and chooses how to log in; the
    form posts to /auth/invitations/accept, which logs them in or comes back here saying
    what to change."""
    refusals = {
        "invitation": t("The invitation code is not valid: it may be used, withdrawn or ended."),
        "username": t("Choose another user name: a-z, 0-9, dot, dash or underscore."),
        "password": t("Choose a longer password that is harder to guess."),
    }
    notices = (
        [html.P(refusals[state], role="alert", className="notice")] if state in refusals else []
    )
    return html.Section(
        [
            html.H1(t("Accept an invitation")),
            html.P(t("A patient has invited you to follow their page as their relative.")),
            *notices,
            html.Form(
                [
                    html.Label(t("Invitation code"), htmlFor="code"),
                    dcc.Input(id="code", name="code", type="text", required=True, maxLength=64),
                    *_credentials(
                        t("Choose a user name"),
                        t("Choose a password"),
                        autocomplete="new-password",
                    ),
                    html.Button(t("Accept and log in"), type="submit"),
                ],
                action=f"/auth/invitations/accept?lang={t.language}",
                method="POST",
                className="login",
            ),
        ],
        className="card login-card",
    )


def _credentials(user_label: str, password_label: str, *, autocomplete: str) -> list[Component]:
    """The user-name and password fields both log-in forms post."""
    return [
        html.Label(user_label, htmlFor="username"),
        dcc.Input(
            id="username",
            name="username",
            type="text",
            autoComplete="username",
            required=True,
            maxLength=64,
        ),
        html.Label(password_label, htmlFor="password"),
        dcc.Input(
            id="password",
            name="password",
            type="password",
            autoComplete=autocomplete,
            required=True,
            maxLength=1024,
        ),
    ]
