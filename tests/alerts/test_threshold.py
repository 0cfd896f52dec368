"""The per-patient threshold rule: one alert per patient and measurement, repeats update it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from alerts.service import unresolved_alerts
from alerts.threshold import evaluate_thresholds
from care.service import do_set_threshold
from core.readings import Reading
from tests.support import seed_patient_with_device

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def reading(patient: UUID, value: float, *, minutes_ago: float, code: str = "59408-5") -> Reading:
    return Reading(
        patient_id=patient,
        device_id="ox-1",
        code=code,
        measured_at=NOW - timedelta(minutes=minutes_ago),
        value=value,
        unit="%",
    )


@pytest.fixture
def patient(conn: psycopg.Connection) -> UUID:
    patient_id = seed_patient_with_device(conn)
    do_set_threshold(conn, patient_id=patient_id, code="spo2", low=90, high=99, now=NOW)
    return patient_id


@pytest.mark.parametrize(
    ("value", "direction"),
    [(89.9, "low"), (90.0, None), (95.0, None), (99.0, None), (99.1, "high")],
)
def test_a_value_opens_an_alert_only_outside_the_limits(
    conn: psycopg.Connection, patient: UUID, value: float, direction: str | None
) -> None:
    evaluate_thresholds(conn, [reading(patient, value, minutes_ago=1)], now=NOW)
    alerts = unresolved_alerts(conn, patient_ids=[patient])
    assert [a.direction for a in alerts] == ([direction] if direction else [])


def test_several_breaches_in_one_batch_make_one_alert_with_the_newest_value(
    conn: psycopg.Connection, patient: UUID
) -> None:
    batch = [reading(patient, v, minutes_ago=m) for v, m in ((88, 3), (85, 1), (87, 2))]
    evaluate_thresholds(conn, batch, now=NOW)
    [alert] = unresolved_alerts(conn, patient_ids=[patient])
    assert (alert.last_value, alert.occurrences, alert.severity) == (85, 3, "yellow")
    assert alert.first_measured_at == NOW - timedelta(minutes=3)
    assert alert.rule_id == "threshold:59408-5"


def test_a_late_reading_counts_but_does_not_replace_the_newest_value(
    conn: psycopg.Connection, patient: UUID
) -> None:
    evaluate_thresholds(conn, [reading(patient, 85, minutes_ago=1)], now=NOW)
    evaluate_thresholds(conn, [reading(patient, 88, minutes_ago=60)], now=NOW)
    [alert] = unresolved_alerts(conn, patient_ids=[patient])
    assert (alert.last_value, alert.occurrences) == (85, 2)
    assert alert.first_measured_at == NOW - timedelta(minutes=60)


def test_a_measurement_without_limits_never_alerts(conn: psycopg.Connection, patient: UUID) -> None:
    evaluate_thresholds(conn, [reading(patient, 30, minutes_ago=1, code="8867-4")], now=NOW)
    assert unresolved_alerts(conn, patient_ids=[patient]) == []


def test_a_resolved_alert_lets_a_new_breach_open_a_new_one(
    conn: psycopg.Connection, patient: UUID
) -> None:
    evaluate_thresholds(conn, [reading(patient, 85, minutes_ago=5)], now=NOW)
    conn.execute("UPDATE alerts SET state = 'resolved'")
    evaluate_thresholds(conn, [reading(patient, 86, minutes_ago=1)], now=NOW)
    [alert] = unresolved_alerts(conn, patient_ids=[patient])
    assert alert.last_value == 86
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (2,)
