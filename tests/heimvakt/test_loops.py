"""No exception ends the sweeper or the dispatcher, and readiness tells the truth about them.

A `ValueError` is injected into each: the loop lives on, its pulse (what `/readyz` reads) is
late while it fails and on time once it recovers, and then it does its work. The same for the
ingest writers and the rules: tests/ingest/test_service.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import alerts.engine
from alerts.dispatch import Dispatcher
from core.clock import SystemClock
from core.loops import Pulse
from heimvakt.worker import run_sweeper
from tests.alerts.test_dispatch import LINKS, enqueue, seed_alert
from tests.ingest.test_service import count
from tests.support import Fault, eventually, seed_patient_with_device

DEADLINE = 0.5
"""Seconds a loop under test may go without completing a round."""


def assert_late_then_on_time(pulse: Pulse, fault: Fault) -> None:
    """While the fault is on the loop completes no round, so readiness must say so; the loop's
    thread lives through it and is on time again once the fault is gone."""
    eventually(lambda: fault.raised >= 2)
    late = eventually(pulse.trouble)
    assert f"the {pulse.name} loop has not completed a round" in late
    assert pulse.thread is not None
    assert pulse.thread.is_alive()
    fault.on = False
    eventually(lambda: pulse.trouble() is None)
    assert pulse.thread.is_alive()


def test_the_sweeper_lives_through_an_exception_and_readiness_says_when_it_is_late(
    conn: psycopg.Connection, pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = seed_patient_with_device(conn)  # assigned long ago, never heard from
    # Registered three days ago: silent (no schedule, 48 hours) counting from registration.
    conn.execute("UPDATE devices SET created_at = now() - interval '3 days' WHERE id = 'ox-1'")
    conn.execute(
        "INSERT INTO ingest_messages (device_id, msg_id, digest, received_at)"
        " VALUES ('ox-1', %s, %s, now() - interval '40 days'),"
        " ('ox-1', %s, %s, now() - interval '1 day')",
        (uuid.uuid4(), 1, uuid.uuid4(), 2),
    )
    fault = Fault()
    monkeypatch.setattr(
        alerts.engine, "adherence_findings", fault.guard(alerts.engine.adherence_findings)
    )
    stop = threading.Event()
    pulse = Pulse("sweeper", deadline=DEADLINE)
    pulse.thread = threading.Thread(
        target=run_sweeper,
        kwargs={
            "pool": pool,
            "clock": SystemClock(),
            "stop": stop,
            "keep_messages": timedelta(days=30),
            "every": 0.05,
            "pulse": pulse,
        },
        daemon=True,
    )
    pulse.thread.start()
    try:
        assert_late_then_on_time(pulse, fault)
        silent = eventually(
            lambda: conn.execute(
                "SELECT rule_id, category FROM alerts WHERE patient_id = %s", (patient,)
            ).fetchall()
        )
        assert silent == [("device_silent:ox-1", "technical")]
        assert count(conn, "SELECT count(*) FROM ingest_messages") == 1
    finally:
        stop.set()
        pulse.thread.join(5)
    assert pulse.trouble() == "the sweeper loop has stopped"


class Recorded:
    """A channel that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[UUID] = []

    def send(self, *, address: str, message: Mapping[str, Any], idempotency_key: UUID) -> None:
        self.sent.append(idempotency_key)


def test_the_dispatcher_lives_through_an_exception_and_readiness_says_when_it_is_late(
    conn: psycopg.Connection, pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    alert_id, patient_id = seed_alert(conn, now=now)
    notification = enqueue(
        conn, alert_id=alert_id, patient_id=patient_id, channel="webhook", address="x", now=now
    )
    fault = Fault()
    monkeypatch.setattr(Dispatcher, "do_attempt_next", fault.guard(Dispatcher.do_attempt_next))
    channel = Recorded()
    pulse = Pulse("dispatcher", deadline=DEADLINE)
    dispatcher = Dispatcher(
        pool, channels={"webhook": channel}, clock=SystemClock(), links=LINKS, pulse=pulse
    )
    stop = threading.Event()
    pulse.thread = threading.Thread(target=dispatcher.run_forever, args=(stop, 0.05), daemon=True)
    pulse.thread.start()
    try:
        assert_late_then_on_time(pulse, fault)
        eventually(lambda: channel.sent == [notification])
        state = conn.execute(
            "SELECT state FROM notifications WHERE id = %s", (notification,)
        ).fetchone()
        assert state == ("delivered",)
    finally:
        stop.set()
        pulse.thread.join(5)
