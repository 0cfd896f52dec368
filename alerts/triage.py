"""Each patient's current triage: red, yellow, missing data, or green.

Clinical alerts decide red and yellow; an open adherence or technical alert (a measurement
that has not come, a silent device) means we cannot say the patient is green.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from uuid import UUID

import psycopg


class Triage(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    MISSING_DATA = "missing_data"
    GREEN = "green"


def triage_of(conn: psycopg.Connection, *, patient_ids: Sequence[UUID]) -> dict[UUID, Triage]:
    rows = conn.execute(
        """
        SELECT p.id,
               bool_or(a.category = 'clinical' AND a.severity = 'red'),
               bool_or(a.category = 'clinical' AND a.severity = 'yellow'),
               bool_or(a.category <> 'clinical')
          FROM unnest(%s::uuid[]) AS p(id)
          LEFT JOIN alerts a ON a.patient_id = p.id AND a.state <> 'resolved'
         GROUP BY p.id
        """,
        (list(patient_ids),),
    ).fetchall()
    triage = {}
    for patient_id, red, yellow, missing in rows:
        if red:
            triage[patient_id] = Triage.RED
        elif yellow:
            triage[patient_id] = Triage.YELLOW
        elif missing:
            triage[patient_id] = Triage.MISSING_DATA
        else:
            triage[patient_id] = Triage.GREEN
    return triage
