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
    invitation: str | None = None,
) -> Component:
    """Password log-in of the built-in issuer; the form posts to /auth/login, which sets the
    session cookie and comes back to the dashboard (here again, with ?failed=1, if refused,
    or ?failed=wait when the log-in throttle holds it back). With `invitation` (see
    dashboard.links.invitation_from_search) the form to accept a relative's invitation."""
    if invitation is not None:
        return _invitation_form(invitation, t=t)
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
            html.P(
                html.A(
                    t("Invited as a relative? Accept the invitation"),
                    href=f"?invitation=new&lang={t.language}",
                )
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
                    html.Label(t("Choose a user name"), htmlFor="username"),
                    dcc.Input(
                        id="username",
                        name="username",
                        type="text",
                        autoComplete="username",
                        required=True,
                        maxLength=64,
                    ),
                    html.Label(t("Choose a password"), htmlFor="password"),
                    dcc.Input(
                        id="password",
                        name="password",
                        type="password",
                        autoComplete="new-password",
                        required=True,
                        maxLength=1024,
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
