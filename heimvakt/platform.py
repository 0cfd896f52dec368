"""`heimvakt up`: bring every part up in order, run until told to stop, take it down in reverse.

With nothing configured it starts an embedded PostgreSQL and MQTT broker; with
HEIMVAKT_DATABASE_URL and HEIMVAKT_MQTT_URL set it uses those services and starts neither.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import uvicorn
from psycopg_pool import ConnectionPool

from alerts.dispatch import serve
from care.national_ids import NationalIds, do_seal_unsealed_national_ids
from core.auth import LocalIssuer, TokenVerifier, issuer_configs, load_or_create_issuer_key
from core.clock import Clock, SystemClock
from core.db import open_pool
from core.links import DASHBOARD_PATH
from core.loops import Pulse
from core.migrate import MigrationReport, migrate
from core.mqtt import BrokerAddress
from core.oidc import ClientKeys, log_in_clients
from core.settings import Settings
from devices.simulator import Simulator
from heimvakt.app import create_app
from heimvakt.demo import (
    DEMO_PASSWORD,
    DEMO_PATIENT_LOGIN,
    DEMO_STAFF,
    seed_demo,
    simulated_devices,
)
from heimvakt.embedded import EmbeddedBroker, EmbeddedPostgres
from heimvakt.mosquitto import INGEST_USER
from heimvakt.oidc_login import OIDC_PATH, OidcLogIns
from heimvakt.worker import (
    STOP_SIGNALS,
    SWEEP_DEADLINE_SECONDS,
    build_ingest,
    freeze_startup_objects,
    ingest_client_id,
    ingest_limits,
    message_memory,
    rules,
    run_sweeper,
    warn_unless_synchronous_commit,
)

log = logging.getLogger(__name__)

DEMO_INTERVAL_SECONDS = 2.0
DEMO_HISTORY_DAYS = 30


@contextlib.contextmanager
def database_service(settings: Settings) -> Iterator[tuple[str, str]]:
    """The database URL to use and a description: the configured one, or an embedded one."""
    if settings.database_url:
        yield settings.database_url, "database: configured by HEIMVAKT_DATABASE_URL"
        return
    postgres = EmbeddedPostgres(settings.data_dir)
    description = f"database: embedded PostgreSQL in {settings.data_dir / 'postgres'}"
    if postgres.system_user:
        description += (
            f", run as the system account {postgres.system_user} (PostgreSQL refuses root)"
        )
    try:
        yield postgres.url(), description
    finally:
        postgres.stop()


@contextlib.contextmanager
def broker_service(settings: Settings) -> Iterator[tuple[str, str]]:
    """The ingest's broker URL and a description: the configured broker, or an embedded one."""
    if settings.mqtt_url:
        yield settings.mqtt_url, "broker: configured by HEIMVAKT_MQTT_URL"
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield (
            broker.url(INGEST_USER),
            f"broker: embedded amqtt at mqtt://{broker.host}:{broker.port}",
        )
    finally:
        broker.stop()


def run(settings: Settings, *, clock: Clock | None = None) -> None:
    """Run the platform in the foreground until SIGINT or SIGTERM."""
    clock = clock or SystemClock()
    client_id = ingest_client_id(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    first = not settings.database_url and not EmbeddedPostgres.created(settings.data_dir)
    print(
        "Starting the database and the broker"
        + (" (the first start creates the database: about 10 s)" if first else ""),
        flush=True,
    )
    with (
        database_service(settings) as (database_url, database_description),
        broker_service(settings) as (mqtt_url, broker_description),
        contextlib.ExitStack() as stack,
    ):
        print(f"Heimvakt starting ({database_description}; {broker_description})", flush=True)
        report = migrate(database_url)
        _print_migration(report)
        pool = open_pool(database_url, size=settings.db_pool_size)
        stack.callback(pool.close)
        warn_unless_synchronous_commit(pool)
        ingest = build_ingest(
            settings, pool=pool, mqtt_url=mqtt_url, client_id=client_id, clock=clock
        )
        freeze_startup_objects()
        ingest.start()
        stack.callback(ingest.stop)
        if not ingest.wait_connected(timeout=15):
            log.warning("the MQTT broker has not answered yet; the ingest keeps trying")
        background = threading.Event()
        sweeper = Pulse("sweeper", deadline=SWEEP_DEADLINE_SECONDS)
        dispatcher = Pulse("dispatcher", deadline=dispatcher_deadline(settings))
        sweeper.thread = threading.Thread(
            target=run_sweeper,
            name="sweeper",
            kwargs={
                "pool": pool,
                "clock": clock,
                "stop": background,
                "keep_messages": message_memory(settings),
                "pulse": sweeper,
            },
            daemon=True,
        )
        dispatcher.thread = threading.Thread(
            target=serve,
            name="dispatcher",
            kwargs={
                "settings": settings,
                "database_url": database_url,
                "stop": background,
                "pulse": dispatcher,
            },
            daemon=True,
        )
        for thread in (sweeper.thread, dispatcher.thread):
            thread.start()
            stack.callback(thread.join, 10)
        stack.callback(background.set)
        local_issuer = build_local_issuer(settings, pool=pool, clock=clock)
        if settings.demo:
            with pool.connection() as conn:
                created = seed_demo(
                    conn,
                    clock=clock,
                    issuer=None if local_issuer is None else local_issuer.config.issuer,
                )
            print("Demo data " + ("created" if created else "found; reusing it"), flush=True)
            if local_issuer is not None:
                print(
                    f"Log in as {', '.join(u for u, *_ in DEMO_STAFF)} or {DEMO_PATIENT_LOGIN}"
                    f" with the password {DEMO_PASSWORD}",
                    flush=True,
                )
            # The broker's address only: each simulated device logs in as itself.
            simulator = Simulator(
                broker=BrokerAddress.parse(mqtt_url),
                device_password=settings.demo_device_password,
                topic_prefix=settings.mqtt_topic_prefix,
                devices=simulated_devices(),
                clock=clock,
                interval=DEMO_INTERVAL_SECONDS,
                history_days=DEMO_HISTORY_DAYS,
            )
            simulator.start()
            stack.callback(simulator.stop)
        token = settings.metrics_token
        metrics_token = None if token is None else token.get_secret_value()
        app = create_app(
            pool=pool,
            clock=clock,
            broker_connected=lambda: ingest.connected,
            loops=[*ingest.pulses, sweeper, dispatcher],
            after_store=rules(clock),
            limits=ingest_limits(settings),
            verifier=TokenVerifier(issuer_configs(settings), local=local_issuer),
            public_url=settings.public_url,
            local_issuer=local_issuer,
            secure_cookie=settings.public_url.startswith("https://"),
            demo_outbox=settings.demo,
            max_body_bytes=settings.http_max_body_bytes,
            metrics_token=metrics_token,
            allow_private_targets=settings.webhook_allow_private_addresses,
            oidc=oidc_log_ins(settings, pool=pool, clock=clock),
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                log_level="warning",
                # Through the root logger's format (core/logs.py): uvicorn's own has no time.
                log_config=None,
            )
        )
        threading.Thread(target=_announce, args=(server, settings), daemon=True).start()
        _serve(server)
        print("Heimvakt stopping", flush=True)
    print("Heimvakt stopped", flush=True)


def dispatcher_deadline(settings: Settings) -> float:
    """Seconds the dispatcher may go without a round: one send may take a channel's timeout
    (connecting, then answering), plus the poll."""
    return 2 * settings.notification_timeout_seconds + 30.0


def local_issuer_id(settings: Settings) -> str:
    """The built-in issuer's `iss`: built from the configured public address."""
    return f"{settings.public_url.rstrip('/')}/auth"


def build_local_issuer(
    settings: Settings, *, pool: ConnectionPool, clock: Clock
) -> LocalIssuer | None:
    """The built-in issuer, in demo and embedded mode only; its signing key is made at first
    start, sealed with the issuer key file (made at first start too, unless configured)."""
    if not settings.local_issuer_enabled():
        return None
    issuer = LocalIssuer(
        pool,
        issuer=local_issuer_id(settings),
        audience=settings.auth_audience,
        clock=clock,
        token_lifetime=timedelta(minutes=settings.token_lifetime_minutes),
        issuer_key=load_or_create_issuer_key(settings.issuer_key_path()),
    )
    issuer.ensure_signing_key()
    return issuer


def oidc_log_ins(settings: Settings, *, pool: ConnectionPool, clock: Clock) -> OidcLogIns:
    """Log-in through the configured issuers, with the client key pair and the national id
    keys derived from the installation key (made at first start, like the built-in issuer's);
    national ids stored in plain text before migration 0026 are sealed now."""
    installation_key = load_or_create_issuer_key(settings.issuer_key_path())
    national_ids = NationalIds.from_installation_key(installation_key)
    with pool.connection() as conn, conn.transaction():
        sealed = do_seal_unsealed_national_ids(conn, keys=national_ids)
    if sealed:
        log.info("sealed %d national identity numbers stored in plain text before", sealed)
    keys = ClientKeys(pool, installation_key=installation_key, clock=clock)
    redirect_base = f"{settings.public_url.rstrip('/')}{OIDC_PATH}"
    clients = log_in_clients(
        settings.oidc_issuers, pool=pool, clock=clock, keys=keys, redirect_base=redirect_base
    )
    return OidcLogIns(
        clients=clients,
        keys=keys,
        national_ids=national_ids,
        session_lifetime=timedelta(minutes=settings.token_lifetime_minutes),
    )


def _serve(server: uvicorn.Server) -> None:
    """Serve until SIGINT or SIGTERM, then return so the rest is taken down in order.

    Uvicorn shuts down gracefully on those signals and then raises the signal again for the
    handler that was installed before it; ours takes it, so the process ends with status 0.
    """
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_migration(report: MigrationReport) -> None:
    mode = (
        f"TimescaleDB {report.timescaledb_version}" if report.timescaledb_version else "PostgreSQL"
    )
    applied = ", ".join(report.applied) or "none"
    print(f"Database mode: {mode}; migrations applied now: {applied}", flush=True)
    for problem in report.problems:
        print(f"Warning: {problem}", flush=True)


def _announce(server: uvicorn.Server, settings: Settings) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        url = f"http://{settings.http_host}:{settings.http_port}{DASHBOARD_PATH}"
        print(f"Heimvakt is running. Dashboard: {url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
