"""`heimvakt doctor`: what Heimvakt would run on, and what is wrong with it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from importlib.metadata import version

import paho.mqtt.client as paho
import psycopg

from core.db import server_info
from core.migrate import (
    TIMESCALEDB_NOT_PRELOADED,
    Migration,
    pending_migrations,
    timescaledb_status,
)
from core.mqtt import BrokerAddress
from core.settings import Settings
from core.timescale_jobs import JobHealth, describe, job_health
from heimvakt.platform import database_service

Echo = Callable[[str], None]


def diagnose(settings: Settings, *, echo: Echo) -> list[str]:
    """Print a report and return the problems found (none means healthy)."""
    echo(f"Heimvakt {version('heimvakt')}")
    problems = _check_database(settings, echo) + _check_broker(settings, echo)
    for problem in problems:
        echo(f"problem: {problem}")
    echo("no problems found" if not problems else f"{len(problems)} problem(s) found")
    return problems


def _check_database(settings: Settings, echo: Echo) -> list[str]:
    problems = []
    with database_service(settings) as (url, description):
        echo(description)
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                info = server_info(conn)
                status = timescaledb_status(conn)
                pending = pending_migrations(conn)
                jobs = job_health(conn)
        except psycopg.Error as error:
            return [f"cannot reach the database: {error}"]
    echo(f"PostgreSQL {info.postgres_version}")
    if status.version:
        echo(f"TimescaleDB {status.version}: mode timescaledb (hypertables, compression)")
    elif status.available and status.preloaded:
        echo(
            "TimescaleDB installed and preloaded, not yet created in this database:"
            " `heimvakt migrate` creates it (mode timescaledb from then on)"
        )
    else:
        echo("TimescaleDB not in use: mode postgresql (same queries, plain tables)")
        if status.available:
            problems.append(TIMESCALEDB_NOT_PRELOADED)
    problems += _report_jobs(jobs, echo)
    echo(f"synchronous_commit = {info.synchronous_commit}")
    if info.synchronous_commit != "on":
        problems.append(
            "synchronous_commit is not 'on': committed readings could be lost in a crash"
        )
    # On plain PostgreSQL a TimescaleDB-only migration waits by design: information, not a
    # problem that `heimvakt migrate` could fix.
    waiting = [m for m in pending if m.requires_timescaledb and not status.version]
    for line in timescaledb_note(waiting):
        echo(line)
    missing = [m.label for m in pending if m not in waiting]
    if missing:
        problems.append(
            f"migrations not applied yet (run `heimvakt migrate`): {', '.join(missing)}"
        )
    return problems


def _report_jobs(jobs: list[JobHealth], echo: Echo) -> list[str]:
    """Each TimescaleDB background job; one whose last run failed is a problem."""
    if jobs:
        echo("TimescaleDB jobs:")
    for job in jobs:
        echo(f"  {describe(job)}")
    return [
        f"TimescaleDB job {job.name} failed its last run ({job.failures} of {job.runs} runs"
        f" failed): {job.last_error or 'see the server log'}; docs/deploy.md names the"
        " versions known to run the jobs"
        for job in jobs
        if job.failing
    ]


def timescaledb_note(waiting: list[Migration]) -> list[str]:
    """What the TimescaleDB-only migrations would add, for `doctor` and `migrate` to print."""
    if not waiting:
        return []
    return [
        "information: these migrations wait for TimescaleDB, which this server does not use;"
        " everything works without them:",
        *(f"  {m.label}: {m.summary}" for m in waiting),
        "  With the timescaledb extension installed and in shared_preload_libraries, the next"
        " `heimvakt migrate` (or `heimvakt up`) applies them (docs/deploy.md).",
    ]


def _check_broker(settings: Settings, echo: Echo) -> list[str]:
    if not settings.mqtt_url:
        echo(f"broker: embedded amqtt {version('amqtt')}, started by `heimvakt up` on loopback")
        return []
    address = BrokerAddress.parse(settings.mqtt_url)
    echo(f"broker: {address.host}:{address.port}{' (TLS)' if address.tls else ''}")
    client = address.client(client_id=f"heimvakt-doctor-{uuid.uuid4().hex[:8]}", persistent=False)
    connected, answered = threading.Event(), threading.Event()
    broker_version: list[str] = []

    def on_connect(
        c: paho.Client, u: object, f: object, reason: paho.ReasonCode, p: object
    ) -> None:
        if not reason.is_failure:
            connected.set()
            c.subscribe("$SYS/broker/version")

    def on_message(c: paho.Client, u: object, message: paho.MQTTMessage) -> None:
        broker_version.append(message.payload.decode(errors="replace"))
        answered.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError as error:
        return [f"cannot reach the MQTT broker: {error}"]
    client.loop_start()
    try:
        if not connected.wait(5):
            return ["the MQTT broker refused the connection or did not answer"]
        answered.wait(2)
        echo(f"broker version: {broker_version[0] if broker_version else 'not published'}")
        return []
    finally:
        client.disconnect()
        client.loop_stop()
