"""Battery and waiting readings from a device's status report become technical alerts, apart
from clinical ones, without flapping at a limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from alerts.engine import do_sweep
from devices.status import StatusReport, do_record_status
from tests.support import seed_patient_with_device

NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)


def report(
    conn: psycopg.Connection, at: datetime, *, battery: float, backlog: int | None = None
) -> None:
    status = StatusReport(battery=battery, backlog=backlog)
    assert do_record_status(conn, device_id="ox-1", report=status, received_at=at)
    do_sweep(conn, now=at + timedelta(seconds=30))


def open_alerts(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return conn.execute(
        "SELECT a.rule_id, a.category, e.problem FROM alerts a"
        " JOIN alert_episodes e ON e.id = a.episode_id"
        " WHERE a.state <> 'resolved' ORDER BY a.rule_id"
    ).fetchall()


def test_a_low_battery_and_a_gateway_behind_are_technical_alerts(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn, device_id="ox-1")
    report(conn, NOW, battery=85, backlog=0)
    assert open_alerts(conn) == []
    report(conn, NOW + timedelta(minutes=5), battery=12, backlog=64)
    assert open_alerts(conn) == [
        ("battery_low:ox-1", "technical", "technical"),
        ("gateway_backlog:ox-1", "technical", "technical"),
    ]


def test_a_battery_hovering_at_the_limit_opens_one_alert_not_one_per_report(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn, device_id="ox-1")
    for minutes, battery in enumerate((19, 21, 19, 22, 18)):
        report(conn, NOW + timedelta(minutes=5 * minutes), battery=battery)
    rows = conn.execute("SELECT rule_id, occurrences FROM alerts").fetchall()
    assert rows == [("battery_low:ox-1", 3)]
