"""dashboard/app.py replaces a private hook of Dash's FastAPI backend (`_setup_catchall`), as
Dash offers no public way to leave out its catch-all route. These fail loudly, naming the
cause, the day a Dash upgrade renames or stops using that hook; the behaviour itself (unknown
addresses stay 404) is tested in test_worklist.py."""

from __future__ import annotations

import inspect

import fastapi
from dash.backends import _fastapi
from psycopg_pool import ConnectionPool

from core.auth import ANONYMOUS
from core.clock import ManualClock
from dashboard import create_dashboard
from tests.dashboard import NOW

CHANGED = (
    "Dash changed how its FastAPI backend adds the catch-all route; dashboard/app.py must "
    "keep it out another way, or unknown API and FHIR addresses answer 200 with the dashboard"
)


def test_dash_adds_its_catch_all_at_start_up_through_the_hook_the_dashboard_replaces() -> None:
    assert callable(getattr(_fastapi.FastAPIDashServer, "_setup_catchall", None)), CHANGED
    startup = inspect.getsource(_fastapi.DashMiddleware.__call__)
    assert "backend._setup_catchall()" in startup, CHANGED
    adds_route = inspect.getsource(_fastapi.FastAPIDashServer._setup_catchall)
    assert "{path:path}" in adds_route, CHANGED


def test_the_dashboard_replaces_the_hook_on_its_own_backend(pool: ConnectionPool) -> None:
    app = create_dashboard(
        fastapi.FastAPI(),
        pool=pool,
        clock=ManualClock(NOW),
        principal_of=lambda token: ANONYMOUS,
        session_cookie="session",
    )
    backend = app.backend
    assert isinstance(backend, _fastapi.FastAPIDashServer)
    hook = backend._setup_catchall
    assert getattr(hook, "__func__", hook) is not _fastapi.FastAPIDashServer._setup_catchall
    assert hook() is None
    assert not [r for r in app.server.routes if "{path:path}" in getattr(r, "path", "")]
