"""A nurse's decision about readings quarantined as `device_reassigned`.

Why: a device that moved to another patient may still upload readings measured while the
previous patient held it (a late upload), or its new holder may be backdating into the old
record. Ingest cannot tell which, so such readings wait in quarantine. The previous patient's
care team sees them and accepts each into that patient's record, where it is stored and
evaluated by the rules as any reading is (the same `after_store` hooks), or rejects it. Who
decided, when and why stays on the quarantine row, and the access log has the request.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import psycopg
from fastapi import Depends, FastAPI, Request
from psycopg.rows import class_row
from pydantic import BaseModel, StringConstraints

from care.access import Action, NotVisibleError, Permission
from care.guard import PatientRecord, guarded_router, patient_record
from core.fields import Input
from core.readings import Reading
from core.weeks import COUNT_READINGS
from ingest.store import AfterStore

Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]

# A quarantined reading awaiting review, with the patient who held its device when it was
# measured. The payload is the reading as ingest decoded it (ingest/store.py).
_AWAITING = """
SELECT q.id, q.device_id, j.p ->> 'code' AS code, (j.p ->> 'value')::float8 AS value,
       j.p ->> 'unit' AS unit, (j.p ->> 'measured_at')::timestamptz AS measured_at,
       q.received_at, q.detail, a.patient_id
  FROM quarantine q
 CROSS JOIN LATERAL (SELECT convert_from(q.payload, 'UTF8')::json AS p) j
  JOIN device_assignments a
    ON a.device_id = q.device_id
   AND a.valid_from <= (j.p ->> 'measured_at')::timestamptz
   AND (a.valid_to IS NULL OR a.valid_to > (j.p ->> 'measured_at')::timestamptz)
 WHERE q.reason = 'device_reassigned' AND q.decision IS NULL
"""


@dataclass(frozen=True, slots=True)
class AwaitingReview:
    id: int
    device_id: str
    code: str
    value: float
    unit: str
    measured_at: datetime
    received_at: datetime
    detail: str
    patient_id: UUID


class AwaitingReviewOut(BaseModel):
    id: int
    device_id: str
    code: str
    value: float
    unit: str
    measured_at: datetime
    received_at: datetime
    detail: str


class DecisionIn(Input):
    note: Note


class DecisionOut(BaseModel):
    id: int
    decision: Literal["accepted", "rejected"]
    stored: bool
    """Accepted and stored; false when the record already held a reading of that device,
    measurement and time."""


def awaiting_review(conn: psycopg.Connection, *, patient_id: UUID) -> list[AwaitingReview]:
    """The patient's quarantined readings that wait for a decision, oldest measured first."""
    with conn.cursor(row_factory=class_row(AwaitingReview)) as cur:
        return cur.execute(
            _AWAITING + " AND a.patient_id = %s ORDER BY measured_at, q.id", (patient_id,)
        ).fetchall()


def _claim(conn: psycopg.Connection, *, entry_id: int, patient_id: UUID) -> AwaitingReview:
    """The entry, locked against a second decision; not found unless it is this patient's."""
    with conn.cursor(row_factory=class_row(AwaitingReview)) as cur:
        entry = cur.execute(_AWAITING + " AND q.id = %s FOR UPDATE OF q", (entry_id,)).fetchone()
    if entry is None or entry.patient_id != patient_id:
        raise NotVisibleError
    return entry


def _decide(
    conn: psycopg.Connection, *, entry_id: int, decision: str, by: UUID, note: str, now: datetime
) -> None:
    conn.execute(
        "UPDATE quarantine SET decision = %s, decided_by = %s, decided_at = %s,"
        " decision_note = %s WHERE id = %s",
        (decision, by, now, note, entry_id),
    )


_ACCEPT = f"""
WITH stored AS (
    INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, received_at)
    SELECT device_id, %s, %s, %s, %s, %s, received_at FROM quarantine WHERE id = %s
    ON CONFLICT DO NOTHING
    RETURNING patient_id, code, measured_at, received_at
), counted AS ({COUNT_READINGS.format(source="stored")})
SELECT received_at FROM stored
"""


def do_accept(
    conn: psycopg.Connection,
    *,
    entry_id: int,
    patient_id: UUID,
    by: UUID,
    note: str,
    now: datetime,
    after_store: Sequence[AfterStore],
) -> bool:
    """Store the reading for the patient who held the device then, and run the hooks (the
    rules) on it, in the caller's transaction; whether it was stored (not already there)."""
    entry = _claim(conn, entry_id=entry_id, patient_id=patient_id)
    row = conn.execute(
        _ACCEPT, (entry.code, entry.measured_at, patient_id, entry.value, entry.unit, entry_id)
    ).fetchone()
    _decide(conn, entry_id=entry_id, decision="accepted", by=by, note=note, now=now)
    if row is None:
        return False
    stored = [
        Reading(
            patient_id, entry.device_id, entry.code, entry.measured_at, entry.value, entry.unit,
            received_at=row[0],
        )
    ]  # fmt: skip
    for hook in after_store:
        hook(conn, stored)
    return True


def do_reject(
    conn: psycopg.Connection,
    *,
    entry_id: int,
    patient_id: UUID,
    by: UUID,
    note: str,
    now: datetime,
) -> None:
    """Keep the reading out of the record; the quarantine row keeps it and why."""
    _claim(conn, entry_id=entry_id, patient_id=patient_id)
    _decide(conn, entry_id=entry_id, decision="rejected", by=by, note=note, now=now)


def bind_review_hooks(app: FastAPI, after_store: Sequence[AfterStore]) -> None:
    """The hooks an accepted reading goes through: the same rules as any stored reading."""
    app.state.review_hooks = tuple(after_store)


def _review_hooks(request: Request) -> tuple[AfterStore, ...]:
    hooks = request.app.state.review_hooks
    assert isinstance(hooks, tuple), "the app factory binds the review hooks"
    return hooks


router = guarded_router(tags=["ingest"])

Hooks = Annotated[tuple[AfterStore, ...], Depends(_review_hooks)]
ReadQuarantine = Annotated[
    PatientRecord, patient_record(Permission.REVIEW_READINGS, resource="quarantine")
]
Accept = Annotated[
    PatientRecord,
    patient_record(Permission.REVIEW_READINGS, resource="quarantine:accept", action=Action.UPDATE),
]
Reject = Annotated[
    PatientRecord,
    patient_record(Permission.REVIEW_READINGS, resource="quarantine:reject", action=Action.UPDATE),
]


@router.get("/patients/{patient_id}/quarantine")
def list_awaiting_review(record: ReadQuarantine) -> list[AwaitingReviewOut]:
    """Readings measured while this patient held a device that is someone else's now:
    each waits for a decision."""
    entries = awaiting_review(record.conn, patient_id=record.patient_id)
    return [AwaitingReviewOut.model_validate(entry, from_attributes=True) for entry in entries]


@router.post("/patients/{patient_id}/quarantine/{entry_id}/accept")
def accept(record: Accept, hooks: Hooks, entry_id: int, body: DecisionIn) -> DecisionOut:
    """Store the reading in this patient's record, where the rules evaluate it."""
    stored = do_accept(
        record.conn,
        entry_id=entry_id,
        patient_id=record.patient_id,
        by=record.principal.uuid,
        note=body.note,
        now=record.now,
        after_store=hooks,
    )
    return DecisionOut(id=entry_id, decision="accepted", stored=stored)


@router.post("/patients/{patient_id}/quarantine/{entry_id}/reject")
def reject(record: Reject, entry_id: int, body: DecisionIn) -> DecisionOut:
    """Keep the reading out of this patient's record."""
    do_reject(
        record.conn,
        entry_id=entry_id,
        patient_id=record.patient_id,
        by=record.principal.uuid,
        note=body.note,
        now=record.now,
    )
    return DecisionOut(id=entry_id, decision="rejected", stored=False)
