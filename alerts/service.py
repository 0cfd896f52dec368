"""Queries over alerts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    patient_id: UUID
    rule_id: str
    severity: str
    state: str
    code: str | None
    direction: str | None
    last_value: float | None
    first_measured_at: datetime
    last_measured_at: datetime
    occurrences: int
    updated_at: datetime


def unresolved_alerts(conn: psycopg.Connection, *, patient_ids: Sequence[UUID]) -> list[Alert]:
    """The patients' alerts not yet resolved, red before yellow, newest first."""
    with conn.cursor(row_factory=class_row(Alert)) as cur:
        return cur.execute(
            """
            SELECT id, patient_id, rule_id, severity, state, code, direction, last_value,
                   first_measured_at, last_measured_at, occurrences, updated_at
            FROM alerts
            WHERE state <> 'resolved' AND patient_id = ANY(%(patients)s)
            ORDER BY severity = 'red' DESC, updated_at DESC
            """,
            {"patients": list(patient_ids)},
        ).fetchall()
