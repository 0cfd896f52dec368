"""The dispatcher against real PostgreSQL, a real SMTP server and a real webhook receiver:
delivered once, retried with growing backoff through an outage and delivered after it, dead
with a technical alert when it cannot be, and not lost when the dispatcher is killed mid-send
(R22, R23)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.actions import do_resolve_alert
from alerts.channels import Channel, EmailChannel, WebhookChannel
from alerts.dispatch import Dispatcher, channels_from_settings, serve
from alerts.outbox import build_message, do_enqueue_notification, recent_notifications
from care.access import Interface
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.clock import ManualClock
from core.links import PublicLinks
from core.settings import Settings
from tests.alerts.test_channels import SECRET, SmtpServer, WebhookReceiver
from tests.support import care_team_member, insert_episode, scalar

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PATIENT_NAME = "Kari Nordmann"
LINKS = PublicLinks("https://heimvakt.example")


def seed_alert(conn: psycopg.Connection, *, now: datetime = NOW) -> tuple[int, UUID]:
    """A unit, a patient and an open red alert; returns (alert id, patient id)."""
    unit = do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE)
    patient = do_create_patient(
        conn,
        display_name=PATIENT_NAME,
        conditions=[Condition.COPD],
        responsible_unit=unit,
        since=now - timedelta(days=30),
    )
    row = conn.execute(
        "INSERT INTO alerts (patient_id, rule_id, rule_version, severity, code, direction,"
        " first_value, last_value, first_measured_at, last_measured_at, created_at, updated_at,"
        " routed_to, episode_id) VALUES (%s, 'threshold:59408-5:low', 1, 'red', '59408-5',"
        " 'low', 84, 84, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            patient,
            now,
            now,
            now,
            now,
            unit,
            insert_episode(conn, patient=patient, severity="red", at=now, unit=unit),
        ),
    ).fetchone()
    assert row is not None
    return row[0], patient


def enqueue(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    patient_id: UUID,
    channel: str,
    address: str,
    now: datetime = NOW,
    reasons: Sequence[dict[str, Any]] = (),
) -> UUID:
    """One notification about `patient_id`'s alert (`alert_id`): the link the dispatcher adds
    when it sends points to their page."""
    message = build_message(
        alert_id=alert_id,
        severity="red",
        unit_name="Kommunen",
        reasons=reasons,
    )
    with conn.transaction():
        return do_enqueue_notification(
            conn, alert_id=alert_id, channel=channel, address=address, message=message, now=now
        )


def state(conn: psycopg.Connection, key: UUID) -> tuple[str, int, datetime, str | None]:
    row = conn.execute(
        "SELECT state, attempts, next_attempt_at, last_error FROM notifications WHERE id = %s",
        (key,),
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def webhook() -> Iterator[WebhookChannel]:
    channel = WebhookChannel(SECRET, 2.0, allow_private_addresses=True)
    yield channel
    channel.close()


def dispatcher(
    pool: ConnectionPool, clock: ManualClock, channels: dict[str, Channel], **options: Any
) -> Dispatcher:
    return Dispatcher(
        pool, channels=channels, clock=clock, links=LINKS, rng=random.Random(7), **options
    )


def test_a_webhook_is_delivered_exactly_once(
    conn: psycopg.Connection,
    pool: ConnectionPool,
    clock: ManualClock,
    receiver: WebhookReceiver,
    webhook: WebhookChannel,
) -> None:
    alert_id, patient = seed_alert(conn)
    key = enqueue(
        conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=receiver.url
    )
    worker = dispatcher(pool, clock, {"webhook": webhook})

    assert worker.run_once() == 1
    assert worker.run_once() == 0
    clock.advance(timedelta(hours=1))
    assert worker.run_once() == 0

    assert receiver.keys() == [str(key)]
    assert receiver.requests[0].verified()
    assert json.loads(receiver.requests[0].body)["link"] == LINKS.patient(patient)
    row = conn.execute(
        "SELECT state, attempts, delivered_at, last_error FROM notifications WHERE id = %s", (key,)
    ).fetchone()
    assert row == ("delivered", 1, NOW, None)


def test_an_email_is_delivered_exactly_once_without_the_patients_name(
    conn: psycopg.Connection, pool: ConnectionPool, clock: ManualClock, smtp: SmtpServer
) -> None:
    alert_id, patient = seed_alert(conn)
    plain = enqueue(
        conn, alert_id=alert_id, patient_id=patient, channel="email", address="a@kommune.example"
    )
    with_values = enqueue(
        conn,
        alert_id=alert_id,
        patient_id=patient,
        channel="email",
        address="b@kommune.example",
        reasons=[{"rule": "threshold", "severity": "red", "text": "SpO2 (low) 84.0 %"}],
    )
    email = EmailChannel(smtp.url, "varsel@heimvakt.example", 5.0)
    worker = dispatcher(pool, clock, {"email": email})

    assert worker.run_once() == 2
    assert worker.run_once() == 0

    mails = {recipients[0]: mail for _sender, recipients, mail in smtp.sink.messages}
    assert len(smtp.sink.messages) == 2
    assert mails["a@kommune.example"]["X-Heimvakt-Idempotency-Key"] == str(plain)
    assert mails["b@kommune.example"]["X-Heimvakt-Idempotency-Key"] == str(with_values)
    for mail in mails.values():
        raw = mail.as_string()
        assert PATIENT_NAME not in raw
        assert "Nordmann" not in raw
        assert "copd" not in raw.lower()
        assert f"https://heimvakt.example/app/patients/{patient}" in mail.get_content()
    assert "Why:" not in mails["a@kommune.example"].get_content()
    assert "84.0" not in mails["a@kommune.example"].as_string()
    assert "- SpO2 (low) 84.0 %" in mails["b@kommune.example"].get_content()
    assert {state(conn, key)[0] for key in (plain, with_values)} == {"delivered"}


def test_a_notification_that_rolled_back_is_never_sent(
    conn: psycopg.Connection,
    pool: ConnectionPool,
    clock: ManualClock,
    receiver: WebhookReceiver,
    webhook: WebhookChannel,
) -> None:
    alert_id, patient = seed_alert(conn)

    class Failed(Exception):
        pass

    def change_that_fails() -> None:
        with conn.transaction():
            enqueue(
                conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=receiver.url
            )
            raise Failed

    with pytest.raises(Failed):
        change_that_fails()
    assert dispatcher(pool, clock, {"webhook": webhook}).run_once() == 0
    assert receiver.requests == []


def failed_delays(
    conn: psycopg.Connection, worker: Dispatcher, clock: ManualClock, keys: list[UUID], rounds: int
) -> list[list[float]]:
    """Run `rounds` rounds against a target that is down; the delay each row got per round."""
    delays = []
    for round_ in range(1, rounds + 1):
        assert worker.run_once() == len(keys)
        assert worker.run_once() == 0  # nothing is due again before its delay has passed
        rows = [state(conn, key) for key in keys]
        assert {row[0] for row in rows} == {"pending"}
        assert {row[1] for row in rows} == {round_}
        delays.append([(row[2] - clock.now()).total_seconds() for row in rows])
        clock.current = max(row[2] for row in rows)
    return delays


def assert_backoff(delays: list[list[float]], *, base: float) -> None:
    for round_, seen in enumerate(delays, start=1):
        expected = base * 2 ** (round_ - 1)
        assert all(0.9 * expected <= delay <= 1.1 * expected for delay in seen), (round_, seen)


def test_webhook_target_down_is_retried_with_growing_backoff_and_none_lost(
    conn: psycopg.Connection, pool: ConnectionPool, clock: ManualClock, webhook: WebhookChannel
) -> None:
    """R22: the receiver is down for five attempts (its port closed), then comes back."""
    alert_id, patient = seed_alert(conn)
    receiver = WebhookReceiver()  # not started: nothing listens on its port
    url = receiver.url
    keys = [
        enqueue(conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=url)
        for _ in range(5)
    ]
    worker = dispatcher(pool, clock, {"webhook": webhook})

    delays = failed_delays(conn, worker, clock, keys, rounds=5)
    assert_backoff(delays, base=5.0)
    assert "ConnectError" in (state(conn, keys[0])[3] or "")

    receiver.start()
    try:
        assert worker.run_once() == 5
        assert worker.run_once() == 0
    finally:
        receiver.stop()
    assert sorted(receiver.keys()) == sorted(str(key) for key in keys)  # each once, none lost
    assert {state(conn, key)[:2] for key in keys} == {("delivered", 6)}
    assert all(request.verified() for request in receiver.requests)


def test_smtp_server_down_is_retried_and_delivered_when_it_returns(
    conn: psycopg.Connection, pool: ConnectionPool, clock: ManualClock
) -> None:
    alert_id, patient = seed_alert(conn)
    server = SmtpServer()  # not started yet
    keys = [
        enqueue(
            conn,
            alert_id=alert_id,
            patient_id=patient,
            channel="email",
            address=f"nurse{i}@kommune.example",
        )
        for i in range(3)
    ]
    worker = dispatcher(
        pool, clock, {"email": EmailChannel(server.url, "varsel@heimvakt.example", 2.0)}
    )

    assert_backoff(failed_delays(conn, worker, clock, keys, rounds=4), base=5.0)

    server.start()
    try:
        assert worker.run_once() == 3
        assert worker.run_once() == 0
    finally:
        server.stop()
    received = [mail["X-Heimvakt-Idempotency-Key"] for _s, _r, mail in server.sink.messages]
    assert sorted(received) == sorted(str(key) for key in keys)


def test_the_delay_is_capped(pool: ConnectionPool, clock: ManualClock) -> None:
    worker = dispatcher(pool, clock, {}, base_delay=5.0, max_delay=30.0)
    for attempts, expected in enumerate([5, 10, 20, 30, 30, 30, 30, 30], start=1):
        seconds = [worker.backoff(attempts).total_seconds() for _ in range(50)]
        assert 0.9 * expected <= min(seconds) <= max(seconds) <= 1.1 * expected
        assert len(set(seconds)) > 1  # jittered
    assert worker.backoff(10_000).total_seconds() <= 33


def technical_alerts(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT a.rule_id, a.severity, a.category, a.state, a.occurrences, a.patient_id,"
        " a.routed_to IS NOT NULL, a.details->>'notification_id', a.created_at"
        " FROM alerts a WHERE a.category = 'technical' ORDER BY a.id"
    ).fetchall()


def test_after_max_attempts_the_notification_is_dead_and_a_technical_alert_says_so(
    conn: psycopg.Connection, pool: ConnectionPool, clock: ManualClock, webhook: WebhookChannel
) -> None:
    alert_id, patient = seed_alert(conn)
    down = WebhookReceiver()
    key = enqueue(conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=down.url)
    worker = dispatcher(pool, clock, {"webhook": webhook}, max_attempts=3)

    for _ in range(2):
        assert worker.run_once() == 1
        clock.current = state(conn, key)[2]
    assert technical_alerts(conn) == []
    assert worker.run_once() == 1
    dead_at = clock.now()

    assert state(conn, key)[:2] == ("dead", 3)
    assert technical_alerts(conn) == [
        (
            "notification_undeliverable:webhook",
            "red",
            "technical",
            "open",
            1,
            patient,
            True,
            str(key),
            dead_at,
        )
    ]
    events = conn.execute(
        "SELECT e.action FROM alert_events e"
        " JOIN alerts a ON a.id = e.alert_id WHERE a.category = 'technical' ORDER BY e.id"
    ).fetchall()
    assert events == [("opened",), ("notified",)], "opened and routed like any alert"
    clock.advance(timedelta(days=1))
    assert worker.run_once() == 0  # dead stays dead


def test_a_dead_notification_reaches_the_units_technical_contact_on_another_channel(
    conn: psycopg.Connection, pool: ConnectionPool, clock: ManualClock, webhook: WebhookChannel
) -> None:
    alert_id, patient = seed_alert(conn)
    unit = scalar(conn, "SELECT routed_to FROM alerts WHERE id = %s", (alert_id,))
    conn.execute(
        "INSERT INTO technical_contacts (organisation_id, channel, address) VALUES"
        " (%s, 'email', 'drift@example.org'), (%s, 'webhook', 'https://drift.example/hook')",
        (unit, unit),
    )
    key = enqueue(conn, alert_id=alert_id, patient_id=patient, channel="webhook", address="x")
    worker = dispatcher(pool, clock, {"webhook": webhook}, max_attempts=1)
    worker.run_once()
    assert state(conn, key)[0] == "dead"
    told = conn.execute(
        "SELECT channel, address, message->'reasons'->0->>'text' FROM notifications"
        " WHERE id <> %s AND address LIKE %s",
        (key, "%drift%"),
    ).fetchall()
    assert (
        "email",
        "drift@example.org",
        "Notification undeliverable on the webhook channel",
    ) in told
    assert not [row for row in told if row[0] == "webhook" and "webhook channel" in row[2]], (
        "never on the channel that failed"
    )


def test_a_permanent_failure_is_dead_at_once_and_repeats_count_on_one_technical_alert(
    conn: psycopg.Connection,
    pool: ConnectionPool,
    clock: ManualClock,
    receiver: WebhookReceiver,
    webhook: WebhookChannel,
) -> None:
    alert_id, patient = seed_alert(conn)
    receiver.status = 410
    first = enqueue(
        conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=receiver.url
    )
    second = enqueue(
        conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=receiver.url
    )
    worker = dispatcher(pool, clock, {"webhook": webhook})

    assert worker.run_once() == 2
    assert state(conn, first)[:2] == ("dead", 1)
    assert state(conn, second)[:2] == ("dead", 1)
    assert "410" in (state(conn, first)[3] or "")
    ((rule, severity, _category, _state, occurrences, *_rest),) = technical_alerts(conn)
    assert (rule, severity, occurrences) == ("notification_undeliverable:webhook", "red", 2)
    actions = conn.execute(
        "SELECT e.action FROM alert_events e JOIN alerts a ON a.id = e.alert_id"
        " WHERE a.category = 'technical' ORDER BY e.id"
    ).fetchall()
    assert actions == [("opened",), ("notified",)], "routed like any alert; repeats count up"


def test_after_its_alert_is_resolved_the_next_dead_notification_opens_a_new_one(
    conn: psycopg.Connection,
    pool: ConnectionPool,
    clock: ManualClock,
    receiver: WebhookReceiver,
    webhook: WebhookChannel,
) -> None:
    """Nothing says a channel is clearly working again, so resolving the technical alert
    does not mute its instance (`Rule.disarmed_by_resolution`): each new failure is news."""
    alert_id, patient = seed_alert(conn)
    receiver.status = 410
    worker = dispatcher(pool, clock, {"webhook": webhook})
    enqueue(conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=receiver.url)
    assert worker.run_once() == 1
    ((technical,),) = conn.execute("SELECT id FROM alerts WHERE category = 'technical'")
    nurse = care_team_member(conn, patient_id=patient, since=NOW - timedelta(days=1))
    do_resolve_alert(
        conn,
        alert_id=technical,
        outcome="technical_fixed",
        note="Ny adresse til webhooken",
        actor=nurse,
        interface=Interface.API,
        now=NOW,
    )
    enqueue(conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=receiver.url)
    assert worker.run_once() == 1
    assert [(row[0], row[3]) for row in technical_alerts(conn)] == [
        ("notification_undeliverable:webhook", "resolved"),
        ("notification_undeliverable:webhook", "open"),
    ]


def test_a_channel_that_is_not_configured_waits_and_is_retried(
    conn: psycopg.Connection, pool: ConnectionPool, clock: ManualClock
) -> None:
    alert_id, patient = seed_alert(conn)
    key = enqueue(
        conn, alert_id=alert_id, patient_id=patient, channel="email", address="a@kommune.example"
    )
    assert dispatcher(pool, clock, {}).run_once() == 1
    status, attempts, _next, error = state(conn, key)
    assert (status, attempts) == ("pending", 1)
    assert error == "the email channel is not configured"


def test_in_demo_mode_an_unconfigured_channel_delivers_to_the_demo_outbox_without_a_warning(
    conn: psycopg.Connection,
    pool: ConnectionPool,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 17: no "not configured; its notifications wait" warning at every demo start;
    the notifications are delivered into the outbox the demo's worklist shows instead."""
    demo = Settings(demo=True, database_url="postgresql://demo@127.0.0.1/demo")
    alert_id, patient = seed_alert(conn)
    keys = [
        enqueue(conn, alert_id=alert_id, patient_id=patient, channel=channel, address=address)
        for channel, address in (
            ("email", "sykepleier@demo.heimvakt.invalid"),
            ("webhook", "https://receiver.demo.heimvakt.invalid/hook"),
        )
    ]
    stop = threading.Event()
    stop.set()
    with caplog.at_level(logging.INFO, logger="alerts.dispatch"):
        serve(demo, database_url=conn.info.dsn, stop=stop)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    assert dispatcher(pool, clock, channels_from_settings(demo)).run_once() == 2
    assert [state(conn, key)[0] for key in keys] == ["delivered", "delivered"]
    shown = recent_notifications(conn, patient_ids=[patient])
    assert {(n.channel, n.state) for n in shown} == {
        ("email", "delivered"),
        ("webhook", "delivered"),
    }
    assert recent_notifications(conn, patient_ids=[]) == []


def test_outside_demo_mode_an_unconfigured_channel_is_still_warned_about(
    conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    stop = threading.Event()
    stop.set()
    settings = Settings(database_url="postgresql://heimvakt@127.0.0.1/heimvakt")
    with caplog.at_level(logging.WARNING, logger="alerts.dispatch"):
        serve(settings, database_url=conn.info.dsn, stop=stop)
    assert "the email channel is not configured" in caplog.text
    assert "email" not in channels_from_settings(settings)


def test_two_dispatchers_never_send_the_same_row(
    conn: psycopg.Connection, database_url: str, clock: ManualClock
) -> None:
    """SKIP LOCKED: each row is claimed by one dispatcher while it sends."""
    alert_id, patient = seed_alert(conn)
    receiver = WebhookReceiver(hold_first=0.5).start()
    url = receiver.url
    keys = [
        enqueue(conn, alert_id=alert_id, patient_id=patient, channel="webhook", address=url)
        for _ in range(12)
    ]
    channels = [WebhookChannel(SECRET, 5.0, allow_private_addresses=True) for _ in range(2)]
    with ConnectionPool(database_url, min_size=2, max_size=2) as shared:
        workers = [dispatcher(shared, clock, {"webhook": channel}) for channel in channels]
        counts: list[int] = []
        threads = [
            threading.Thread(target=lambda w=worker: counts.append(w.run_once()))
            for worker in workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    receiver.stop()
    for channel in channels:
        channel.close()
    assert sorted(receiver.keys()) == sorted(str(key) for key in keys)
    assert sum(counts) == 12
    assert min(counts) >= 1  # both took part


# kill -9 mid-send (R23) -----------------------------------------------------------------------


class DispatcherProcess:
    """``python -m alerts.dispatch`` in its own process, so it can be killed with SIGKILL."""

    def __init__(self, workdir: Path, *, database_url: str, name: str) -> None:
        self.log = workdir / f"{name}.log"
        env = {
            **os.environ,
            "HEIMVAKT_DATABASE_URL": database_url,
            "HEIMVAKT_WEBHOOK_SECRET": SECRET,
            "HEIMVAKT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "HEIMVAKT_NOTIFICATION_TIMEOUT_SECONDS": "30",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "alerts.dispatch", "--poll-seconds", "0.2"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=Path(__file__).resolve().parents[2],
            )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def wait_until(condition: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_mid_send_loses_nothing_and_a_duplicate_carries_the_same_key(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)  # the subprocess runs on the system clock
    alert_id, patient = seed_alert(conn, now=now)
    # The receiver records the request on arrival and holds its answer 5 s: the dispatcher is
    # inside the send (its row lock held, the delivery not recorded) when it is killed.
    receiver = WebhookReceiver(hold_first=5.0).start()
    try:
        key = enqueue(
            conn,
            alert_id=alert_id,
            patient_id=patient,
            channel="webhook",
            address=receiver.url,
            now=now,
        )
        first = DispatcherProcess(tmp_path, database_url=database_url, name="first")
        try:
            assert receiver.arrived.wait(30), first.log.read_text()
        finally:
            first.kill()
        assert first.process.returncode == -signal.SIGKILL
        assert state(conn, key)[:2] == ("pending", 0)  # the claim rolled back with the process

        second = DispatcherProcess(tmp_path, database_url=database_url, name="second")
        try:
            wait_until(
                lambda: state(conn, key)[0] == "delivered",
                timeout=30,
                what=f"not delivered after the restart: {second.log.read_text()}",
            )
        finally:
            assert second.stop() == 0, second.log.read_text()
    finally:
        receiver.stop()

    # At least once: it arrived again after the kill; the duplicate carries the same key, so
    # the receiver can tell it is one notification; both are genuinely ours.
    assert receiver.keys() == [str(key), str(key)]
    assert all(request.verified() for request in receiver.requests)
    assert receiver.requests[0].body == receiver.requests[1].body
    assert state(conn, key)[:2] == ("delivered", 1)
