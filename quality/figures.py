"""The figures per unit and condition over a period, with the previous period beside it and a
trend per week: SQL collects facts without names (one row per patient's stay, alert,
notification, hand-over), pandas counts them per cell. The API, the dashboard's page and both
CSV downloads all come from `load_figures`, so they cannot disagree; docs/figures.md defines
each figure (numerator, denominator, exclusions) as this module computes it.

Privacy: no name, identity or free text leaves this module; patient ids are used only to
count patients, and a cell of fewer than `SMALL_CELL` patients is suppressed (every value of
it withheld), so a figure cannot point at one person. Viewing the figures leaves an
access-log row like every other read of patient data.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg

from care.access import Action, Interface, Permission, Reason, authorize, do_log_access
from core.auth import Principal
from core.clock import DISPLAY_TIMEZONE

SMALL_CELL: Final = 5
"""A cell with fewer patients than this shows no value at all (docs/figures.md)."""
ALL: Final = "all"
"""The unit or condition of a cell that spans every unit or condition."""
CONDITIONS: Final = (ALL, "copd", "heart_failure")
MAX_DAYS: Final = 366
FIGURES_RESOURCE: Final = "figures"
WORK_MEM: Final = "64MB"
"""PostgreSQL's sort memory for the figures' queries (bench/figures.py: 5,000 patients)."""


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    unit: str
    """count, percent, per_100_patient_days, minutes, hours, patients_per_nurse or days."""


FIGURES: Final = tuple(
    Figure(key, unit)
    for key, unit in (
        ("patients_followed", "count"),
        ("patients_new", "count"),
        ("patients_ended", "count"),
        ("patient_days", "days"),
        ("adherence", "percent"),
        ("questionnaire_completion", "percent"),
        ("alerts", "per_100_patient_days"),
        ("alerts_red", "per_100_patient_days"),
        ("alerts_yellow", "per_100_patient_days"),
        ("alerts_clinical", "per_100_patient_days"),
        ("alerts_adherence", "per_100_patient_days"),
        ("alerts_technical", "per_100_patient_days"),
        ("acknowledge_minutes_median", "minutes"),
        ("acknowledge_minutes_p90", "minutes"),
        ("resolve_minutes_median", "minutes"),
        ("resolve_minutes_p90", "minutes"),
        ("alerts_outside_opening_hours", "percent"),
        ("escalations_to_backup", "count"),
        ("escalations_to_on_call", "count"),
        ("notifications_delivered", "count"),
        ("notifications_retried", "count"),
        ("notifications_dead", "count"),
        ("reminders_sent", "count"),
        ("reminders_followed", "count"),
        ("handovers_proposed", "count"),
        ("handovers_accepted", "count"),
        ("handovers_declined", "count"),
        ("handover_accept_hours_median", "hours"),
        ("patients_per_nurse", "patients_per_nurse"),
    )
)
FIGURE_KEYS: Final = tuple(figure.key for figure in FIGURES)


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in Norwegian time, `first` to `last` inclusive."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError("a period ends on or after the day it begins")
        if self.days > MAX_DAYS:
            raise ValueError(f"a period is at most {MAX_DAYS} days")

    @classmethod
    def default(cls, now: datetime) -> Period:
        """The last four whole weeks, Monday to Sunday, before the current one."""
        today = now.astimezone(DISPLAY_TIMEZONE).date()
        last = today - timedelta(days=today.weekday() + 1)
        return cls(last - timedelta(days=27), last)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), DISPLAY_TIMEZONE)

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.last + timedelta(days=1), time(), DISPLAY_TIMEZONE)

    def previous(self) -> Period:
        """As many days, just before."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    def weeks(self) -> list[Period]:
        """Seven-day blocks from the first day; the last one may be shorter."""
        return [
            Period(first, min(first + timedelta(days=6), self.last))
            for first in (self.first + timedelta(days=d) for d in range(0, self.days, 7))
        ]


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures of one period: `table` per unit and condition, both periods (column
    ``period``: current or previous), `weekly` the current period per week (column ``week``,
    the block's first day)."""

    period: Period
    previous: Period
    units: Mapping[str, str]
    """Unit id (or "all") to the unit's name, in display order."""
    table: pd.DataFrame
    weekly: pd.DataFrame


COLUMNS: Final = (
    "period",
    "week",
    "unit_id",
    "unit",
    "condition",
    "figure",
    "value",
    "numerator",
    "denominator",
    "suppressed",
)


def load_figures(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    period: Period,
    now: datetime,
    interface: Interface,
    action: Action = Action.READ,
) -> Figures:
    """The one check (care.access, `Permission.READ_FIGURES`), the access-log row (no patient
    named: the figures hold none) and the figures of `period` and the one before it."""
    authorize(conn, principal=principal, permission=Permission.READ_FIGURES, now=now)
    do_log_access(
        conn,
        principal=principal,
        patient_ids=[],
        resource=FIGURES_RESOURCE,
        action=action,
        interface=interface,
        reason=Reason.ADMINISTRATION,
        now=now,
    )
    previous = period.previous()
    found, nurses = _aggregates(conn, period)
    units = _units(conn, found)
    periods = {"current": period, "previous": previous}
    table = _table(found, nurses, units, periods=periods, weekly=False)
    weekly = _table(found, nurses, units, periods=periods, weekly=True)
    return Figures(period=period, previous=previous, units=units, table=table, weekly=weekly)


# --- SQL aggregates: per period (and week), unit and condition; no names ----------------

_BLOCKS: Final = """
    blocks AS (
        -- The weeks of the previous and the current period, in order and contiguous: block n
        -- is width_bucket's bucket n over %(bounds)s.
        -- counted_week: the block's Monday when it is a whole Norwegian week (reading_weeks).
        SELECT b.n, b.s, b.e, b.period, b.week, b.period_end, b.counted_week
          FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[], %(periods)s::text[],
                      %(weeks)s::int[], %(period_ends)s::timestamptz[],
                      %(counted_weeks)s::date[])
               WITH ORDINALITY AS b(s, e, period, week, period_end, counted_week, n)
    )
"""

_CONDITIONS: Final = """
    -- Every fact counts under each of its patient's conditions and under 'all'.
    CROSS JOIN LATERAL unnest(p.conditions || ARRAY['all']) AS c(condition)
"""

_CELLS: Final = """
    -- The grouping sets add the whole period (week -1) and all units ('all').
    GROUP BY GROUPING SETS ((b.period, b.week, {unit}, c.condition),
                            (b.period, b.week, c.condition),
                            (b.period, {unit}, c.condition),
                            (b.period, c.condition))
"""

_CELL_COLUMNS: Final = """
    b.period,
    CASE WHEN GROUPING(b.week) = 1 THEN -1 ELSE b.week END AS week,
    CASE WHEN GROUPING({unit}) = 1 THEN 'all' ELSE {unit}::text END AS unit_id,
    c.condition
"""


def _grouped(sql: str, unit: str) -> str:
    return sql.format(
        columns=_CELL_COLUMNS.format(unit=unit),
        conditions=_CONDITIONS,
        cells=_CELLS.format(unit=unit),
        blocks=_BLOCKS,
    )


_FOLLOWED_SQL: Final = _grouped(
    """
    WITH {blocks},
    stays AS MATERIALIZED (
        -- Each unit's responsibility for a patient that overlaps the two periods; whether the
        -- patient came from (or went on to) another unit tells a hand-over from a start.
        SELECT r.organisation_id AS unit_id, r.patient_id, p.conditions, r.valid_from,
               coalesce(r.valid_to, 'infinity') AS valid_to,
               coalesce(plan.since, 'infinity') AS plan_since,
               EXISTS (SELECT 1 FROM patient_responsibility q
                        WHERE q.patient_id = r.patient_id AND q.role = 'responsible'
                          AND q.valid_from < r.valid_from AND q.valid_to = r.valid_from)
                   AS came_from_unit,
               EXISTS (SELECT 1 FROM patient_responsibility q
                        WHERE q.patient_id = r.patient_id AND q.role = 'responsible'
                          AND q.valid_from = r.valid_to) AS went_to_unit,
               count(*) OVER (PARTITION BY r.patient_id) = 1 AS single
          FROM patient_responsibility r
          JOIN patients p ON p.id = r.patient_id
          LEFT JOIN (SELECT v.patient_id, min(v.changed_at) AS since FROM care_plan_versions v
                      GROUP BY v.patient_id) plan ON plan.patient_id = r.patient_id
         WHERE r.role = 'responsible' AND r.valid_from < %(end)s
           AND (r.valid_to IS NULL OR r.valid_to > %(start)s)
    ),
    ranges AS MATERIALIZED (
        -- Per stay, scheduled measurement and week: the time followed since the care plan
        -- began, and one measurement expected per interval of the plan in it.
        SELECT sm.patient_id, sm.valid_from, sm.code, b.n, g.lo, g.hi, b.counted_week,
               b.counted_week IS NOT NULL AND g.lo = b.s AND g.hi = b.e AS whole_week,
               -- In float8: exact for whole seconds, and far cheaper than numeric.
               floor(date_part('epoch', g.hi - g.lo) / (3600 * sm.every_hours))::int
                   AS expected
          -- OFFSET 0 keeps the stays joined to their measurements (a hash join) before the
          -- weeks, instead of one index lookup per stay and week.
          FROM (SELECT st.patient_id, st.valid_from, st.valid_to, st.plan_since, m.code,
                       m.every_hours
                  FROM stays st JOIN care_plan_measurements m ON m.patient_id = st.patient_id
                OFFSET 0) sm
          JOIN blocks b
            ON sm.valid_from < b.e AND sm.valid_to > b.s
           AND sm.plan_since < least(sm.valid_to, b.e)
          CROSS JOIN LATERAL (SELECT greatest(sm.valid_from, b.s, sm.plan_since) AS lo,
                                     least(sm.valid_to, b.e) AS hi) g
    ),
    schedule AS (
        -- At most as many readings count as were expected. A whole Norwegian week's readings
        -- are one row of reading_weeks (kept at ingest); only a part of a week (a stay or
        -- a plan beginning or ending in it, a period not starting on a Monday) counts the
        -- readings themselves.
        SELECT x.patient_id, x.valid_from, x.n, sum(x.expected) AS expected,
               sum(least(x.expected, x.readings)) AS received
          FROM (SELECT g.patient_id, g.valid_from, g.n, g.expected,
                       coalesce(w.readings, 0) AS readings
                  FROM ranges g
                  LEFT JOIN (SELECT * FROM reading_weeks
                              WHERE week >= %(first_day)s AND week <= %(last_day)s) w
                    ON w.patient_id = g.patient_id AND w.code = g.code
                   AND w.week = g.counted_week
                 WHERE g.whole_week
                UNION ALL
                SELECT g.patient_id, g.valid_from, g.n, g.expected,
                       (SELECT count(*) FROM readings r
                         WHERE r.patient_id = g.patient_id AND r.code = g.code
                           AND r.measured_at >= g.lo AND r.measured_at < g.hi)
                  FROM ranges g
                 WHERE NOT g.whole_week) x
         GROUP BY x.patient_id, x.valid_from, x.n
    ),
    answered_in_part AS (
        -- Days with an answered daily check in the part of a week a stay covers, where it
        -- is not a whole Norwegian week (a stay beginning or ending in it, a period not
        -- starting on a Monday): the answers themselves.
        SELECT st.patient_id, st.valid_from, b.n,
               count(DISTINCT (q.answered_at AT TIME ZONE %(tz)s)::date) AS days
          FROM stays st
          JOIN blocks b
            ON st.valid_from < b.e AND st.valid_to > b.s
           AND NOT (b.counted_week IS NOT NULL AND st.valid_from <= b.s AND st.valid_to >= b.e)
          JOIN questionnaire_responses q
            ON q.patient_id = st.patient_id AND q.kind = 'daily_symptoms'
           AND q.answered_at >= greatest(st.valid_from, b.s)
           AND q.answered_at < least(st.valid_to, b.e)
         GROUP BY st.patient_id, st.valid_from, b.n
    ),
    slices AS MATERIALIZED (
        -- A stay cut at the week boundaries, with what was expected of it and what came.
        SELECT st.unit_id, st.patient_id, st.conditions, st.single, b.period, b.week,
               extract(epoch FROM least(st.valid_to, b.e) - greatest(st.valid_from, b.s))
                   / 86400 AS days,
               -- The stay's first week in the period.
               b.week = 0 OR st.valid_from >= b.s AS first,
               st.valid_from >= b.s AND st.valid_from < b.e AS began,
               st.valid_from >= b.s AND st.valid_from < b.e AND NOT st.came_from_unit
                   AS began_in_service,
               st.valid_to > b.s AND st.valid_to <= b.e AS ended,
               st.valid_to > b.s AND st.valid_to <= b.e AND NOT st.went_to_unit
                   AS ended_from_service,
               st.valid_to >= b.period_end AND b.e = b.period_end AS at_end,
               coalesce(bit_count(a.days::bit(7)), q.days, 0) AS answered,
               coalesce(sched.expected, 0) AS expected, coalesce(sched.received, 0) AS received
          FROM stays st
          JOIN blocks b ON st.valid_from < b.e AND st.valid_to > b.s
          CROSS JOIN LATERAL (SELECT b.counted_week IS NOT NULL AND st.valid_from <= b.s
                                     AND st.valid_to >= b.e AS whole_week) g
          -- Days with an answered daily check: a whole Norwegian week's are one row of
          -- answered_weeks.
          LEFT JOIN (SELECT * FROM answered_weeks
                      WHERE kind = 'daily_symptoms'
                        AND week >= %(first_day)s AND week <= %(last_day)s) a
            ON g.whole_week AND a.patient_id = st.patient_id AND a.week = b.counted_week
          LEFT JOIN answered_in_part q
            ON NOT g.whole_week AND q.patient_id = st.patient_id
           AND q.valid_from = st.valid_from AND q.n = b.n
          LEFT JOIN schedule sched
            ON sched.patient_id = st.patient_id AND sched.valid_from = st.valid_from
           AND sched.n = b.n
    ),
    weekly_sums AS (
        -- Per week, unit and set of conditions first (numeric, exact in any order), then
        -- added up into the coarser cells below. A patient with one stay in the two periods
        -- (nearly all) has one slice per week, begins, ends and is there at the end at most
        -- once a period, so counting their slices counts them.
        SELECT sl.period, sl.week, sl.unit_id, sl.conditions,
               count(*) FILTER (WHERE sl.single) AS patients_in_week,
               count(*) FILTER (WHERE sl.single AND sl.first) AS patients_in_period,
               count(*) FILTER (WHERE sl.single AND sl.began) AS new_in_unit,
               count(*) FILTER (WHERE sl.single AND sl.began_in_service) AS new_to_service,
               count(*) FILTER (WHERE sl.single AND sl.ended) AS ended_in_unit,
               count(*) FILTER (WHERE sl.single AND sl.ended_from_service)
                   AS ended_from_service,
               count(*) FILTER (WHERE sl.single AND sl.at_end) AS at_end,
               sum(sl.days) AS days,
               sum(floor(sl.days)) AS questionnaires,
               sum(least(sl.answered, floor(sl.days))) AS answered,
               sum(sl.expected) AS expected,
               sum(sl.received) AS received
          FROM slices sl
         GROUP BY sl.period, sl.week, sl.unit_id, sl.conditions
    ),
    summed AS (
        -- The grouping sets add the whole period (week -1) and all units (NULL).
        SELECT s.period, CASE WHEN GROUPING(s.week) = 1 THEN -1 ELSE s.week END AS week,
               s.unit_id, s.conditions,
               CASE WHEN GROUPING(s.week) = 1 THEN sum(s.patients_in_period)
                    ELSE sum(s.patients_in_week) END AS patients,
               sum(s.new_in_unit) AS new_in_unit, sum(s.new_to_service) AS new_to_service,
               sum(s.ended_in_unit) AS ended_in_unit,
               sum(s.ended_from_service) AS ended_from_service, sum(s.at_end) AS at_end,
               sum(s.days) AS days, sum(s.questionnaires) AS questionnaires,
               sum(s.answered) AS answered, sum(s.expected) AS expected,
               sum(s.received) AS received
          FROM weekly_sums s
         GROUP BY GROUPING SETS ((s.period, s.week, s.unit_id, s.conditions),
                                 (s.period, s.week, s.conditions),
                                 (s.period, s.unit_id, s.conditions),
                                 (s.period, s.conditions))
    ),
    per_patient AS (
        -- A patient with several stays (a hand-over, a new start) counts once per cell: one
        -- row per such patient and cell.
        SELECT sl.period, CASE WHEN GROUPING(sl.week) = 1 THEN -1 ELSE sl.week END AS week,
               sl.unit_id, sl.conditions,
               bool_or(sl.began) AS began,
               bool_or(sl.began_in_service) AS began_in_service,
               bool_or(sl.ended) AS ended,
               bool_or(sl.ended_from_service) AS ended_from_service,
               bool_or(sl.at_end) AS at_end
          FROM slices sl
         WHERE NOT sl.single
         GROUP BY GROUPING SETS ((sl.period, sl.week, sl.unit_id, sl.patient_id, sl.conditions),
                                 (sl.period, sl.week, sl.patient_id, sl.conditions),
                                 (sl.period, sl.unit_id, sl.patient_id, sl.conditions),
                                 (sl.period, sl.patient_id, sl.conditions))
    ),
    counted AS (
        SELECT pp.period, pp.week, pp.unit_id, pp.conditions,
               count(*) AS patients,
               count(*) FILTER (WHERE pp.began) AS new_in_unit,
               count(*) FILTER (WHERE pp.began_in_service) AS new_to_service,
               count(*) FILTER (WHERE pp.ended) AS ended_in_unit,
               count(*) FILTER (WHERE pp.ended_from_service) AS ended_from_service,
               count(*) FILTER (WHERE pp.at_end) AS at_end
          FROM per_patient pp
         GROUP BY pp.period, pp.week, pp.unit_id, pp.conditions
    )
    SELECT s.period, s.week, coalesce(s.unit_id::text, 'all') AS unit_id, c.condition,
           sum(s.patients + coalesce(k.patients, 0)) AS patients,
           sum(s.new_in_unit + coalesce(k.new_in_unit, 0)) AS new_in_unit,
           sum(s.new_to_service + coalesce(k.new_to_service, 0)) AS new_to_service,
           sum(s.ended_in_unit + coalesce(k.ended_in_unit, 0)) AS ended_in_unit,
           sum(s.ended_from_service + coalesce(k.ended_from_service, 0)) AS ended_from_service,
           sum(s.at_end + coalesce(k.at_end, 0)) AS at_end,
           sum(s.days) AS days, sum(s.questionnaires) AS questionnaires,
           sum(s.answered) AS answered, sum(s.expected) AS expected,
           sum(s.received) AS received
      FROM summed s
      -- A unit of NULL is all units, on both sides.
      LEFT JOIN counted k
        ON k.period = s.period AND k.week = s.week AND k.conditions = s.conditions
       AND k.unit_id IS NOT DISTINCT FROM s.unit_id
      -- Every fact counts under each of its patient's conditions and under 'all'.
      CROSS JOIN LATERAL unnest(s.conditions || ARRAY['all']) AS c(condition)
     GROUP BY s.period, s.week, s.unit_id, c.condition
    """,
    "sl.unit_id",
)

_ALERT_UNIT: Final = """
    -- An alert belongs to the unit responsible for the patient when it was raised.
    JOIN patient_responsibility r
      ON r.patient_id = a.patient_id AND r.role = 'responsible'
     AND r.valid_from <= a.created_at AND (r.valid_to IS NULL OR r.valid_to > a.created_at)
    JOIN patients p ON p.id = a.patient_id
"""

_ALERTS_SQL: Final = _grouped(
    f"""
    WITH {{blocks}},
    raised AS MATERIALIZED (
        -- Each alert's facts once, before it is counted under its conditions and cells.
        SELECT width_bucket(a.created_at, %(bounds)s::timestamptz[]) AS n,
               r.organisation_id, p.conditions, a.severity, a.category,
               -- Outside the unit's opening hours, in its own time zone ([] is always open).
               jsonb_array_length(o.opening_hours) > 0 AND NOT EXISTS (
                   SELECT 1 FROM jsonb_array_elements(o.opening_hours) h
                    WHERE (h->>'weekday')::int
                              = extract(isodow FROM a.created_at AT TIME ZONE o.timezone)::int - 1
                      AND (a.created_at AT TIME ZONE o.timezone)::time >= (h->>'opens')::time
                      AND (a.created_at AT TIME ZONE o.timezone)::time < (h->>'closes')::time)
                   AS outside,
               extract(epoch FROM a.acknowledged_at - a.created_at) / 60 AS acknowledge,
               extract(epoch FROM a.resolved_at - a.created_at) / 60 AS resolve
          FROM alerts a
          {_ALERT_UNIT}
          JOIN organisations o ON o.id = r.organisation_id
         WHERE a.created_at >= %(start)s AND a.created_at < %(end)s
    ),
    counts AS (
        -- The counts per week, unit and set of conditions first: a few hundred rows, not
        -- one per alert, go under each condition and into the cells.
        SELECT a.n, a.organisation_id, a.conditions,
               count(*) AS alerts,
               count(*) FILTER (WHERE a.severity = 'red') AS alerts_red,
               count(*) FILTER (WHERE a.severity = 'yellow') AS alerts_yellow,
               count(*) FILTER (WHERE a.category = 'clinical') AS alerts_clinical,
               count(*) FILTER (WHERE a.category = 'adherence') AS alerts_adherence,
               count(*) FILTER (WHERE a.category = 'technical') AS alerts_technical,
               count(*) FILTER (WHERE a.outside) AS outside,
               count(a.acknowledge) AS acknowledge_minutes_n,
               count(a.resolve) AS resolve_minutes_n
          FROM raised a
         GROUP BY a.n, a.organisation_id, a.conditions
    ),
    counted AS (
        SELECT {{columns}},
               sum(a.alerts) AS alerts, sum(a.alerts_red) AS alerts_red,
               sum(a.alerts_yellow) AS alerts_yellow, sum(a.alerts_clinical) AS alerts_clinical,
               sum(a.alerts_adherence) AS alerts_adherence,
               sum(a.alerts_technical) AS alerts_technical, sum(a.outside) AS outside,
               sum(a.acknowledge_minutes_n) AS acknowledge_minutes_n,
               sum(a.resolve_minutes_n) AS resolve_minutes_n
          FROM counts a
          JOIN blocks b ON b.n = a.n
          CROSS JOIN LATERAL unnest(a.conditions || ARRAY['all']) AS c(condition)
        {{cells}}
    ),
    timed AS (
        -- The quantiles need every alert's times, sorted per cell.
        SELECT {{columns}},
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.acknowledge)
                   AS acknowledge_minutes_median,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY a.acknowledge)
                   AS acknowledge_minutes_p90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.resolve) AS resolve_minutes_median,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY a.resolve) AS resolve_minutes_p90
          FROM raised a
          JOIN blocks b ON b.n = a.n
          CROSS JOIN LATERAL unnest(a.conditions || ARRAY['all']) AS c(condition)
        {{cells}}
    )
    SELECT * FROM counted JOIN timed USING (period, week, unit_id, condition)
    """,
    "a.organisation_id",
)

_ESCALATIONS_SQL: Final = _grouped(
    f"""
    WITH {{blocks}}
    SELECT {{columns}},
           count(*) FILTER (WHERE e.details->>'to' = 'backup') AS escalations_to_backup,
           count(*) FILTER (WHERE e.details->>'to' = 'on_call') AS escalations_to_on_call
      FROM alert_events e
      JOIN blocks b ON b.n = width_bucket(e.at, %(bounds)s::timestamptz[])
      JOIN alerts a ON a.id = e.alert_id
      {_ALERT_UNIT}
    {{conditions}}
     WHERE e.action = 'escalated' AND e.at >= %(start)s AND e.at < %(end)s
    {{cells}}
    """,
    "r.organisation_id",
)

_NOTIFICATIONS_SQL: Final = _grouped(
    f"""
    WITH {{blocks}},
    written AS (
        -- Counted per week, unit and set of conditions first: a few hundred rows, not one
        -- per notification, go under each condition and into the cells.
        SELECT width_bucket(n.created_at, %(bounds)s::timestamptz[]) AS n,
               r.organisation_id, p.conditions,
               count(*) FILTER (WHERE n.state = 'delivered') AS delivered,
               count(*) FILTER (WHERE n.attempts > 1) AS retried,
               count(*) FILTER (WHERE n.state = 'dead') AS dead
          FROM notifications n
          JOIN alerts a ON a.id = n.alert_id
          {_ALERT_UNIT}
         WHERE n.created_at >= %(start)s AND n.created_at < %(end)s
         GROUP BY 1, 2, 3
    )
    SELECT {{columns}},
           sum(p.delivered) AS notifications_delivered,
           sum(p.retried) AS notifications_retried,
           sum(p.dead) AS notifications_dead
      FROM written p
      JOIN blocks b ON b.n = p.n
    {{conditions}}
    {{cells}}
    """,
    "p.organisation_id",
)

_REMINDERS_SQL: Final = _grouped(
    """
    WITH {blocks}
    -- A reminder to a patient (alerts/reminders.py) belongs to the unit responsible for the
    -- patient when it was sent; it was followed when a reading of what it was about came after
    -- it (a reading before it would have closed it unsent).
    SELECT {columns},
           count(*) AS reminders_sent,
           count(*) FILTER (WHERE m.closed_at IS NOT NULL) AS reminders_followed
      FROM reminders m
      JOIN blocks b ON b.n = width_bucket(m.sent_at, %(bounds)s::timestamptz[])
      JOIN patient_responsibility r
        ON r.patient_id = m.patient_id AND r.role = 'responsible'
       AND r.valid_from <= m.sent_at AND (r.valid_to IS NULL OR r.valid_to > m.sent_at)
      JOIN patients p ON p.id = m.patient_id
    {conditions}
     WHERE m.sent_at >= %(start)s AND m.sent_at < %(end)s AND m.recipients > 0
    {cells}
    """,
    "r.organisation_id",
)

_HANDOVERS_SQL: Final = _grouped(
    """
    WITH {blocks}
    -- A hand-over counts for the unit asked to take the patient over.
    SELECT {columns},
           count(*) AS handovers_proposed,
           count(*) FILTER (WHERE h.state = 'accepted') AS handovers_accepted,
           count(*) FILTER (WHERE h.state = 'declined') AS handovers_declined,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY t.hours) AS accept_hours_median,
           count(t.hours) AS accept_hours_n
      FROM handovers h
      JOIN blocks b ON b.n = width_bucket(h.proposed_at, %(bounds)s::timestamptz[])
      JOIN patients p ON p.id = h.patient_id
      CROSS JOIN LATERAL (
          SELECT CASE WHEN h.state = 'accepted'
                      THEN extract(epoch FROM h.decided_at - h.proposed_at) / 3600 END AS hours) t
    {conditions}
     WHERE h.proposed_at >= %(start)s AND h.proposed_at < %(end)s
    {cells}
    """,
    "h.to_organisation_id",
)

_NURSES_SQL: Final = """
    -- Nurses employed by each unit (and by any) at the end of each period.
    SELECT e.period, CASE WHEN GROUPING(m.organisation_id) = 1 THEN 'all'
                          ELSE m.organisation_id::text END AS unit_id,
           count(DISTINCT s.id) AS nurses
      FROM unnest(%(period_names)s::text[], %(period_ends)s::timestamptz[]) AS e(period, at)
      JOIN staff_memberships m ON m.valid_from < e.at AND (m.valid_to IS NULL OR m.valid_to >= e.at)
      JOIN staff s ON s.id = m.staff_id AND s.role = 'nurse'
     GROUP BY GROUPING SETS ((e.period, m.organisation_id), (e.period))
"""

_AGGREGATES: Final = (
    _FOLLOWED_SQL,
    _ALERTS_SQL,
    _ESCALATIONS_SQL,
    _NOTIFICATIONS_SQL,
    _REMINDERS_SQL,
    _HANDOVERS_SQL,
)
_CELL: Final = ["period", "week", "unit_id", "condition"]


def _aggregates(conn: psycopg.Connection, period: Period) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every count the figures are made of, a column each, per cell: period (current or
    previous), week (-1 for the whole period), unit ("all" for every unit) and condition;
    and the nurses per unit at the end of each period."""
    previous = period.previous()
    blocks = [("previous", n, w) for n, w in enumerate(previous.weeks())] + [
        ("current", n, w) for n, w in enumerate(period.weeks())
    ]
    ends = {"previous": previous.end, "current": period.end}
    params = {
        "start": previous.start,
        "end": period.end,
        "starts": [w.start for _, _, w in blocks],
        "ends": [w.end for _, _, w in blocks],
        "periods": [label for label, _, _ in blocks],
        "weeks": [n for _, n, _ in blocks],
        "period_ends": [ends[label] for label, _, _ in blocks],
        "bounds": [w.start for _, _, w in blocks] + [period.end],
        "counted_weeks": [
            w.first if w.first.weekday() == 0 and w.days == 7 else None for _, _, w in blocks
        ],
        "first_day": previous.first,
        "last_day": period.last,
        "tz": str(DISPLAY_TIMEZONE),
    }
    with conn.transaction():
        # The grouping sets sort some 100,000 rows a period; in the default 4 MB they would
        # spill to disk. Only for this transaction.
        conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        # Compiling the plans (JIT) costs more than the queries gain from it: some 150 ms.
        conn.execute("SET LOCAL jit = off")
        frames = [_frame(conn, sql, params).set_index(_CELL) for sql in _AGGREGATES]
        nurses = _frame(
            conn,
            _NURSES_SQL,
            {"period_names": list(ends), "period_ends": list(ends.values())},
        )
    return pd.concat(frames, axis=1).astype(float), nurses


def _frame(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        assert cur.description is not None
        names = [column.name for column in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=names)


def _units(conn: psycopg.Connection, found: pd.DataFrame) -> dict[str, str]:
    """The units with any count in either period, by name; "all" first."""
    ids = sorted(set(found.index.get_level_values("unit_id")) - {ALL})
    rows = conn.execute(
        "SELECT id::text, name FROM organisations WHERE id::text = ANY (%s) ORDER BY name, id",
        (ids,),
    ).fetchall()
    return {ALL: ALL, **dict(rows)}


# --- Figures from the aggregates (pandas) ------------------------------------------------


def _table(
    found: pd.DataFrame,
    nurses: pd.DataFrame,
    units: Mapping[str, str],
    *,
    periods: Mapping[str, Period],
    weekly: bool,
) -> pd.DataFrame:
    """The long table: a row per period (or week of the current period), unit, condition and
    figure, computed from the aggregates; a small cell's values withheld (docs/figures.md)."""
    wanted = [
        (label, week, unit, condition)
        for label, period in periods.items()
        if not weekly or label == "current"
        for week in (range(len(period.weeks())) if weekly else [-1])
        for unit in units
        for condition in CONDITIONS
    ]
    cells = pd.MultiIndex.from_tuples(wanted, names=_CELL)
    counted = found.reindex(cells)
    zero = counted.fillna(0)
    across = cells.get_level_values("unit_id") == ALL
    # Across units, a hand-over neither starts nor ends a patient's follow-up.
    zero["new"] = np.where(across, zero["new_to_service"], zero["new_in_unit"])
    zero["ended"] = np.where(across, zero["ended_from_service"], zero["ended_in_unit"])
    per_nurse = nurses.set_index(["period", "unit_id"])["nurses"].astype(float)
    zero["nurses"] = (
        per_nurse.reindex(
            list(
                zip(
                    cells.get_level_values("period"), cells.get_level_values("unit_id"), strict=True
                )
            )
        )
        .fillna(0)
        .to_numpy()
    )
    figures: dict[str, tuple[pd.Series, pd.Series, pd.Series | None]] = {}

    def count(key: str, series: pd.Series) -> None:
        figures[key] = (series, series, None)

    def share(key: str, numerator: pd.Series, denominator: pd.Series, per: float) -> None:
        value = (numerator / denominator.where(denominator > 0) * per).round(1)
        figures[key] = (value, numerator, denominator.round(2))

    def quantile(key: str, column: str, n: str) -> None:
        figures[key] = (counted[column].round(1), zero[n], None)

    count("patients_followed", zero["patients"])
    count("patients_new", zero["new"])
    count("patients_ended", zero["ended"])
    count("patient_days", zero["days"].round(2))
    share("adherence", zero["received"], zero["expected"], 100.0)
    share("questionnaire_completion", zero["answered"], zero["questionnaires"], 100.0)
    per_100 = zero["days"] / 100
    for key in ("alerts", *_RATES):
        share(key, zero[key], per_100, 1.0)
    for name in ("acknowledge_minutes", "resolve_minutes"):
        quantile(f"{name}_median", f"{name}_median", f"{name}_n")
        quantile(f"{name}_p90", f"{name}_p90", f"{name}_n")
    share("alerts_outside_opening_hours", zero["outside"], zero["alerts"], 100.0)
    for key in _COUNTS:
        count(key, zero[key])
    quantile("handover_accept_hours_median", "accept_hours_median", "accept_hours_n")
    if weekly:
        figures["patients_per_nurse"] = (zero["nurses"] * math.nan,) * 2 + (None,)
    else:
        share("patients_per_nurse", zero["at_end"], zero["nurses"], 1.0)

    suppressed = (zero["patients"] < SMALL_CELL).to_numpy()
    n = len(cells)

    def withheld(series: pd.Series | None) -> np.ndarray:
        values = np.full(n, np.nan) if series is None else series.to_numpy(dtype=float)
        return np.where(suppressed, np.nan, values)

    columns = [figures[key] for key in FIGURE_KEYS]
    table = pd.DataFrame(
        {
            **{
                name: np.tile(cells.get_level_values(name).to_numpy(), len(FIGURE_KEYS))
                for name in _CELL
            },
            "figure": np.repeat(FIGURE_KEYS, n),
            "value": np.concatenate([withheld(value) for value, _n, _d in columns]),
            "numerator": np.concatenate([withheld(num) for _v, num, _d in columns]),
            "denominator": np.concatenate([withheld(den) for _v, _n, den in columns]),
            "suppressed": np.tile(suppressed, len(FIGURE_KEYS)),
        }
    )
    weeks = periods["current"].weeks()
    table["week"] = [weeks[w].first for w in table["week"]] if weekly else None
    table["unit"] = table["unit_id"].map(units)
    return table[list(COLUMNS)]


_RATES: Final = (
    "alerts_red",
    "alerts_yellow",
    "alerts_clinical",
    "alerts_adherence",
    "alerts_technical",
)
_COUNTS: Final = (
    "escalations_to_backup",
    "escalations_to_on_call",
    "notifications_delivered",
    "notifications_retried",
    "notifications_dead",
    "reminders_sent",
    "reminders_followed",
    "handovers_proposed",
    "handovers_accepted",
    "handovers_declined",
)


# --- Outputs -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def figures_json(figures: Figures) -> dict[str, Any]:
    """The figures as the API answers them: per unit, condition and figure, the current and
    the previous period's value side by side; the weekly trend below."""
    keys = ["unit_id", "condition", "figure"]
    table = figures.table
    both = table[table["period"] == "current"].merge(
        table[table["period"] == "previous"], on=keys, suffixes=("", "_previous"), sort=False
    )
    units = {figure.key: figure.unit for figure in FIGURES}

    def value(row: Mapping[Any, Any], suffix: str = "") -> dict[str, Any]:
        return {
            "value": _number(row["value" + suffix]),
            "numerator": _number(row["numerator" + suffix]),
            "denominator": _number(row["denominator" + suffix]),
            "suppressed": bool(row["suppressed" + suffix]),
        }

    weekly = figures.weekly[figures.weekly["figure"].isin(WEEKLY_FIGURES)]
    return {
        "period": _period_json(figures.period),
        "previous_period": _period_json(figures.previous),
        "small_cell": SMALL_CELL,
        "units": [{"id": key, "name": name} for key, name in figures.units.items()],
        "figures": [
            {
                "unit_id": row["unit_id"],
                "condition": row["condition"],
                "figure": row["figure"],
                "unit_of_measure": units[row["figure"]],
                "current": value(row),
                "previous": value(row, "_previous"),
            }
            for row in both.to_dict("records")
        ],
        "weekly": [
            {
                "week": row["week"].isoformat(),
                "unit_id": row["unit_id"],
                "condition": row["condition"],
                "figure": row["figure"],
                **value(row),
            }
            for row in weekly.to_dict("records")
        ],
    }


WEEKLY_FIGURES: Final = (
    "patients_followed",
    "adherence",
    "alerts",
    "acknowledge_minutes_median",
    "questionnaire_completion",
)
"""The figures whose weekly trend the page draws and the API returns."""


def _period_json(period: Period) -> dict[str, str]:
    return {"from": period.first.isoformat(), "to": period.last.isoformat()}


CSV_HEADER: Final = (
    "period_from",
    "period_to",
    "unit_id",
    "unit",
    "condition",
    "figure",
    "value",
    "numerator",
    "denominator",
    "previous_value",
    "previous_numerator",
    "previous_denominator",
    "suppressed",
    "previous_suppressed",
)


def figures_csv(figures: Figures, *, label: Callable[[str], str] = str) -> str:
    """The table as CSV: one row per unit, condition and figure, the previous period beside.
    `label` names a figure (the page passes its translation; the API the figure's key)."""
    answer = figures_json(figures)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    names = figures.units
    for row in answer["figures"]:
        now, before = row["current"], row["previous"]
        writer.writerow(
            (
                answer["period"]["from"],
                answer["period"]["to"],
                row["unit_id"],
                names[row["unit_id"]],
                row["condition"],
                label(row["figure"]),
                *_cells(now),
                *_cells(before),
                now["suppressed"],
                before["suppressed"],
            )
        )
    return out.getvalue()


def _cells(value: Mapping[str, Any]) -> Iterator[str]:
    for key in ("value", "numerator", "denominator"):
        found = value[key]
        yield "" if found is None else f"{found:g}"
