"""What every dashboard callback needs, handed to each page's callbacks when the app is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from dash import NoUpdate, callback_context, html
from dash.development.base_component import Component
from psycopg_pool import ConnectionPool

from core.auth import Principal
from core.clock import Clock

DATABASE_WAIT_SECONDS: Final = 4.0
"""Shorter than the refresh interval: during an outage each refresh gives up before the next
one, instead of piling up threads that wait for a connection."""


@dataclass(frozen=True, slots=True)
class Context:
    """The pool, the one clock, and the one way from the session cookie to the caller.

    `render(pathname, search, token, refresh=...)` draws a whole page as the router does, so an
    action can redraw the page it changed at once, without waiting for the next refresh.
    """

    pool: ConnectionPool
    clock: Clock
    principal_of: Callable[[str | None], Principal]
    session_cookie: str
    url_base: str
    render: Callable[..., tuple[Component | NoUpdate, None]]

    def token(self) -> str | None:
        """The session token of the request this callback answers."""
        return callback_context.cookies.get(self.session_cookie)


def warning(text: str) -> Component:
    """An action's failure, announced to screen readers."""
    return html.Div(text, role="status", className="status-warning")


def done(text: str) -> Component:
    """An action's success, announced to screen readers."""
    return html.Div(text, role="status", className="status-ok")
