"""Stored readings, as every component reads them. Ingest is the only writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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


def _as_int(patient_id: UUID) -> int:
    return patient_id.int


def claim_revisions(
    conn: psycopg.Connection, patient_ids: list[UUID]
) -> tuple[int, dict[UUID, int]]:
    """Record that this transaction changes these patients' readings (each named once);
    returns its own revision
    and the revisions it replaced (none for a patient never written before).

    The rows stay locked until the transaction ends, so two writers of one patient take turns.
    Both lock in the order their plans visit the rows; should two workers ever wait on each
    other, PostgreSQL aborts one batch, which the ingest retries.
    """
    ordered = sorted(patient_ids, key=_as_int)
    if not ordered:
        raise ValueError("no patients to claim")
    updated = conn.execute(
        "UPDATE reading_revisions SET previous = revision,"
        " revision = pg_current_xact_id()::text::bigint"
        " WHERE patient_id = ANY(%b) RETURNING patient_id, previous, revision",
        (ordered,),
    ).fetchall()
    previous = {patient: replaced for patient, replaced, _ in updated}
    new = [patient for patient in ordered if patient not in previous]
    if new:
        inserted = conn.execute(
            "INSERT INTO reading_revisions (patient_id, revision)"
            " SELECT p, pg_current_xact_id()::text::bigint FROM unnest(%b::uuid[]) AS p"
            " ON CONFLICT (patient_id) DO UPDATE SET revision = EXCLUDED.revision"
            " RETURNING revision",
            (new,),
        ).fetchone()
        assert inserted is not None
        return inserted[0], previous
    return updated[0][2], previous


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
