"""The composed app over a real (fresh) database, as `heimvakt up` builds it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.auth import TokenVerifier
from core.clock import SystemClock
from heimvakt.app import create_app
from heimvakt.worker import rules
from tests.ingest.conftest import TEST_LIMITS

PUBLIC_URL = "http://testserver"
MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(pool: ConnectionPool) -> MakeClient:
    """A client of the app; keyword arguments go to `create_app` (pool, body limit, …)."""

    def make(*, broker_connected: bool = True, **options: Any) -> TestClient:
        clock = SystemClock()
        public_url = options.pop("public_url", PUBLIC_URL)
        app = create_app(
            pool=options.pop("pool", pool),
            clock=clock,
            broker_connected=lambda: broker_connected,
            after_store=rules(clock),
            limits=TEST_LIMITS,
            verifier=TokenVerifier([], local=None),
            public_url=public_url,
            **options,
        )
        return TestClient(app, raise_server_exceptions=False)

    return make
