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
from core.weeks import COUNT_ANSWERS

# The day answered is marked in its week (core.weeks, for the figures) in the same statement.
_STORE = f"""
WITH stored AS (
    INSERT INTO questionnaire_responses (patient_id, kind, answered_at, answers, total,
                                         received_at, answered_by_relative_id)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (patient_id, kind, answered_at) DO UPDATE
    SET answers = EXCLUDED.answers, total = EXCLUDED.total,
        answered_by_relative_id = EXCLUDED.answered_by_relative_id
    RETURNING id, patient_id, kind, answered_at
), counted AS ({COUNT_ANSWERS.format(source="stored")})
SELECT id FROM stored
"""


def do_record_answers(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    kind: str,
    answered_at: datetime,
    answers: Mapping[str, Any],
    total: int | None,
    now: datetime,
    answered_by_relative: UUID | None = None,
) -> int:
    """Store one questionnaire (a second one of the same kind and time replaces the first)
    and evaluate the patient at its time; returns its id. `answered_by_relative`: the relative
    who filled it in on the patient's behalf (care/proxies.py), kept with the answers."""
    row = conn.execute(
        _STORE,
        (patient_id, kind, answered_at, Jsonb(dict(answers)), total, now, answered_by_relative),
    ).fetchone()
    assert row is not None
    do_evaluate(conn, moments={patient_id: [answered_at]}, now=now)
    return int(row[0])
