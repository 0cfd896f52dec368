"""Stored readings, as every component reads them. Ingest is the only writer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from core.catalog import MEASUREMENTS


@dataclass(slots=True)
class Reading:
    """A stored reading. Plain, not frozen: ingest makes one per stored reading, and a frozen
    dataclass costs three times as much to create."""

    patient_id: UUID
    device_id: str
    code: str
    measured_at: datetime
    value: float
    unit: str
    received_at: datetime | None = field(default=None, compare=False)
    """When ingest received it; set on readings ingest has just stored (rules order by it)."""


CHAIN = 8
"""Claims kept per patient (`reading_revisions.claims`)."""

_CLAIM = f"""
WITH batch AS (
    SELECT * FROM unnest(%(patients)b::uuid[], %(firsts)b::timestamptz[],
                         %(lasts)b::timestamptz[], %(known)b::int8[])
             AS b(patient_id, first, last, known)
), me AS (SELECT pg_current_xact_id()::text::bigint AS id), updated AS (
    UPDATE reading_revisions r
       SET claims = (r.claims || me.id)[greatest(1, cardinality(r.claims) - {CHAIN - 2}):],
           firsts = (r.firsts || b.first)[greatest(1, cardinality(r.firsts) - {CHAIN - 2}):],
           lasts = (r.lasts || b.last)[greatest(1, cardinality(r.lasts) - {CHAIN - 2}):]
      FROM batch b, me
     WHERE r.patient_id = b.patient_id
    RETURNING r.patient_id, r.claims, r.firsts, r.lasts, b.known
), inserted AS (
    INSERT INTO reading_revisions (patient_id, claims, firsts, lasts)
    SELECT b.patient_id, ARRAY[me.id], ARRAY[b.first], ARRAY[b.last]
      FROM batch b, me
     WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.patient_id = b.patient_id)
    ON CONFLICT (patient_id) DO UPDATE
       SET claims = '{{}}', firsts = '{{}}', lasts = '{{}}'
)
SELECT u.patient_id, k.at = cardinality(u.claims) - 1,
       (SELECT min(f) FROM unnest(u.firsts[k.at + 1:cardinality(u.claims) - 1]) AS f),
       (SELECT max(l) FROM unnest(u.lasts[k.at + 1:cardinality(u.claims) - 1]) AS l)
  FROM updated u, LATERAL (SELECT array_position(u.claims, u.known) AS at) k
 WHERE k.at IS NOT NULL
"""


class Claimed(NamedTuple):
    """What a batch learnt about one patient whose copy it already held."""

    current: bool
    """No other batch stored readings for the patient since the copy's own."""
    first: datetime | None
    last: datetime | None
    """Otherwise: the measured span of what the others stored since."""


def claim_revisions(
    conn: psycopg.Connection,
    spans: Mapping[UUID, tuple[datetime, datetime]],
    known: Mapping[UUID, int],
) -> tuple[int, dict[UUID, Claimed]]:
    """Record that this transaction stores readings measured in [first, last] for each patient;
    returns its own id and, for each patient whose `known` transaction (the one that last
    updated a kept copy) is still among the last claims, what was stored after it.

    A patient left out has no usable copy: it was never written, or too many batches came
    since, or its limits, plan or answers changed, or that transaction rolled back. The rows
    stay locked until the transaction ends, so two writers of one patient take turns; should
    two ever wait on each other, PostgreSQL aborts one batch, which the ingest retries.
    """
    if not spans:
        raise ValueError("no patients to claim")
    patients = list(spans)
    parameters = {
        "patients": patients,
        "firsts": [spans[p][0] for p in patients],
        "lasts": [spans[p][1] for p in patients],
        "known": [known.get(p) for p in patients],
    }
    found: dict[UUID, Claimed] = {}
    for patient, current, first, last in conn.execute(_CLAIM, parameters, binary=True):
        found[patient] = Claimed(current, first, last)
    row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    assert row is not None
    return row[0], found


def readings_for_patient(
    conn: psycopg.Connection, *, patient_id: UUID, since: datetime, until: datetime | None = None
) -> list[Reading]:
    """A patient's readings in [since, until), oldest first."""
    with conn.cursor(row_factory=class_row(Reading)) as cur:
        return cur.execute(
            """
            SELECT patient_id, device_id, code, measured_at, value, unit
            FROM readings
            WHERE patient_id = %(patient_id)s
              AND measured_at >= %(since)s
              AND (%(until)s::timestamptz IS NULL OR measured_at < %(until)s)
            ORDER BY measured_at
            """,
            {"patient_id": patient_id, "since": since, "until": until},
        ).fetchall()


def latest_readings(conn: psycopg.Connection, *, patient_ids: list[UUID]) -> list[Reading]:
    """The newest reading of each catalog measurement for each of the patients.

    One index probe per (patient, measurement) keeps this fast however long the history is.
    """
    with conn.cursor(row_factory=class_row(Reading)) as cur:
        return cur.execute(
            """
            SELECT r.patient_id, r.device_id, r.code, r.measured_at, r.value, r.unit
            FROM unnest(%(patient_ids)s::uuid[]) AS p(id)
            CROSS JOIN unnest(%(codes)s::text[]) AS c(code)
            CROSS JOIN LATERAL (
                SELECT * FROM readings
                WHERE patient_id = p.id AND code = c.code
                ORDER BY measured_at DESC
                LIMIT 1
            ) AS r
            ORDER BY r.patient_id, r.code
            """,
            {"patient_ids": patient_ids, "codes": [m.code for m in MEASUREMENTS]},
        ).fetchall()
