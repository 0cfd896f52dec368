"""Real PostgreSQL and a real MQTT broker for every test; never mocks.

The machine's services are used when HEIMVAKT_TEST_DATABASE_URL / HEIMVAKT_TEST_MQTT_URL are
set (CI sets them); otherwise an embedded PostgreSQL and amqtt broker start for the session.
The schema is migrated once into a template database (one per pytest-xdist worker), and each
test gets its own clone. A run that leaves a process it started behind fails.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from core.migrate import MigrationReport, migrate
from heimvakt.embedded import EmbeddedBroker, EmbeddedPostgres

# Every process a test starts inherits this variable (a database server that daemonizes, a
# broker, a platform), so the run can find what it started even after it was re-parented. The
# name avoids the HEIMVAKT_ prefix, which some tests strip from their children's environment.
RUN_MARK = "PYTEST_HEIMVAKT_RUN"
LEAK_GRACE_SECONDS = 5.0


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        os.environ[RUN_MARK] = uuid.uuid4().hex


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, start the slow tests first, spread over the workers.

    A slow test left for the end of a run is its tail: the other workers sit idle while it
    runs. Work stealing (`--dist worksteal`) hands worker i the i-th contiguous slice of this
    order and later moves tests from the end of the longest queue, so each slice starts with
    its share of the slow tests, the quick ones keep their order behind them, and it is the
    quick ones that are stolen. Under `--dist load` the slow tests simply come first.
    """
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    if workers < 2:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    quick = [item for item in items if not item.get_closest_marker("slow")]
    if config.getoption("dist", "no") != "worksteal":
        items[:] = slow + quick
        return
    slices: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for index, item in enumerate(slow):
        slices[index % workers].append(item)
    remaining = len(items)
    for number, part in enumerate(slices):
        # The slice sizes worksteal cuts at the start: what is left, shared by who is left.
        size = remaining // (workers - number)
        remaining -= size
        while len(part) < size and quick:
            part.append(quick.pop(0))
    items[:] = [item for part in slices for item in part] + quick


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    """After everything else has finished (xdist's workers included), fail the run for any
    process it started that is still alive, and stop it."""
    yield
    if hasattr(session.config, "workerinput"):
        return
    leftovers = _processes_started_by_this_run()
    _, alive = psutil.wait_procs(leftovers, timeout=LEAK_GRACE_SECONDS)
    if not alive:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for process in alive:
        with contextlib.suppress(psutil.Error):
            line = f"left running by the tests: pid {process.pid}: {' '.join(process.cmdline())}"
            if reporter is not None:
                reporter.write_line(line, red=True)
            process.kill()
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _processes_started_by_this_run() -> list[psutil.Process]:
    mark = os.environ[RUN_MARK]
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get(RUN_MARK) == mark and process.status() != "zombie":
                found.append(process)
    return found


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL of the server tests run on (its maintenance database)."""
    url = os.environ.get("HEIMVAKT_TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded") / "data")
    yield server.url()
    server.stop()


def database_url_for(server_url: str, name: str) -> str:
    return make_conninfo(server_url, dbname=name)


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(server_url, autocommit=True)


def seal_template(server_url: str, name: str) -> None:
    """Make database `name` a template nobody is connected to. Nobody may hold a session on a
    template while it is cloned, not even TimescaleDB's background scheduler, which visits
    every database that allows connections."""
    with _admin(server_url) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> Iterator[tuple[str, MigrationReport]]:
    """A database migrated once per session; tests clone it instead of migrating again."""
    name = f"heimvakt_template_{os.getpid()}"
    with _admin(postgres_server_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    report = migrate(database_url_for(postgres_server_url, name))
    seal_template(postgres_server_url, name)
    yield name, report
    with _admin(postgres_server_url) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


DROPS_AT_ONCE = 4
"""Each DROP DATABASE waits for an immediate checkpoint, and PostgreSQL lets every drop that is
waiting share the next one. One drop at a time paid a checkpoint per test database: on a busy
server the drops fell minutes behind the tests, and the session's end waited for them. Four
per pytest-xdist worker keep the connections they hold well under max_connections."""


@pytest.fixture(scope="session")
def dropper(postgres_server_url: str) -> Iterator[ThreadPoolExecutor]:
    """Drops finished tests' databases in the background, several at once (DROPS_AT_ONCE).

    It depends on the server so that it finishes its drops before the server goes away.
    """
    with ThreadPoolExecutor(
        max_workers=DROPS_AT_ONCE, thread_name_prefix="drop-database"
    ) as executor:
        yield executor


def _drop(server_url: str, name: str) -> None:
    with _admin(server_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


CloneDatabase = Callable[..., AbstractContextManager[str]]
"""`clone_database(template=None)`: a context giving the URL of a fresh copy of `template`
(the migrated template by default), dropped in the background when the context ends."""


@pytest.fixture(scope="session")
def clone_database(
    postgres_server_url: str,
    template_database: tuple[str, MigrationReport],
    dropper: ThreadPoolExecutor,
) -> CloneDatabase:
    """Every test database is made and dropped here. A drop waits for a checkpoint, which on
    a busy server took over a minute: the test never waits for it (see DROPS_AT_ONCE)."""

    @contextlib.contextmanager
    def clone(template: str | None = None) -> Iterator[str]:
        name = f"heimvakt_test_{uuid.uuid4().hex[:16]}"
        with _admin(postgres_server_url) as admin:
            # FILE_COPY copies the template's files after a checkpoint, which the drops'
            # checkpoints share; PostgreSQL 15's default (WAL_LOG) writes the whole template
            # through the WAL: 0.35 s a clone here against 0.06 s, and the authorization
            # matrix, a clone per case, went from 88 s to 70 s.
            admin.execute(
                f'CREATE DATABASE "{name}" TEMPLATE "{template or template_database[0]}"'
                " STRATEGY FILE_COPY"
            )
        try:
            yield database_url_for(postgres_server_url, name)
        finally:
            dropper.submit(_drop, postgres_server_url, name)

    return clone


@pytest.fixture
def database_url(clone_database: CloneDatabase) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    with clone_database() as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(clone_database: CloneDatabase) -> Iterator[str]:
    """A fresh, migrated database shared by one module's tests: for a seeded world they only
    read."""
    with clone_database() as url:
        yield url


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's database: each statement is visible at once."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as connection_pool:
        yield connection_pool


@pytest.fixture(scope="session")
def timescaledb(template_database: tuple[str, MigrationReport]) -> str:
    """The TimescaleDB version of the test server; tests that need it are skipped without it."""
    version = template_database[1].timescaledb_version
    if version is None:
        pytest.skip("the test server has no usable timescaledb extension (plain PostgreSQL mode)")
    return version


@pytest.fixture(scope="session")
def mqtt_server_url() -> Iterator[str]:
    """A broker URL without client identity details beyond a user name."""
    url = os.environ.get("HEIMVAKT_TEST_MQTT_URL")
    if url:
        yield url
        return
    broker = EmbeddedBroker()
    broker.start()
    yield broker.url("heimvakt-test")
    broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """Each test publishes and subscribes under its own prefix, so tests never see each other."""
    return f"test-{uuid.uuid4().hex[:12]}/heimvakt/v1"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
