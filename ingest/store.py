"""Writing a batch: COPY into a staging table, then one set-based insert per destination.

The patient is found here, in SQL, from the device assignment valid at ``measured_at``; a
reading from an unknown or unassigned device goes to quarantine in the same transaction, and so
does one measured during an earlier assignment of a device that is now another patient's (the
new holder must not write into the previous patient's record; a nurse decides). A msg_id names
one message (`ingest_messages`): the first message with an id wins, and a later one with other
content goes to quarantine. Everything a batch causes (readings, quarantine rows, alerts through
``after_store``) commits or rolls back together.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import args_row, class_row

from core.readings import Reading
from core.weeks import COUNT_READINGS
from ingest import metrics
from ingest.decoding import Candidate, Decoded, as_storage_error
from ingest.quarantine import QuarantineEntry

log = logging.getLogger(__name__)

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


# `message` numbers the messages of a batch: two messages with one msg_id may share a batch.
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS reading_staging (
    device_id text, code text, measured_at timestamptz, value double precision,
    unit text, msg_id uuid, received_at timestamptz, message int
) ON COMMIT DELETE ROWS
"""
_STAGING_TYPES = ("text", "text", "timestamptz", "float8", "text", "uuid", "timestamptz", "int4")

# Each message of the batch with a digest of its readings: their hashes combined, so their
# order does not matter and no text is formatted (hash_record_extended is stable, as hash
# partitioning needs).
_SENT = """
sent AS (
    SELECT device_id, msg_id, message, min(received_at) AS received_at,
           bit_xor(hash_record_extended(ROW(code, measured_at, value, unit), 0)) AS digest
    FROM reading_staging
    GROUP BY device_id, msg_id, message
)"""

# The first message of each id is recorded (in key order, so two batches cannot deadlock; a
# later message of the batch with the same id is a conflict DO NOTHING skips). A batch whose
# messages are all new, each the only one with its id, has no conflict to look for. A
# concurrent batch holding the same id makes this wait for its commit: the first still wins.
_RECORD_MESSAGES = f"""
WITH {_SENT}, recorded AS (
    INSERT INTO ingest_messages (device_id, msg_id, digest, received_at)
    SELECT device_id, msg_id, digest, received_at
    FROM sent
    ORDER BY device_id, msg_id, message
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM recorded) = (SELECT count(*) FROM sent)
"""

# A message whose id was first used for other content leaves the staging table for quarantine.
_QUARANTINE_CONFLICTS = f"""
WITH {_SENT}, conflicting AS (
    SELECT s.device_id, s.msg_id, s.message, m.received_at AS first_received_at
    FROM sent s JOIN ingest_messages m USING (device_id, msg_id)
    WHERE m.digest <> s.digest
), moved AS (
    DELETE FROM reading_staging r USING conflicting c
    WHERE r.device_id = c.device_id AND r.msg_id = c.msg_id AND r.message = c.message
    RETURNING r.*, c.first_received_at
)
INSERT INTO quarantine (received_at, channel, topic, device_id, msg_id, reason, detail, payload)
SELECT received_at, %(channel)s, NULL, device_id, msg_id, 'conflicting_duplicate',
       'msg_id ' || msg_id || ' was first received at ' || first_received_at
           || ' with other content; the first message counts',
       convert_to(json_build_object('code', code, 'value', value, 'unit', unit,
                                    'measured_at', measured_at)::text, 'UTF8')
FROM moved
RETURNING device_id, convert_from(payload, 'UTF8')::json ->> 'code' AS code,
          (convert_from(payload, 'UTF8')::json ->> 'measured_at')::timestamptz AS measured_at,
          reason, detail
"""

_ASSIGNED_NOW_TO_ANOTHER = """
    SELECT 1 FROM device_assignments c
    WHERE c.device_id = s.device_id AND c.patient_id <> a.patient_id
      AND c.valid_from <= s.received_at AND (c.valid_to IS NULL OR c.valid_to > s.received_at)
"""

# The readings stored are counted per patient, measurement and week in the same statement
# (core.weeks.COUNT_READINGS, for the figures): one upsert per week of a patient's measurement
# in the batch, not one per reading.
_INSERT_READINGS = f"""
WITH stored AS (
    INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, received_at)
    SELECT s.device_id, s.code, s.measured_at, a.patient_id, s.value, s.unit, s.received_at
    FROM reading_staging s
    JOIN device_assignments a
      ON a.device_id = s.device_id
     AND a.valid_from <= s.measured_at
     AND (a.valid_to IS NULL OR a.valid_to > s.measured_at)
    -- Only an ended assignment is checked: the current one (nearly every reading) costs nothing.
    WHERE a.valid_to IS NULL OR NOT EXISTS ({_ASSIGNED_NOW_TO_ANOTHER})
    ON CONFLICT DO NOTHING
    RETURNING patient_id, device_id, code, measured_at, value, unit, received_at
), counted AS ({COUNT_READINGS.format(source="stored")})
SELECT * FROM stored
"""

# A reading of an earlier assignment that was stored before the device moved on (a redelivery)
# is a duplicate, not a quarantine row.
_QUARANTINE_UNATTRIBUTED = f"""
INSERT INTO quarantine (received_at, channel, topic, device_id, msg_id, reason, detail, payload)
SELECT s.received_at, %(channel)s, NULL, s.device_id, s.msg_id,
       CASE WHEN d.id IS NULL THEN 'unknown_device'
            WHEN a.patient_id IS NULL THEN 'device_not_assigned'
            ELSE 'device_reassigned' END,
       CASE WHEN d.id IS NULL THEN 'device ' || s.device_id || ' is not registered'
            WHEN a.patient_id IS NULL
            THEN 'device ' || s.device_id || ' is not assigned to a patient at ' || s.measured_at
            ELSE 'device ' || s.device_id || ' measured at ' || s.measured_at
                 || ' for an assignment that ended at ' || a.valid_to
                 || '; it is assigned to another patient now'
       END,
       convert_to(json_build_object('code', s.code, 'value', s.value, 'unit', s.unit,
                                    'measured_at', s.measured_at)::text, 'UTF8')
FROM reading_staging s
LEFT JOIN devices d ON d.id = s.device_id
LEFT JOIN device_assignments a
  ON a.device_id = s.device_id AND a.valid_from <= s.measured_at
 AND (a.valid_to IS NULL OR a.valid_to > s.measured_at)
WHERE a.patient_id IS NULL
   OR (a.valid_to IS NOT NULL AND EXISTS ({_ASSIGNED_NOW_TO_ANOTHER})
       AND NOT EXISTS (SELECT 1 FROM readings r WHERE r.device_id = s.device_id
                         AND r.code = s.code AND r.measured_at = s.measured_at))
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
    messages: Sequence[Sequence[Candidate]],
    quarantined: Sequence[QuarantineEntry],
    after_store: Sequence[AfterStore] = (),
) -> BatchOutcome:
    """Store one batch in one transaction and report what became of it. `messages` holds the
    candidates of each message received, in the order received (the first of an id wins)."""
    outcome = BatchOutcome()
    with conn.transaction():
        if quarantined:
            _copy_quarantine(conn, quarantined)
            outcome.quarantined.update(str(q.reason) for q in quarantined)
        _prepare(conn)
        candidates = sum(len(m) for m in messages)
        if candidates:
            _copy_staging(conn, messages)
            outcome.refused = _quarantine_conflicts(conn, channel=channel)
            # Binary results: a timestamp is parsed from 8 bytes, not from its text.
            with conn.cursor(row_factory=args_row(Reading), binary=True) as cur:
                outcome.stored = cur.execute(_INSERT_READINGS).fetchall()
            outcome.stored_count = len(outcome.stored)
            if outcome.stored_count + len(outcome.refused) < candidates:
                # else every reading found a patient
                with conn.cursor(row_factory=class_row(Refused)) as cur:
                    outcome.refused += cur.execute(
                        _QUARANTINE_UNATTRIBUTED, {"channel": channel}
                    ).fetchall()
            outcome.quarantined.update(r.reason for r in outcome.refused)
            conn.execute(_TOUCH_LAST_SEEN)
            outcome.duplicates = candidates - outcome.stored_count - len(outcome.refused)
        if after_store:
            started = time.thread_time()
            for hook in after_store:
                hook(conn, outcome.stored)
            metrics.add_stage_cpu("rules", time.thread_time() - started)
    _count(outcome)
    return outcome


def store_message(
    conn: psycopg.Connection,
    decoded: Decoded,
    *,
    channel: str,
    sender: str,
    after_store: Sequence[AfterStore] = (),
) -> tuple[Decoded, BatchOutcome]:
    """Store one message a sender waits on (HTTP ingest, a FHIR Bundle); returns what was
    stored and what the message became. If storing fails for any reason but the database
    being away, its readings are kept in quarantine (``storage_error``) rather than lost, as
    the MQTT writers do, and the sender does not retry in vain."""
    try:
        return decoded, _store_one(conn, decoded, channel=channel, after_store=after_store)
    except psycopg.OperationalError:
        raise
    except Exception as error:  # kept in quarantine, never lost
        log.warning(
            "storing a message from %r over %s failed: %r",
            sender,
            channel,
            error,
            exc_info=not isinstance(error, psycopg.Error),
        )
        decoded = as_storage_error(decoded, error, channel=channel)
        return decoded, _store_one(conn, decoded, channel=channel, after_store=after_store)


def _store_one(
    conn: psycopg.Connection,
    decoded: Decoded,
    *,
    channel: str,
    after_store: Sequence[AfterStore],
) -> BatchOutcome:
    return store_batch(
        conn,
        channel=channel,
        messages=[decoded.candidates],
        quarantined=decoded.quarantined,
        after_store=after_store,
    )


def _copy_staging(conn: psycopg.Connection, messages: Sequence[Sequence[Candidate]]) -> None:
    with conn.cursor().copy(
        "COPY reading_staging"
        " (device_id, code, measured_at, value, unit, msg_id, received_at, message)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_STAGING_TYPES)
        for number, message in enumerate(messages):
            for c in message:
                copy.write_row(
                    (
                        c.device_id,
                        c.code,
                        c.measured_at,
                        c.value,
                        c.unit,
                        c.msg_id,
                        c.received_at,
                        number,
                    )
                )


def _quarantine_conflicts(conn: psycopg.Connection, *, channel: str) -> list[Refused]:
    """Record the batch's messages; move those reusing an id for other content to quarantine.

    One statement when every message is new (nearly always), two when some id was seen before.
    """
    row = conn.execute(_RECORD_MESSAGES).fetchone()
    if row is not None and row[0]:
        return []
    with conn.cursor(row_factory=class_row(Refused)) as cur:
        return cur.execute(_QUARANTINE_CONFLICTS, {"channel": channel}).fetchall()


def do_forget_messages(conn: psycopg.Connection, *, received_before: datetime) -> int:
    """Forget the msg_ids received before a time; returns how many. Run it with a time before
    which no reading of theirs could still be accepted (the maximum age and clock skew)."""
    return conn.execute(
        "DELETE FROM ingest_messages WHERE received_at < %s", (received_before,)
    ).rowcount


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
