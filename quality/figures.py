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
    current_facts = _facts(conn, period)
    previous_facts = _facts(conn, previous)
    units = _units(conn, current_facts, previous_facts)
    table = pd.concat(
        [
            _table(current_facts, units, label="current", weekly=False),
            _table(previous_facts, units, label="previous", weekly=False),
        ],
        ignore_index=True,
    )
    weekly = _table(current_facts, units, label="current", weekly=True)
    return Figures(period=period, previous=previous, units=units, table=table, weekly=weekly)


# --- Facts: one row per thing counted, no names -------------------------------------------

_BLOCKS: Final = """
    blocks AS (
        SELECT b.s, b.e, (b.n - 1)::int AS block
          FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[])
               WITH ORDINALITY AS b(s, e, n)
    )
"""
"""The period's weeks, numbered from 0."""

_SLICES: Final = f"""
    WITH {_BLOCKS},
    stays AS (
        -- Each unit's responsibility for a patient that overlaps the period. Whether the
        -- patient came from (or went on to) another unit tells a hand-over from a start.
        SELECT r.organisation_id AS unit_id, r.patient_id, r.valid_from, r.valid_to,
               EXISTS (SELECT 1 FROM patient_responsibility q
                        WHERE q.patient_id = r.patient_id AND q.role = 'responsible'
                          AND q.valid_from < r.valid_from AND q.valid_to = r.valid_from)
                   AS came_from_unit,
               EXISTS (SELECT 1 FROM patient_responsibility q
                        WHERE q.patient_id = r.patient_id AND q.role = 'responsible'
                          AND q.valid_from = r.valid_to) AS went_to_unit
          FROM patient_responsibility r
         WHERE r.role = 'responsible' AND r.valid_from < %(end)s
           AND (r.valid_to IS NULL OR r.valid_to > %(start)s)
    ),
    slices AS (
        -- A stay cut at the week boundaries: the unit of every per-week count.
        SELECT st.unit_id, st.patient_id, b.block,
               greatest(st.valid_from, b.s) AS s,
               least(coalesce(st.valid_to, 'infinity'), b.e) AS e,
               st.valid_from >= b.s AND st.valid_from < b.e AS began,
               coalesce(st.valid_to > b.s AND st.valid_to <= b.e, false) AS ended,
               st.came_from_unit, st.went_to_unit
          FROM stays st
          JOIN blocks b ON st.valid_from < b.e AND coalesce(st.valid_to, 'infinity') > b.s
    )
"""

_SLICES_SQL: Final = f"""
    {_SLICES}
    SELECT sl.unit_id, sl.patient_id, p.conditions, sl.block,
           (extract(epoch FROM sl.e - sl.s) / 86400)::float8 AS days,
           sl.e >= %(end)s AS at_end,
           sl.began, sl.ended, sl.came_from_unit, sl.went_to_unit,
           -- Daily symptom check: one expected per whole day followed, one counted per day
           -- with an answer.
           floor(extract(epoch FROM sl.e - sl.s) / 86400)::int AS questionnaires_expected,
           (SELECT count(DISTINCT (q.answered_at AT TIME ZONE %(tz)s)::date)
              FROM questionnaire_responses q
             WHERE q.patient_id = sl.patient_id AND q.kind = 'daily_symptoms'
               AND q.answered_at >= sl.s AND q.answered_at < sl.e) AS questionnaires_answered
      FROM slices sl
      JOIN patients p ON p.id = sl.patient_id
"""

_SCHEDULED_SQL: Final = f"""
    {_SLICES}
    -- Per slice and scheduled measurement: how many the care plan asked for since it began
    -- (one per `every_hours`), and how many readings came.
    SELECT sl.unit_id, sl.patient_id, p.conditions, sl.block,
           floor(extract(epoch FROM sl.e - greatest(sl.s, plan.since)) / 3600 / m.every_hours)::int
               AS expected,
           (SELECT count(*) FROM readings r
             WHERE r.patient_id = sl.patient_id AND r.code = m.code
               AND r.measured_at >= greatest(sl.s, plan.since) AND r.measured_at < sl.e)
               AS received
      FROM slices sl
      JOIN patients p ON p.id = sl.patient_id
      JOIN care_plan_measurements m ON m.patient_id = sl.patient_id
      JOIN LATERAL (SELECT min(v.changed_at) AS since FROM care_plan_versions v
                     WHERE v.patient_id = sl.patient_id) plan ON plan.since < sl.e
"""

_ALERT_UNIT: Final = """
    -- An alert belongs to the unit responsible for the patient when it was raised.
    JOIN patient_responsibility r
      ON r.patient_id = a.patient_id AND r.role = 'responsible'
     AND r.valid_from <= a.created_at AND (r.valid_to IS NULL OR r.valid_to > a.created_at)
    JOIN patients p ON p.id = a.patient_id
"""

_ALERTS_SQL: Final = f"""
    WITH {_BLOCKS}
    SELECT r.organisation_id AS unit_id, a.patient_id, p.conditions, b.block,
           a.severity, a.category,
           (extract(epoch FROM a.acknowledged_at - a.created_at) / 60)::float8
               AS acknowledge_minutes,
           (extract(epoch FROM a.resolved_at - a.created_at) / 60)::float8 AS resolve_minutes,
           -- Outside the unit's opening hours, in its own time zone ([] is always open).
           jsonb_array_length(o.opening_hours) > 0 AND NOT EXISTS (
               SELECT 1 FROM jsonb_array_elements(o.opening_hours) h
                WHERE (h->>'weekday')::int
                          = extract(isodow FROM a.created_at AT TIME ZONE o.timezone)::int - 1
                  AND (a.created_at AT TIME ZONE o.timezone)::time >= (h->>'opens')::time
                  AND (a.created_at AT TIME ZONE o.timezone)::time < (h->>'closes')::time
           ) AS outside_hours
      FROM alerts a
      JOIN blocks b ON a.created_at >= b.s AND a.created_at < b.e
      {_ALERT_UNIT}
      JOIN organisations o ON o.id = r.organisation_id
"""

_ESCALATIONS_SQL: Final = f"""
    WITH {_BLOCKS}
    SELECT r.organisation_id AS unit_id, a.patient_id, p.conditions, b.block,
           e.details->>'to' AS step
      FROM alert_events e
      JOIN blocks b ON e.at >= b.s AND e.at < b.e
      JOIN alerts a ON a.id = e.alert_id
      {_ALERT_UNIT}
     WHERE e.action = 'escalated'
"""

_NOTIFICATIONS_SQL: Final = f"""
    WITH {_BLOCKS}
    SELECT r.organisation_id AS unit_id, a.patient_id, p.conditions, b.block,
           n.state, n.attempts
      FROM notifications n
      JOIN blocks b ON n.created_at >= b.s AND n.created_at < b.e
      JOIN alerts a ON a.id = n.alert_id
      {_ALERT_UNIT}
"""

_HANDOVERS_SQL: Final = f"""
    WITH {_BLOCKS}
    -- A hand-over counts for the unit asked to take the patient over.
    SELECT h.to_organisation_id AS unit_id, h.patient_id, p.conditions, b.block, h.state,
           CASE WHEN h.state = 'accepted'
                THEN (extract(epoch FROM h.decided_at - h.proposed_at) / 3600)::float8
           END AS accept_hours
      FROM handovers h
      JOIN blocks b ON h.proposed_at >= b.s AND h.proposed_at < b.e
      JOIN patients p ON p.id = h.patient_id
"""

_NURSES_SQL: Final = """
    -- Nurses employed by each unit at the end of the period.
    SELECT m.organisation_id AS unit_id, s.id AS staff_id
      FROM staff_memberships m JOIN staff s ON s.id = m.staff_id
     WHERE s.role = 'nurse' AND m.valid_from < %(end)s
       AND (m.valid_to IS NULL OR m.valid_to >= %(end)s)
"""

_FACTS: Final = {
    "slices": _SLICES_SQL,
    "scheduled": _SCHEDULED_SQL,
    "alerts": _ALERTS_SQL,
    "escalations": _ESCALATIONS_SQL,
    "notifications": _NOTIFICATIONS_SQL,
    "handovers": _HANDOVERS_SQL,
}


@dataclass(frozen=True, slots=True)
class _Facts:
    period: Period
    frames: dict[str, pd.DataFrame]
    """Each fact kind, with a row per cell it counts in (unit and "all", each condition and
    "all"): grouped by (unit_id, condition) once."""
    nurses: pd.DataFrame


def _facts(conn: psycopg.Connection, period: Period) -> _Facts:
    weeks = period.weeks()
    params = {
        "start": period.start,
        "end": period.end,
        "starts": [w.start for w in weeks],
        "ends": [w.end for w in weeks],
        "tz": str(DISPLAY_TIMEZONE),
    }
    frames = {name: _into_cells(_frame(conn, sql, params)) for name, sql in _FACTS.items()}
    nurses = _frame(conn, _NURSES_SQL, params)
    return _Facts(period=period, frames=frames, nurses=nurses)


def _frame(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        assert cur.description is not None
        names = [column.name for column in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=names)
    # A column of durations may hold only NULLs, which pandas would keep as objects.
    durations = [
        c for c in ("acknowledge_minutes", "resolve_minutes", "accept_hours") if c in frame
    ]
    return frame.astype(dict.fromkeys(durations, float))


def _into_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell a fact counts in: its unit and "all" units, each of its patient's
    conditions and "all" conditions. A patient with both conditions counts in both."""
    frame = frame.assign(unit_id=frame["unit_id"].astype(str))
    if "conditions" not in frame:
        frame = frame.assign(conditions=[[] for _ in range(len(frame))])
    by_condition = frame.explode("conditions").dropna(subset=["conditions"])
    by_condition = by_condition.rename(columns={"conditions": "condition"})
    every = frame.drop(columns="conditions").assign(condition=ALL)
    cells = pd.concat([every, by_condition], ignore_index=True)
    return pd.concat([cells, cells.assign(unit_id=ALL)], ignore_index=True)


def _units(conn: psycopg.Connection, *facts: _Facts) -> dict[str, str]:
    """The units with any fact in either period, by name; "all" first."""
    ids = sorted(
        {
            unit
            for fact in facts
            for frame in fact.frames.values()
            for unit in frame["unit_id"].unique()
            if unit != ALL
        }
    )
    rows = conn.execute(
        "SELECT id::text, name FROM organisations WHERE id::text = ANY (%s) ORDER BY name, id",
        (ids,),
    ).fetchall()
    return {ALL: ALL, **dict(rows)}


# --- Counting per cell ---------------------------------------------------------------------

_RATES: Final = {
    "alerts_red": ("severity", "red"),
    "alerts_yellow": ("severity", "yellow"),
    "alerts_clinical": ("category", "clinical"),
    "alerts_adherence": ("category", "adherence"),
    "alerts_technical": ("category", "technical"),
}


def _table(facts: _Facts, units: Mapping[str, str], *, label: str, weekly: bool) -> pd.DataFrame:
    """The long table of one period, or of each of its weeks: a row per unit, condition (and
    week) and figure; a small cell's values withheld. Every figure is counted for all cells
    at once, grouped by cell (definitions: docs/figures.md)."""
    keys = ["unit_id", "condition", *(["block"] if weekly else [])]
    blocks = range(len(facts.period.weeks())) if weekly else [None]
    cells = pd.MultiIndex.from_tuples(
        [
            (unit, condition, *([block] if weekly else []))
            for unit in units
            for condition in CONDITIONS
            for block in blocks
        ],
        names=keys,
    )
    f = facts.frames
    counted = _counts(f, keys).reindex(cells)
    zero = counted.fillna(0)
    nurses = facts.nurses.assign(unit_id=facts.nurses["unit_id"].astype(str))
    per_unit = nurses.groupby("unit_id")["staff_id"].nunique().to_dict()
    per_unit[ALL] = nurses["staff_id"].nunique()
    zero["nurses"] = [float(per_unit.get(u, 0)) for u in cells.get_level_values("unit_id")]
    figures: dict[str, tuple[pd.Series, pd.Series, pd.Series | None]] = {}

    def count(key: str, series: pd.Series) -> None:
        figures[key] = (series, series, None)

    def share(key: str, numerator: pd.Series, denominator: pd.Series, per: float) -> None:
        value = (numerator / denominator.where(denominator > 0) * per).round(1)
        figures[key] = (value, numerator, denominator.round(2))

    def quantile(key: str, column: str) -> None:
        figures[key] = (counted[column].round(1), zero[f"{column}_n"], None)

    count("patients_followed", zero["patients"])
    count("patients_new", zero["new"])
    count("patients_ended", zero["ended"])
    count("patient_days", zero["days"].round(2))
    share("adherence", zero["received"], zero["expected"], 100.0)
    share("questionnaire_completion", zero["answered"], zero["questionnaires"], 100.0)
    per_100 = zero["days"] / 100
    share("alerts", zero["alerts"], per_100, 1.0)
    for key in _RATES:
        share(key, zero[key], per_100, 1.0)
    for name in ("acknowledge_minutes", "resolve_minutes"):
        quantile(f"{name}_median", f"{name}_median")
        quantile(f"{name}_p90", f"{name}_p90")
    share("alerts_outside_opening_hours", zero["outside"], zero["alerts"], 100.0)
    for key in (
        "escalations_to_backup",
        "escalations_to_on_call",
        "notifications_delivered",
        "notifications_retried",
        "notifications_dead",
        "handovers_proposed",
        "handovers_accepted",
        "handovers_declined",
    ):
        count(key, zero[key])
    quantile("handover_accept_hours_median", "accept_median")
    if weekly:
        figures["patients_per_nurse"] = (zero["nurses"] * math.nan,) * 2 + (None,)
    else:
        share("patients_per_nurse", zero["at_end"], zero["nurses"], 1.0)

    suppressed = (zero["patients"] < SMALL_CELL).to_numpy()
    n = len(cells)

    def withheld(series: pd.Series | None) -> np.ndarray:
        found = np.full(n, np.nan) if series is None else series.to_numpy(dtype=float)
        return np.where(suppressed, np.nan, found)

    columns = [figures[key] for key in FIGURE_KEYS]
    table = pd.DataFrame(
        {
            **{
                name: np.tile(cells.get_level_values(name).to_numpy(), len(FIGURE_KEYS))
                for name in keys
            },
            "figure": np.repeat(FIGURE_KEYS, n),
            "value": np.concatenate([withheld(value) for value, _n, _d in columns]),
            "numerator": np.concatenate([withheld(num) for _v, num, _d in columns]),
            "denominator": np.concatenate([withheld(den) for _v, _n, den in columns]),
            "suppressed": np.tile(suppressed, len(FIGURE_KEYS)),
        }
    )
    weeks = facts.period.weeks()
    table["week"] = [weeks[b].first for b in table["block"]] if weekly else None
    table["unit"] = table["unit_id"].map(units)
    table["period"] = label
    return table[list(COLUMNS)]


def _counts(f: Mapping[str, pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """Per cell, every count the figures are made of, as columns: one grouping per kind of
    fact, with a column of 0/1 (or an id or nothing) per thing counted."""
    slices = f["slices"]
    across = slices["unit_id"] == ALL
    # Across units, a hand-over neither starts nor ends a patient's follow-up.
    began = slices["began"].astype(bool) & ~(across & slices["came_from_unit"].astype(bool))
    ended = slices["ended"].astype(bool) & ~(across & slices["went_to_unit"].astype(bool))
    patient = slices["patient_id"]
    followed = slices.assign(
        new=patient.where(began),
        ended_=patient.where(ended),
        at_end_=patient.where(slices["at_end"].astype(bool)),
        answered=slices["questionnaires_answered"].clip(upper=slices["questionnaires_expected"]),
    ).groupby(keys)
    parts = [
        followed.agg(
            patients=("patient_id", "nunique"),
            new=("new", "nunique"),
            ended=("ended_", "nunique"),
            at_end=("at_end_", "nunique"),
            days=("days", "sum"),
            questionnaires=("questionnaires_expected", "sum"),
            answered=("answered", "sum"),
        )
    ]
    scheduled = f["scheduled"]
    parts.append(
        scheduled.assign(received=scheduled["received"].clip(upper=scheduled["expected"]))
        .groupby(keys)
        .agg(expected=("expected", "sum"), received=("received", "sum"))
    )
    alerts = f["alerts"]
    flags = {key: (alerts[column] == kind) for key, (column, kind) in _RATES.items()}
    by_alert = alerts.assign(outside=alerts["outside_hours"].astype(bool), **flags).groupby(keys)
    parts.append(
        by_alert.agg(
            alerts=("severity", "size"),
            outside=("outside", "sum"),
            **{key: (key, "sum") for key in _RATES},
        )
    )
    times = by_alert[["acknowledge_minutes", "resolve_minutes"]]
    for q, suffix in ((0.5, "median"), (0.9, "p90")):
        parts.append(times.quantile(q).add_suffix(f"_{suffix}"))
        parts.append(times.count().add_suffix(f"_{suffix}_n"))
    steps = f["escalations"]
    parts.append(
        steps.assign(
            escalations_to_backup=steps["step"] == "backup",
            escalations_to_on_call=steps["step"] == "on_call",
        )
        .groupby(keys)[["escalations_to_backup", "escalations_to_on_call"]]
        .sum()
    )
    notes = f["notifications"]
    parts.append(
        notes.assign(
            notifications_delivered=notes["state"] == "delivered",
            notifications_dead=notes["state"] == "dead",
            notifications_retried=notes["attempts"] > 1,
        )
        .groupby(keys)[["notifications_delivered", "notifications_dead", "notifications_retried"]]
        .sum()
    )
    handovers = f["handovers"]
    parts.append(
        handovers.assign(
            accepted=handovers["state"] == "accepted", declined=handovers["state"] == "declined"
        )
        .groupby(keys)
        .agg(
            handovers_proposed=("state", "size"),
            handovers_accepted=("accepted", "sum"),
            handovers_declined=("declined", "sum"),
            accept_median=("accept_hours", "median"),
            accept_median_n=("accept_hours", "count"),
        )
    )
    return pd.concat(parts, axis=1).astype(float)


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

    def value(row: Mapping[str, Any], suffix: str = "") -> dict[str, Any]:
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
