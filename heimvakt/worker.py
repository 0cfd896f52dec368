"""The ingest worker as the composition root builds it, for `heimvakt up` and `heimvakt ingest`.

Kept apart from the web app: a worker started alone never imports Dash, pandas or FastAPI.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import prometheus_client
from psycopg_pool import ConnectionPool

from alerts.engine import do_sweep, engine_hook
from core.clock import Clock, SystemClock
from core.db import open_pool, server_info
from core.loops import Backoff, Pulse
from core.mqtt import BrokerAddress
from core.settings import KNOWN_DEFAULT_SECRETS, Settings
from core.turns import Turns
from heimvakt.mosquitto import INGEST_USER
from ingest.limits import Limits
from ingest.service import IngestConfig, MqttIngest
from ingest.store import AfterStore, do_forget_messages

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SWEEP_SECONDS = 30.0
"""How often missing measurements, silent devices and escalation deadlines are checked: well
inside the shortest escalation deadline a unit can set (one minute)."""
SWEEP_DEADLINE_SECONDS = 3 * SWEEP_SECONDS
"""Readiness fails when the sweeper has not completed a sweep for this long."""


@contextlib.contextmanager
def until_signalled(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` while inside; the previous handlers come back after."""
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


GC_THRESHOLDS = (50_000, 20, 20)
"""A young collection every 50,000 new objects instead of every 700: a batch makes and drops
tens of thousands of short-lived objects (decoded messages, findings), and with the default
thresholds the collector kept scanning the rule engine's copies of recent readings. Draining
300,000 readings over 10,000 patients took 77 µs of worker CPU per reading before, 51 after."""


def freeze_startup_objects() -> None:
    """Move everything allocated while starting (modules, settings, pools) out of the garbage
    collector's sight: a full collection then scans only what the stream allocates, and its
    pauses stop showing in the readings' publish-to-commit time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def rules(clock: Clock, *, claimed: Callable[[], None] | None = None) -> list[AfterStore]:
    """What runs on every stored reading, in the transaction that stores it: the rule engine,
    which writes alerts and their notifications' outbox rows in that same transaction."""
    return [engine_hook(clock=clock, claimed=claimed)]


def ingest_limits(settings: Settings) -> Limits:
    return Limits(
        max_payload_bytes=settings.ingest_max_payload_bytes,
        max_readings=settings.ingest_max_readings,
        max_future=timedelta(seconds=settings.ingest_max_future_seconds),
        max_age=timedelta(days=settings.ingest_max_age_days),
        device_rate=settings.ingest_device_rate,
        device_burst=settings.ingest_device_burst,
    )


def ingest_client_id(settings: Settings) -> str:
    """The ingest's MQTT client id: HEIMVAKT_MQTT_CLIENT_ID, required with a configured broker.

    Whoever connects with the ingest's client id takes over its session, and with it the
    readings queued for it. The broker binds each device to its own client id
    (deploy/mosquitto/), and the platform's own id is not guessable either: the operator picks a
    random one, kept stable so the session survives restarts. The embedded broker keeps no
    session across a restart, so there a random id for each start will do.
    """
    if settings.mqtt_client_id is None and settings.mqtt_url is None:
        return f"{INGEST_USER}-{secrets.token_hex(8)}"
    client_id = settings.mqtt_client_id
    if client_id is None or client_id.lower() in {*KNOWN_DEFAULT_SECRETS, INGEST_USER}:
        raise SystemExit(
            "Refusing to start: set HEIMVAKT_MQTT_CLIENT_ID to a stable, unguessable client id "
            "for the ingest, e.g. heimvakt-ingest-$(openssl rand -hex 8) (docs/deploy.md)"
        )
    return client_id


def message_memory(settings: Settings) -> timedelta:
    """How long a device's msg_ids are remembered: while a reading of theirs could still be
    accepted (the maximum age, plus the clock skew allowed ahead)."""
    limits = ingest_limits(settings)
    return limits.max_age + limits.max_future


def build_ingest(
    settings: Settings, *, pool: ConnectionPool, mqtt_url: str, client_id: str, clock: Clock
) -> MqttIngest:
    """An ingest worker as configured, with the rules evaluated in its store transaction."""
    turns = Turns()
    return MqttIngest(
        broker=BrokerAddress.parse(mqtt_url),
        pool=pool,
        config=IngestConfig(
            topic_prefix=settings.mqtt_topic_prefix,
            client_id=client_id,
            batch_size=settings.ingest_batch_size,
            flush_seconds=settings.ingest_flush_seconds,
            queue_size=settings.ingest_queue_size,
            limits=ingest_limits(settings),
            shared_group=settings.ingest_shared_group,
            receive_maximum=settings.ingest_receive_maximum,
            writers=settings.ingest_writers,
        ),
        clock=clock,
        after_store=rules(clock, claimed=turns.release),
        turns=turns,
    )


def run_ingest(settings: Settings, *, metrics_port: int | None, clock: Clock | None = None) -> None:
    """One ingest worker alone, joining a running platform (scale-out); until SIGINT or SIGTERM."""
    if not settings.database_url or not settings.mqtt_url:
        raise SystemExit(
            "an ingest worker joins a running platform: set HEIMVAKT_DATABASE_URL and "
            "HEIMVAKT_MQTT_URL"
        )
    client_id = ingest_client_id(settings)
    clock = clock or SystemClock()
    stop = threading.Event()
    with (
        until_signalled(stop),
        open_pool(
            settings.database_url, size=settings.ingest_writers + 1, name="heimvakt-ingest"
        ) as pool,
    ):
        warn_unless_synchronous_commit(pool)
        if metrics_port is not None:
            prometheus_client.start_http_server(metrics_port, addr=settings.http_host)
        ingest = build_ingest(
            settings, pool=pool, mqtt_url=settings.mqtt_url, client_id=client_id, clock=clock
        )
        freeze_startup_objects()
        ingest.start()
        print(f"Ingest worker {client_id} running; Ctrl-C stops it", flush=True)
        stop.wait()
        ingest.stop()
    print("Ingest worker stopped", flush=True)


def run_sweeper(
    pool: ConnectionPool,
    *,
    clock: Clock,
    stop: threading.Event,
    keep_messages: timedelta,
    every: float = SWEEP_SECONDS,
    pulse: Pulse | None = None,
) -> None:
    """The time-based rules and escalation every `every` seconds until `stop` is set, and the
    forgetting of msg_ids older than `keep_messages`. No exception ends it: a failed sweep (a
    database outage, a bug) is logged and tried again after a growing pause of at most `every`;
    `pulse` beats after each sweep that completed."""
    backoff = Backoff(first=min(1.0, every), most=every)
    while not stop.is_set():
        try:
            with pool.connection() as conn:
                now = clock.now()
                do_sweep(conn, now=now)
                do_forget_messages(conn, received_before=now - keep_messages)
        except Exception:
            log.exception("the sweep failed; trying again")
            stop.wait(backoff.failed())
            continue
        backoff.succeeded()
        if pulse is not None:
            pulse.beat()
        stop.wait(every)


def warn_unless_synchronous_commit(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        info = server_info(conn)
    if info.synchronous_commit != "on":
        log.warning(
            "synchronous_commit is %r: a crash may lose readings the broker was told are "
            "stored. Set it to 'on' for the Heimvakt database.",
            info.synchronous_commit,
        )
