"""Counts per patient and Norwegian week (Monday to Sunday) that the figures read instead of
the rows they count (quality/figures.py): the readings of each measurement (`reading_weeks`)
and the days with an answered questionnaire (`answered_weeks`). A week of a patient is one row
there instead of one index entry per reading or answer. Whoever writes the rows counts them in
the same statement, one upsert per patient and week written, never one per row: ingest per
batch and a quarantine entry accepted (readings), the questionnaire route (answers);
retention counts again what it cut, and erasure deletes them (care/rights.py).
"""

from __future__ import annotations

from typing import Final

from core.clock import DISPLAY_TIMEZONE

WEEK_ZONE: Final = DISPLAY_TIMEZONE.key
"""The weeks are Norwegian ones; migration 0020 names the zone too."""


def week_of(at: str) -> str:
    return f"date_trunc('week', {at} AT TIME ZONE '{WEEK_ZONE}')::date"


COUNT_READINGS: Final = f"""
INSERT INTO reading_weeks AS w (patient_id, code, week, readings)
SELECT patient_id, code, {week_of("measured_at")}, count(*)
  FROM {{source}}
 GROUP BY 1, 2, 3
 -- In one order: two batches lock their rows in one order, so they cannot deadlock.
 ORDER BY 1, 2, 3
ON CONFLICT (week, patient_id, code) DO UPDATE SET readings = w.readings + EXCLUDED.readings
"""
"""Adds the readings of `{source}` (a relation with patient_id, code and measured_at: those
just stored, e.g. a data-modifying CTE's RETURNING) to their weeks' counts."""

COUNT_ANSWERS: Final = f"""
INSERT INTO answered_weeks AS w (patient_id, kind, week, days)
SELECT patient_id, kind, {week_of("answered_at")},
       bit_or(1 << (extract(isodow FROM answered_at AT TIME ZONE '{WEEK_ZONE}')::int - 1))
  FROM {{source}}
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
ON CONFLICT (week, patient_id, kind) DO UPDATE SET days = w.days | EXCLUDED.days
"""
"""Marks the days of the answers in `{source}` (patient_id, kind and answered_at) answered:
`days` has bit 0 for Monday to bit 6 for Sunday, so an answer given again changes nothing."""
