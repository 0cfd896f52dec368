"""Retention: readings older than the configured period go, with what was counted from them.

Why two paths. On TimescaleDB every reading older than 30 days sits in a compressed chunk,
and a DELETE there must decompress what it touches first: the daily run failed past the
decompression limit whenever the cut fell inside a chunk, and where the limit was lifted it
rewrote a whole chunk every day. So there the run drops whole chunks (`drop_chunks`), and
readings between the start of the chunk the cut falls in and the cut wait until that chunk
ends (one chunk interval at most: seven days, migration 0005). Chunks are not made shorter
for a closer cut: a compressed batch then holds a day of a device's readings instead of a week,
and a reading took twice the space (32 bytes against 16, bench/storage.py's shape). A retention
policy does the same in the background; this run does it too, because TimescaleDB's jobs can
fail unseen (`heimvakt doctor` reports them).

On plain PostgreSQL readings are deleted a few hundred patients at a time, each group in its
own short transaction, through the (patient, code, time) index: no lock is held long, ingest
keeps writing, and nothing scans the whole table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg

from core.catalog import MEASUREMENTS
from core.weeks import WEEK_ZONE, week_of

log = logging.getLogger(__name__)

PATIENTS_PER_TRANSACTION: Final = 200


@dataclass(frozen=True, slots=True)
class Retained:
    """What a retention run did."""

    deleted: int
    """Readings removed (in dropped chunks, or deleted)."""
    chunks_dropped: int = 0
    waiting_until: datetime | None = None
    """TimescaleDB: readings older than the cut remain in a compressed chunk until then."""


def do_apply_retention(
    conn: psycopg.Connection,
    *,
    now: datetime,
    keep: timedelta,
    patients_per_transaction: int = PATIENTS_PER_TRANSACTION,
) -> Retained:
    """Remove readings measured before ``now - keep``, and their weekly counts and daily sums.

    `conn` must not be inside a transaction: each step commits on its own."""
    cut = now - keep
    if _is_hypertable(conn, "readings"):
        retained = _drop_chunks(conn, cut=cut, keep=keep)
    else:
        retained = Retained(
            deleted=_delete_in_batches(conn, cut=cut, group=patients_per_transaction)
        )
    with conn.transaction():
        _forget_what_was_counted(conn, cut=cut)
    return retained


def _is_hypertable(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL"
    ).fetchone()
    if row is None or not row[0]:
        return False
    found = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = current_schema() AND hypertable_name = %s",
        (table,),
    ).fetchone()
    return found is not None


_CHUNKS_BEFORE = """
SELECT count(*), max(range_end)
  FROM timescaledb_information.chunks
 WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings'
   AND range_end <= %(cut)s
"""

_CHUNK_CUT_THROUGH = """
SELECT range_end, is_compressed
  FROM timescaledb_information.chunks
 WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings'
   AND range_start < %(cut)s AND range_end > %(cut)s
"""


def _drop_chunks(conn: psycopg.Connection, *, cut: datetime, keep: timedelta) -> Retained:
    """Whole chunks before the cut; in the chunk the cut falls in, only an uncompressed one is
    cut (cheaply), a compressed one waits for its end."""
    with conn.transaction():
        _keep_policy(conn, keep=keep)
        row = conn.execute(_CHUNKS_BEFORE, {"cut": cut}).fetchone()
        chunks, end = row if row is not None else (0, None)
        deleted = 0
        if chunks:
            # Counted from the compressed batches' metadata, not by decompressing them.
            counted = conn.execute(
                "SELECT count(*) FROM readings WHERE measured_at < %s", (end,)
            ).fetchone()
            deleted = counted[0] if counted else 0
            conn.execute("SELECT drop_chunks('readings', older_than => %s::timestamptz)", (end,))
        through = conn.execute(_CHUNK_CUT_THROUGH, {"cut": cut}).fetchone()
        waiting_until = None
        if through is not None and through[1]:
            waiting_until = through[0]
        else:
            deleted += conn.execute("DELETE FROM readings WHERE measured_at < %s", (cut,)).rowcount
    log.info("retention dropped %d chunks, %d readings before %s", chunks, deleted, cut)
    return Retained(deleted=deleted, chunks_dropped=chunks, waiting_until=waiting_until)


def _keep_policy(conn: psycopg.Connection, *, keep: timedelta) -> None:
    """TimescaleDB's retention policy, with the period configured now."""
    current = conn.execute(
        "SELECT (config ->> 'drop_after')::interval FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_retention' AND hypertable_schema = current_schema()"
        " AND hypertable_name = 'readings'"
    ).fetchone()
    if current is not None and current[0] == keep:
        return
    if current is not None:
        conn.execute("SELECT remove_retention_policy('readings')")
    conn.execute("SELECT add_retention_policy('readings', drop_after => %s)", (keep,))


# A loose index scan: each step one probe of the (patient, code, time) index for the next
# patient with readings, so finding a group never reads a patient's readings.
_NEXT_PATIENTS = """
WITH RECURSIVE walk (patient_id, n) AS (
    (SELECT patient_id, 1 FROM readings WHERE patient_id > %(after)s
      ORDER BY patient_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.patient_id FROM readings r WHERE r.patient_id > w.patient_id
             ORDER BY r.patient_id LIMIT 1), w.n + 1
      FROM walk w
     WHERE w.patient_id IS NOT NULL AND w.n < %(count)s
)
SELECT patient_id FROM walk WHERE patient_id IS NOT NULL
"""

_DELETE_GROUP = """
DELETE FROM readings
 WHERE patient_id = ANY(%(patients)s) AND code = ANY(%(codes)s) AND measured_at < %(cut)s
"""


def _delete_in_batches(conn: psycopg.Connection, *, cut: datetime, group: int) -> int:
    codes = [m.code for m in MEASUREMENTS]
    after = UUID(int=0)
    deleted = 0
    while True:
        with conn.transaction():
            patients = [
                row[0] for row in conn.execute(_NEXT_PATIENTS, {"after": after, "count": group})
            ]
            if not patients:
                return deleted
            deleted += conn.execute(
                _DELETE_GROUP, {"patients": patients, "codes": codes, "cut": cut}
            ).rowcount
        after = patients[-1]


def _forget_what_was_counted(conn: psycopg.Connection, *, cut: datetime) -> None:
    """The weekly counts before the cut go and the week it falls in is counted again; the
    patient page's daily sums (dashboard/data/trend_days.py) of the weeks cut go too, and the
    week the cut falls in is summed again on its next read, its count having changed."""
    conn.execute(_RECOUNT_WEEKS, {"cut": cut})
    week = week_of("%(cut)s::timestamptz")
    conn.execute(f"DELETE FROM reading_days WHERE day < ({week})", {"cut": cut})
    conn.execute(f"DELETE FROM reading_day_weeks WHERE week < ({week})", {"cut": cut})


_RECOUNT_WEEKS: Final = f"""
WITH cut AS (
    SELECT {week_of("%(cut)s::timestamptz")} AS week
), gone AS (
    DELETE FROM reading_weeks w USING cut WHERE w.week < cut.week
), recounted AS (
    SELECT w.patient_id, w.code, w.week, count(r.*) AS readings
      FROM reading_weeks w
      JOIN cut ON w.week = cut.week
      LEFT JOIN readings r
        ON r.patient_id = w.patient_id AND r.code = w.code
       AND r.measured_at >= (w.week::timestamp AT TIME ZONE '{WEEK_ZONE}')
       AND r.measured_at < ((w.week + 7)::timestamp AT TIME ZONE '{WEEK_ZONE}')
     GROUP BY w.patient_id, w.code, w.week
), emptied AS (
    DELETE FROM reading_weeks w USING recounted c
     WHERE (w.patient_id, w.code, w.week) = (c.patient_id, c.code, c.week) AND c.readings = 0
)
UPDATE reading_weeks w SET readings = c.readings
  FROM recounted c
 WHERE (w.patient_id, w.code, w.week) = (c.patient_id, c.code, c.week) AND c.readings > 0
"""
