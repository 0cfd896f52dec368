"""The shared-care world, migrated and seeded once, cloned for each test that changes it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from care.national_ids import NationalIds
from core.auth import LocalIssuer, TokenVerifier
from core.clock import SystemClock
from core.migrate import MigrationReport
from heimvakt.app import create_app
from heimvakt.oidc_login import NO_OIDC
from heimvakt.worker import rules
from tests.care.world import World, build_world
from tests.conftest import CloneDatabase, database_url_for, seal_template
from tests.ingest.conftest import TEST_LIMITS
from tests.support import ISSUER_KEY

LOCAL_ISSUER = "http://testserver/auth"
PUBLIC_URL = "http://testserver"
AUDIENCE = "heimvakt"


def local_issuer(pool: ConnectionPool) -> LocalIssuer:
    return LocalIssuer(
        pool,
        issuer=LOCAL_ISSUER,
        audience=AUDIENCE,
        clock=SystemClock(),
        token_lifetime=timedelta(hours=8),
        issuer_key=ISSUER_KEY,
    )


def build_app(pool: ConnectionPool, issuer: LocalIssuer) -> TestClient:
    clock = SystemClock()
    app = create_app(
        pool=pool,
        clock=clock,
        broker_connected=lambda: True,
        after_store=rules(clock),
        limits=TEST_LIMITS,
        verifier=TokenVerifier([], local=issuer),
        public_url=PUBLIC_URL,
        local_issuer=issuer,
        secure_cookie=False,
        # Keys for national ids, so the route that registers one can be tried.
        oidc=replace(NO_OIDC, national_ids=NationalIds.from_installation_key(bytes(32))),
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="session")
def world_template(
    postgres_server_url: str, template_database: tuple[str, MigrationReport]
) -> Iterator[tuple[str, World]]:
    name = f"heimvakt_world_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database[0]}"')
    url = database_url_for(postgres_server_url, name)
    with ConnectionPool(url, min_size=1, max_size=2) as pool:
        issuer = local_issuer(pool)
        issuer.ensure_signing_key()
        with pool.connection() as conn:
            conn.autocommit = True
            world = build_world(conn, issuer=issuer)
    seal_template(postgres_server_url, name)
    yield name, world
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


WorldClient = Callable[[], AbstractContextManager[tuple[TestClient, psycopg.Connection]]]


@pytest.fixture(scope="session")
def world_client(world_template: tuple[str, World], clone_database: CloneDatabase) -> WorldClient:
    """Opens an app on a fresh copy of the world, with a connection to look inside."""

    @contextmanager
    def open_world() -> Iterator[tuple[TestClient, psycopg.Connection]]:
        with (
            clone_database(world_template[0]) as url,
            ConnectionPool(url, min_size=1, max_size=4) as pool,
            psycopg.connect(url, autocommit=True) as conn,
            build_app(pool, local_issuer(pool)) as client,
        ):
            yield client, conn

    return open_world


@pytest.fixture
def world(world_template: tuple[str, World]) -> World:
    return world_template[1]
