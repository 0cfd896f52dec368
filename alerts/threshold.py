"""The per-patient threshold rule, evaluated on the readings a batch just stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import psycopg

from alerts.rules import PATIENT_THRESHOLD
from core.clock import Clock
from core.readings import STORED_NOW, Reading, stage_stored_now

# One statement per batch: breaches are found in SQL, folded to the newest per patient and
# measurement (a statement may touch an alert row only once), then opened or updated.
_UPSERT_BREACHES = f"""
WITH r AS (
    SELECT patient_id, code, value, measured_at FROM {STORED_NOW}
), breaches AS (
    SELECT r.*, CASE WHEN r.value < t.low THEN 'low' ELSE 'high' END AS direction
    FROM r JOIN patient_thresholds t USING (patient_id, code)
    WHERE r.value < t.low OR r.value > t.high
), folded AS (
    SELECT DISTINCT ON (patient_id, code) patient_id, code, direction, value, measured_at,
           count(*) OVER (PARTITION BY patient_id, code) AS n,
           min(measured_at) OVER (PARTITION BY patient_id, code) AS first_at
    FROM breaches
    ORDER BY patient_id, code, measured_at DESC
)
INSERT INTO alerts AS a (patient_id, rule_id, rule_version, severity, code, direction,
                         first_value, last_value, first_measured_at, last_measured_at,
                         occurrences, created_at, updated_at)
SELECT patient_id, %(rule)s || ':' || code, %(version)s, %(severity)s, code, direction,
       value, value, first_at, measured_at, n, %(now)s, %(now)s
FROM folded
ON CONFLICT (patient_id, rule_id) WHERE state <> 'resolved' DO UPDATE SET
    occurrences = a.occurrences + EXCLUDED.occurrences,
    updated_at = EXCLUDED.updated_at,
    direction = CASE WHEN EXCLUDED.last_measured_at >= a.last_measured_at
                     THEN EXCLUDED.direction ELSE a.direction END,
    last_value = CASE WHEN EXCLUDED.last_measured_at >= a.last_measured_at
                      THEN EXCLUDED.last_value ELSE a.last_value END,
    last_measured_at = greatest(a.last_measured_at, EXCLUDED.last_measured_at),
    first_measured_at = least(a.first_measured_at, EXCLUDED.first_measured_at)
"""


def evaluate_stored(conn: psycopg.Connection, *, now: datetime) -> None:
    """Open an alert for each patient and measurement with a breach among the readings this
    transaction stored (`core.readings.STORED_NOW`); a repeat updates the alert."""
    conn.execute(
        _UPSERT_BREACHES,
        {
            "rule": PATIENT_THRESHOLD.id,
            "version": PATIENT_THRESHOLD.version,
            "severity": PATIENT_THRESHOLD.severity,
            "now": now,
        },
    )


def evaluate_thresholds(
    conn: psycopg.Connection, readings: list[Reading], *, now: datetime
) -> None:
    """The rule over readings given by hand, as if one transaction had just stored them."""
    with conn.transaction():
        stage_stored_now(conn, readings)
        evaluate_stored(conn, now=now)


def threshold_hook(clock: Clock) -> Callable[[psycopg.Connection], None]:
    """The rule as an ingest hook: evaluated in the transaction that stored the readings."""

    def evaluate(conn: psycopg.Connection) -> None:
        evaluate_stored(conn, now=clock.now())

    return evaluate
