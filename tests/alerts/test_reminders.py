"""Reminders to the patient before a missing measurement becomes the nurse's alert, against real
PostgreSQL and a real SMTP server (aiosmtpd) with the manual clock: at the due time plus grace
and never at night, closed by a reading that comes after them, the nurse's alert only after the
second deadline, and delivered once when the mail server comes back."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.channels import EmailChannel
from alerts.dispatch import Dispatcher
from alerts.engine import do_sweep
from alerts.outbox import recent_notifications
from alerts.reminders import Recipient, do_choose_reminder_channel, reminder_recipients
from care.careplan import InvalidChangeError, do_create_care_plan
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from care.templates import ScheduledMeasurement
from core.clock import DISPLAY_TIMEZONE, ManualClock
from core.links import PublicLinks
from tests.alerts.test_channels import SmtpServer
from tests.support import scalar

SPO2 = "59408-5"
# Tuesday 24 November 2026, Oslo time (UTC+1).
PLAN_START = datetime(2026, 11, 20, 12, 0, tzinfo=DISPLAY_TIMEZONE)
MORNING = datetime(2026, 11, 23, 7, 0, tzinfo=DISPLAY_TIMEZONE)
"""Monday's morning SpO2: due again Tuesday 07:00, missing after 2 hours' grace, at 09:00."""
DUE = MORNING + timedelta(hours=26)
ALERT = DUE + timedelta(hours=3, seconds=30)
"""The second deadline: the default three hours after the reminder (sent by the sweep 30
seconds after the due time)."""
LINKS = PublicLinks("https://heimvakt.example")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def patient_measuring_spo2(
    conn: psycopg.Connection,
    *,
    email: str | None,
    language: str = "nn",
    tuned: dict[str, float | None] | None = None,
) -> UUID:
    """A patient whose plan asks for SpO2 every 24 hours with 2 hours' grace, reminded by
    e-mail at `email` (None: no reminders), the plan's rule parameters `tuned`."""
    unit = do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE)
    patient = do_create_patient(
        conn,
        display_name="Synne Syntetisk",
        conditions=[Condition.COPD],
        responsible_unit=unit,
        since=PLAN_START - timedelta(days=30),
        preferred_language=language,
    )
    do_create_care_plan(
        conn,
        patient_id=patient,
        template="copd",
        author=None,
        now=PLAN_START,
        limits=(),
        measurements=(ScheduledMeasurement(SPO2, every_hours=24, grace_hours=2),),
        rule_parameters=tuned,
    )
    if email is not None:
        do_choose_reminder_channel(
            conn, patient_id=patient, channel="email", address=email, now=PLAN_START
        )
    measure(conn, patient, MORNING)
    return patient


def measure(conn: psycopg.Connection, patient: UUID, at: datetime) -> None:
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
        " received_at) VALUES (%s, %s, %s, %s, 95, '%%', %s)",
        (f"ox-{patient}", SPO2, at, patient, at),
    )


def dispatcher(pool: ConnectionPool, clock: ManualClock, server: SmtpServer) -> Dispatcher:
    return Dispatcher(
        pool,
        channels={"email": EmailChannel(server.url, "varsel@heimvakt.example", 2.0)},
        clock=clock,
        links=LINKS,
        rng=random.Random(7),
    )


def sweep_and_send(
    conn: psycopg.Connection, worker: Dispatcher, clock: ManualClock, at: datetime
) -> None:
    clock.current = at
    do_sweep(conn, now=at)
    worker.run_once()


def alerts(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT rule_id, severity FROM alerts ORDER BY id").fetchall()


def mails(server: SmtpServer) -> list[EmailMessage]:
    return [mail for _sender, _to, mail in server.sink.messages]


def test_a_missing_morning_spo2_reminds_the_patient_at_due_time_plus_grace_in_their_language(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    patient = patient_measuring_spo2(conn, email="synne@example.org")
    clock = ManualClock(DUE - timedelta(minutes=1))
    worker = dispatcher(pool, clock, smtp)

    sweep_and_send(conn, worker, clock, DUE - timedelta(minutes=1))
    assert mails(smtp) == [], "not before the due time plus grace"
    sweep_and_send(conn, worker, clock, DUE + timedelta(seconds=30))

    [mail] = mails(smtp)
    assert mail["To"] == "synne@example.org"
    assert mail["Subject"] == "Heimvakt: ei påminning om å måle"  # Nynorsk, her language
    body = mail.get_content()
    assert "behandlingsplanen din" in body
    assert "https://heimvakt.example/app/" in body  # her own view
    words = body.split("Ref.")[0]  # without the reference (the idempotency key)
    for private in ("Synne", "95", "SpO2", "metning"):  # no name, value or measurement
        assert private not in words
    assert alerts(conn) == [], "the nurse is not alerted while the patient has time to measure"
    assert reminder_recipients(conn, patient_ids=[patient], now=DUE) == {
        patient: [Recipient("email", "synne@example.org", "nn")]
    }


def test_a_reminder_due_at_night_waits_for_the_morning(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    patient = patient_measuring_spo2(conn, email="synne@example.org")
    late = datetime(2026, 11, 23, 22, 30, tzinfo=DISPLAY_TIMEZONE)  # due 00:30 on Tuesday
    measure(conn, patient, late)
    worker = dispatcher(pool, ManualClock(late), smtp)
    clock = worker.clock
    assert isinstance(clock, ManualClock)

    for at in (late + timedelta(hours=26, minutes=1), late + timedelta(hours=33, minutes=29)):
        sweep_and_send(conn, worker, clock, at)  # 00:31 and 07:59
        assert mails(smtp) == [], at
        assert alerts(conn) == [], at
    morning = datetime(2026, 11, 25, 8, 0, 10, tzinfo=DISPLAY_TIMEZONE)
    sweep_and_send(conn, worker, clock, morning)
    assert len(mails(smtp)) == 1
    # The nurse's alert waits for the second deadline after the morning's reminder, not the
    # night's due time.
    sweep_and_send(conn, worker, clock, morning + timedelta(hours=2, minutes=59))
    assert alerts(conn) == []
    sweep_and_send(conn, worker, clock, morning + timedelta(hours=3))
    assert alerts(conn) == [(f"missing_measurement:{SPO2}", "yellow")]
    assert len(mails(smtp)) == 1, "one reminder per missed measurement"


def test_a_reading_after_the_reminder_closes_it_and_no_nurse_alert_is_raised(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    patient = patient_measuring_spo2(conn, email="synne@example.org")
    clock = ManualClock(DUE)
    worker = dispatcher(pool, clock, smtp)
    sweep_and_send(conn, worker, clock, DUE + timedelta(seconds=30))
    assert len(mails(smtp)) == 1

    measure(conn, patient, DUE + timedelta(minutes=40))
    for at in (DUE + timedelta(hours=1), ALERT + timedelta(hours=1)):
        sweep_and_send(conn, worker, clock, at)
    assert alerts(conn) == []
    assert len(mails(smtp)) == 1
    closed = scalar(conn, "SELECT closed_at FROM reminders WHERE patient_id = %s", (patient,))
    assert closed == DUE + timedelta(minutes=40)


def test_a_reading_that_never_comes_is_the_nurses_alert_only_after_the_second_deadline(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    reminded = patient_measuring_spo2(conn, email="synne@example.org")
    unreminded = patient_measuring_spo2(conn, email=None)
    clock = ManualClock(DUE)
    worker = dispatcher(pool, clock, smtp)

    sweep_and_send(conn, worker, clock, DUE + timedelta(seconds=30))
    # Without a channel nobody is reminded: the nurse is alerted at the due time, as before.
    open_alerts = "SELECT patient_id FROM alerts WHERE severity = 'yellow' ORDER BY id"
    assert [row[0] for row in conn.execute(open_alerts)] == [unreminded]
    sweep_and_send(conn, worker, clock, ALERT - timedelta(seconds=1))
    assert [row[0] for row in conn.execute(open_alerts)] == [unreminded]
    sweep_and_send(conn, worker, clock, ALERT + timedelta(seconds=1))
    assert [row[0] for row in conn.execute(open_alerts)] == [unreminded, reminded]
    assert len(mails(smtp)) == 1
    # The nurse's reason says whether the patient was reminded first (dashboard/reasons.py).
    assert conn.execute(
        "SELECT patient_id, details->'reminded' FROM alerts ORDER BY id"
    ).fetchall() == [(unreminded, False), (reminded, True)]


def test_a_reminder_with_the_mail_server_down_is_delivered_once_when_it_returns(
    conn: psycopg.Connection, pool: ConnectionPool
) -> None:
    patient_measuring_spo2(conn, email="synne@example.org")
    server = SmtpServer()  # not started: nothing listens on its port
    clock = ManualClock(DUE)
    worker = dispatcher(pool, clock, server)
    for minutes in (0.5, 1, 2, 5):
        sweep_and_send(conn, worker, clock, DUE + timedelta(minutes=minutes))
    [(key, state, attempts)] = conn.execute(
        "SELECT id, state, attempts FROM notifications WHERE reminder_id IS NOT NULL"
    ).fetchall()
    assert state == "pending"
    assert attempts >= 2

    server.start()
    try:
        for minutes in (30, 60):
            sweep_and_send(conn, worker, clock, DUE + timedelta(minutes=minutes))
    finally:
        server.stop()
    [mail] = mails(server)
    assert mail["X-Heimvakt-Idempotency-Key"] == str(key)
    assert scalar(conn, "SELECT count(*) FROM notifications") == 1
    assert scalar(conn, "SELECT state FROM notifications") == "delivered"


def test_an_undeliverable_reminder_is_dead_and_visible_without_a_technical_alert(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    patient = patient_measuring_spo2(conn, email="gone@example.org")  # refused with 550
    clock = ManualClock(DUE)
    sweep_and_send(conn, dispatcher(pool, clock, smtp), clock, DUE + timedelta(seconds=30))
    [shown] = recent_notifications(conn, patient_ids=[patient])
    assert (shown.state, shown.address, shown.patient_id) == ("dead", "gone@example.org", patient)
    assert alerts(conn) == []


def test_a_reminder_the_sweep_finds_only_after_the_window_shut_moves_to_the_next_morning(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    """The sweep planned the reminder at night for 08:00, then did not run again until 21:30:
    the reminder waits for the next morning, and the nurse's alert waits with it."""
    patient = patient_measuring_spo2(conn, email="synne@example.org")
    late = datetime(2026, 11, 23, 22, 30, tzinfo=DISPLAY_TIMEZONE)
    measure(conn, patient, late)
    clock = ManualClock(late)
    worker = dispatcher(pool, clock, smtp)
    sweep_and_send(conn, worker, clock, late + timedelta(hours=26, minutes=1))  # 00:31
    sweep_and_send(conn, worker, clock, datetime(2026, 11, 24, 21, 30, tzinfo=DISPLAY_TIMEZONE))
    assert mails(smtp) == []
    assert alerts(conn) == []
    next_morning = datetime(2026, 11, 25, 8, 0, tzinfo=DISPLAY_TIMEZONE)
    assert conn.execute("SELECT remind_at, alert_at FROM reminders").fetchall() == [
        (next_morning, next_morning + timedelta(hours=3))
    ]
    sweep_and_send(conn, worker, clock, next_morning + timedelta(seconds=5))
    assert len(mails(smtp)) == 1


def test_the_plan_tunes_the_reminders_hours_and_the_second_deadline_and_keeps_the_window_open(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    patient_measuring_spo2(
        conn,
        email="synne@example.org",
        tuned={
            "missing_measurement.remind_from_hour": 10,
            "missing_measurement.alert_after_hours": 1,
        },
    )
    clock = ManualClock(DUE)
    worker = dispatcher(pool, clock, smtp)
    sweep_and_send(conn, worker, clock, DUE + timedelta(minutes=30))  # 09:30
    assert mails(smtp) == []
    ten = DUE + timedelta(hours=1)
    sweep_and_send(conn, worker, clock, ten)
    assert len(mails(smtp)) == 1
    sweep_and_send(conn, worker, clock, ten + timedelta(minutes=59))
    assert alerts(conn) == []
    sweep_and_send(conn, worker, clock, ten + timedelta(hours=1, seconds=1))
    assert alerts(conn) == [(f"missing_measurement:{SPO2}", "yellow")]

    with pytest.raises(InvalidChangeError, match="remind_from_hour"):
        patient_measuring_spo2(conn, email=None, tuned={"missing_measurement.remind_from_hour": 21})


def test_a_waiting_reminder_whose_patient_chose_none_since_is_the_nurses_without_waiting(
    conn: psycopg.Connection, pool: ConnectionPool, smtp: SmtpServer
) -> None:
    patient = patient_measuring_spo2(conn, email="synne@example.org")
    late = datetime(2026, 11, 23, 22, 30, tzinfo=DISPLAY_TIMEZONE)
    measure(conn, patient, late)
    clock = ManualClock(late)
    worker = dispatcher(pool, clock, smtp)
    sweep_and_send(conn, worker, clock, late + timedelta(hours=26, minutes=1))  # 00:31
    do_choose_reminder_channel(conn, patient_id=patient, channel=None, address=None, now=late)
    morning = datetime(2026, 11, 25, 8, 0, tzinfo=DISPLAY_TIMEZONE)
    sweep_and_send(conn, worker, clock, morning)
    sweep_and_send(conn, worker, clock, morning + timedelta(seconds=30))
    assert mails(smtp) == []
    assert alerts(conn) == [(f"missing_measurement:{SPO2}", "yellow")]
