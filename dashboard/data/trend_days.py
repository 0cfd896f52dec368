"""Each patient's readings per measurement and Norwegian day: count, lowest, median, highest,
sum and sum of squares. The patient page draws ranges longer than a month from these, so a
year is a few hundred rows whatever the number of readings.

Ingest never writes them (its throughput is a target of its own): whole weeks before the
current one are rolled up from the readings when a page first reads them, and kept
(`reading_days`, migration 0022). With each rolled-up week goes the number of readings it
saw (`reading_day_weeks`); ingest already counts every stored reading per week
(`reading_weeks`, core/weeks.py), so a week whose count has changed since - a reading that
arrived late for a closed day, or retention - is rolled up again on the next read, without
ingest doing anything more. The current week is always summed from the readings themselves:
they are few, and they still change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from core.weeks import WEEK_ZONE

DAY_SUMMARY: Final = f"""
    r.code, (r.measured_at AT TIME ZONE '{WEEK_ZONE}')::date AS day, count(*)::int AS readings,
    min(r.value) AS low, percentile_cont(0.5) WITHIN GROUP (ORDER BY r.value) AS median,
    max(r.value) AS high, sum(r.value) AS total, sum(r.value * r.value) AS squares
"""
"""One day of one measurement, from the readings (the same in the rollup and live)."""


@dataclass(frozen=True, slots=True)
class DaySummary:
    code: str
    day: date
    readings: int
    low: float
    median: float
    high: float
    total: float
    squares: float
    """The sum of the values' squares: with `total` and `readings`, a baseline's spread."""


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def day_summaries(
    conn: psycopg.Connection, *, patient_id: UUID, first: date, last: date, today: date
) -> list[DaySummary]:
    """The patient's days from `first` to `last` inclusive, by day then code; days without a
    reading are absent. Rolls up (and keeps) the closed weeks it reads that are missing or
    stale, so it needs a transaction that may write."""
    current_week = monday(today)
    kept_until = min(current_week, last + timedelta(days=1))
    found: list[DaySummary] = []
    with conn.cursor(row_factory=class_row(DaySummary)) as cur:
        if first < kept_until:
            _roll_up_stale_weeks(conn, patient_id=patient_id, first=first, until=kept_until)
            found += cur.execute(
                "SELECT code, day, readings, low, median, high, total, squares"
                " FROM reading_days WHERE patient_id = %s AND day >= %s AND day < %s"
                " ORDER BY day, code",
                (patient_id, first, kept_until),
            ).fetchall()
        if last >= current_week:
            found += cur.execute(
                f"SELECT {DAY_SUMMARY} FROM readings r WHERE patient_id = %(patient)s"
                f" AND measured_at >= (%(first)s::timestamp AT TIME ZONE '{WEEK_ZONE}')"
                f" AND measured_at < (%(until)s::timestamp AT TIME ZONE '{WEEK_ZONE}')"
                " GROUP BY 1, 2 ORDER BY 2, 1",
                {
                    "patient": patient_id,
                    "first": max(first, current_week),
                    "until": last + timedelta(days=1),
                },
            ).fetchall()
    return found


def _roll_up_stale_weeks(
    conn: psycopg.Connection, *, patient_id: UUID, first: date, until: date
) -> None:
    """Roll up again each week from `first`'s to before `until` whose readings, as ingest
    counted them, are not those its rollup saw (or that has none yet)."""
    bounds = {"patient": patient_id, "from": monday(first), "until": until}
    stale = conn.execute(
        """
        SELECT code, week, c.readings
          FROM (SELECT code, week, readings FROM reading_weeks
                 WHERE patient_id = %(patient)s AND week >= %(from)s AND week < %(until)s) c
          FULL JOIN (SELECT code, week, readings FROM reading_day_weeks
                      WHERE patient_id = %(patient)s AND week >= %(from)s AND week < %(until)s
                    ) s USING (code, week)
         WHERE c.readings IS DISTINCT FROM s.readings
         ORDER BY week, code
        """,
        bounds,
    ).fetchall()
    if not stale:
        return
    weeks = {
        "patient": patient_id,
        "codes": [code for code, _week, _count in stale],
        "weeks": [week for _code, week, _count in stale],
        "counts": [count for _code, _week, count in stale],
    }
    conn.execute(
        """
        DELETE FROM reading_days d
         USING unnest(%(codes)s::text[], %(weeks)s::date[]) AS s(code, week)
         WHERE d.patient_id = %(patient)s AND d.code = s.code
           AND d.day >= s.week AND d.day < s.week + 7
        """,
        weeks,
    )
    conn.execute(
        f"""
        INSERT INTO reading_days AS d
               (code, day, readings, low, median, high, total, squares, patient_id)
        SELECT {DAY_SUMMARY}, %(patient)s
          FROM unnest(%(codes)s::text[], %(weeks)s::date[]) AS s(code, week)
          JOIN readings r
            ON r.patient_id = %(patient)s AND r.code = s.code
           AND r.measured_at >= (s.week::timestamp AT TIME ZONE '{WEEK_ZONE}')
           AND r.measured_at < ((s.week + 7)::timestamp AT TIME ZONE '{WEEK_ZONE}')
         GROUP BY 1, 2 ORDER BY 2, 1
        ON CONFLICT (patient_id, code, day) DO UPDATE
           SET readings = EXCLUDED.readings, low = EXCLUDED.low, median = EXCLUDED.median,
               high = EXCLUDED.high, total = EXCLUDED.total, squares = EXCLUDED.squares
        """,
        weeks,
    )
    conn.execute(
        """
        DELETE FROM reading_day_weeks w
         USING unnest(%(codes)s::text[], %(weeks)s::date[]) AS s(code, week)
         WHERE w.patient_id = %(patient)s AND w.code = s.code AND w.week = s.week
        """,
        weeks,
    )
    conn.execute(
        """
        INSERT INTO reading_day_weeks (patient_id, code, week, readings)
        SELECT %(patient)s, code, week, readings
          FROM unnest(%(codes)s::text[], %(weeks)s::date[], %(counts)s::int[])
               AS s(code, week, readings)
         WHERE readings IS NOT NULL
        ON CONFLICT (patient_id, code, week) DO UPDATE SET readings = EXCLUDED.readings
        """,
        weeks,
    )
