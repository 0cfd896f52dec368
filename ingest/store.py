"""Writing a batch: COPY into a staging table, then one set-based insert per destination.

The patient is found here, in SQL, from the device assignment valid at ``measured_at``; a
reading from an unknown or unassigned device goes to quarantine in the same transaction.
Everything a batch causes (readings, quarantine rows, alerts through ``after_store``) commits
or rolls back together.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import args_row, class_row

from core.readings import Reading
from ingest import metrics
from ingest.decoding import Candidate
from ingest.quarantine import QuarantineEntry

AfterStore = Callable[[psycopg.Connection, Sequence[Reading]], None]
"""Runs inside the batch's transaction with the readings it stored (none twice)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A candidate quarantined here, in SQL, because no patient could be found for it."""

    device_id: str
    code: str
    measured_at: datetime
    reason: str
    detail: str


@dataclass(slots=True)
class BatchOutcome:
    stored_count: int = 0
    stored: list[Reading] = field(default_factory=list)
    """The stored readings themselves."""
    duplicates: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    refused: list[Refused] = field(default_factory=list)
    """Which candidates went to quarantine for their device, so HTTP can answer per reading."""


_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS reading_staging (
    device_id text, code text, measured_at timestamptz, value double precision,
    unit text, msg_id uuid, received_at timestamptz
) ON COMMIT DELETE ROWS
"""
_STAGING_TYPES = ("text", "text", "timestamptz", "float8", "text", "uuid", "timestamptz")

_INSERT_READINGS = """
INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, msg_id,
                          received_at)
    SELECT s.device_id, s.code, s.measured_at, a.patient_id, s.value, s.unit, s.msg_id,
           s.received_at
    FROM reading_staging s
    JOIN device_assignments a
      ON a.device_id = s.device_id
     AND a.valid_from <= s.measured_at
     AND (a.valid_to IS NULL OR a.valid_to > s.measured_at)
ON CONFLICT DO NOTHING
RETURNING patient_id, device_id, code, measured_at, value, unit, received_at
"""

_QUARANTINE_UNATTRIBUTED = """
INSERT INTO quarantine (received_at, channel, topic, device_id, msg_id, reason, detail, payload)
SELECT s.received_at, %(channel)s, NULL, s.device_id, s.msg_id,
       CASE WHEN d.id IS NULL THEN 'unknown_device' ELSE 'device_not_assigned' END,
       CASE WHEN d.id IS NULL THEN 'device ' || s.device_id || ' is not registered'
            ELSE 'device ' || s.device_id || ' is not assigned to a patient at ' || s.measured_at
       END,
       convert_to(json_build_object('code', s.code, 'value', s.value, 'unit', s.unit,
                                    'measured_at', s.measured_at)::text, 'UTF8')
FROM reading_staging s
LEFT JOIN devices d ON d.id = s.device_id
WHERE NOT EXISTS (
    SELECT 1 FROM device_assignments a
    WHERE a.device_id = s.device_id AND a.valid_from <= s.measured_at
      AND (a.valid_to IS NULL OR a.valid_to > s.measured_at)
)
-- RETURNING sees only the quarantine row: code and time come back out of the payload built above.
RETURNING device_id, convert_from(payload, 'UTF8')::json ->> 'code' AS code,
          (convert_from(payload, 'UTF8')::json ->> 'measured_at')::timestamptz AS measured_at,
          reason, detail
"""


# Hearing from a device at all (a duplicate included) says it is alive: last seen moves on.
# It moves in steps of a minute at most: rewriting every device's row in every batch cost as
# much as storing the readings, and "silent" is judged in hours.
_TOUCH_LAST_SEEN = """
INSERT INTO device_status AS d (device_id, last_seen_at)
SELECT s.device_id, max(s.received_at)
FROM reading_staging s
WHERE EXISTS (SELECT 1 FROM devices WHERE id = s.device_id)
GROUP BY s.device_id
HAVING NOT EXISTS (
    SELECT 1 FROM device_status f
    WHERE f.device_id = s.device_id AND f.last_seen_at > max(s.received_at) - interval '1 minute'
)
ON CONFLICT (device_id) DO UPDATE SET last_seen_at = greatest(d.last_seen_at, EXCLUDED.last_seen_at)
"""


def store_batch(
    conn: psycopg.Connection,
    *,
    channel: str,
    candidates: Sequence[Candidate],
    quarantined: Sequence[QuarantineEntry],
    after_store: Sequence[AfterStore] = (),
) -> BatchOutcome:
    """Store one batch in one transaction and report what became of it."""
    outcome = BatchOutcome()
    with conn.transaction():
        if quarantined:
            _copy_quarantine(conn, quarantined)
            outcome.quarantined.update(str(q.reason) for q in quarantined)
        _prepare(conn)
        if candidates:
            with conn.cursor().copy(
                "COPY reading_staging"
                " (device_id, code, measured_at, value, unit, msg_id, received_at)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(_STAGING_TYPES)
                for c in candidates:
                    copy.write_row(
                        (
                            c.device_id,
                            c.code,
                            c.measured_at,
                            c.value,
                            c.unit,
                            c.msg_id,
                            c.received_at,
                        )
                    )
            # Binary results: a timestamp is parsed from 8 bytes, not from its text.
            with conn.cursor(row_factory=args_row(Reading), binary=True) as cur:
                outcome.stored = cur.execute(_INSERT_READINGS).fetchall()
            outcome.stored_count = len(outcome.stored)
            if outcome.stored_count < len(candidates):  # else every reading found a patient
                with conn.cursor(row_factory=class_row(Refused)) as cur:
                    outcome.refused = cur.execute(
                        _QUARANTINE_UNATTRIBUTED, {"channel": channel}
                    ).fetchall()
            outcome.quarantined.update(r.reason for r in outcome.refused)
            conn.execute(_TOUCH_LAST_SEEN)
            outcome.duplicates = len(candidates) - outcome.stored_count - len(outcome.refused)
        if after_store:
            started = time.thread_time()
            for hook in after_store:
                hook(conn, outcome.stored)
            metrics.add_stage_cpu("rules", time.thread_time() - started)
    _count(outcome)
    return outcome


def _prepare(conn: psycopg.Connection) -> None:
    """The session's staging table (created on first use)."""
    conn.execute(_STAGING)


def _copy_quarantine(conn: psycopg.Connection, entries: Sequence[QuarantineEntry]) -> None:
    with conn.cursor().copy(
        "COPY quarantine (received_at, channel, topic, device_id, msg_id, reason, detail, payload)"
        " FROM STDIN"
    ) as copy:
        for q in entries:
            copy.write_row(
                (
                    q.received_at,
                    q.channel,
                    q.topic,
                    q.device_id,
                    q.msg_id,
                    str(q.reason),
                    q.detail,
                    q.payload,
                )
            )


def _count(outcome: BatchOutcome) -> None:
    for code, count in Counter(r.code for r in outcome.stored).items():
        metrics.READINGS_STORED.labels(code=code).inc(count)
    metrics.READINGS_DUPLICATE.inc(outcome.duplicates)
    for reason, count in outcome.quarantined.items():
        metrics.QUARANTINED.labels(reason=reason).inc(count)
