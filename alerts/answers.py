"""A patient's questionnaire answers, recorded and evaluated at once by every rule (symptom
gating can raise a simultaneous finding). The API's route and the simulator record them here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from alerts.engine import do_evaluate


def do_record_answers(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    kind: str,
    answered_at: datetime,
    answers: Mapping[str, Any],
    total: int | None,
    now: datetime,
) -> int:
    """Store one questionnaire (a second one of the same kind and time replaces the first)
    and evaluate the patient at its time; returns its id."""
    row = conn.execute(
        "INSERT INTO questionnaire_responses (patient_id, kind, answered_at, answers,"
        " total, received_at) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (patient_id, kind, answered_at) DO UPDATE"
        " SET answers = EXCLUDED.answers, total = EXCLUDED.total RETURNING id",
        (patient_id, kind, answered_at, Jsonb(dict(answers)), total, now),
    ).fetchone()
    assert row is not None
    do_evaluate(conn, moments={patient_id: [answered_at]}, now=now)
    return int(row[0])
