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
            _table(current_facts, units, label="current"),
            _table(previous_facts, units, label="previous"),
        ],
        ignore_index=True,
    )
    weekly = pd.concat(
        [
            _table(current_facts, units, label="current", week=n, week_start=block.first)
            for n, block in enumerate(period.weeks())
        ],
        ignore_index=True,
    )
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
        return pd.DataFrame(cur.fetchall(), columns=names)


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


@dataclass(frozen=True, slots=True)
class Value:
    value: float | None
    numerator: float | None = None
    denominator: float | None = None


def _share(numerator: float, denominator: float, *, per: float = 100.0) -> Value:
    value = None if denominator == 0 else round(numerator / denominator * per, 1)
    return Value(value, numerator, round(denominator, 2))


def _quantile(values: pd.Series, q: float) -> Value:
    """Linear interpolation between the nearest values (PostgreSQL's percentile_cont)."""
    found = values.dropna()
    if found.empty:
        return Value(None, 0, None)
    return Value(round(float(found.quantile(q)), 1), len(found), None)


def _count(n: int) -> Value:
    return Value(float(n), float(n), None)


def _cell_figures(
    cell: Mapping[str, pd.DataFrame], nurses: float | None, *, weekly: bool
) -> dict[str, Value]:
    """Every figure of one cell, from that cell's facts (definitions: docs/figures.md)."""
    slices, scheduled, alerts = cell["slices"], cell["scheduled"], cell["alerts"]
    escalations, notifications, handovers = (
        cell["escalations"],
        cell["notifications"],
        cell["handovers"],
    )
    patient_days = float(slices["days"].sum())
    per_100 = patient_days / 100
    began, ended = slices["began"].astype(bool), slices["ended"].astype(bool)
    if not slices.empty and (slices["unit_id"] == ALL).all():
        # Across units, a hand-over neither starts nor ends a patient's follow-up.
        began &= ~slices["came_from_unit"].astype(bool)
        ended &= ~slices["went_to_unit"].astype(bool)
    received = scheduled["received"].clip(upper=scheduled["expected"]).sum()
    answered = slices["questionnaires_answered"].clip(upper=slices["questionnaires_expected"])
    acknowledged = alerts["acknowledge_minutes"].astype(float)
    resolved = alerts["resolve_minutes"].astype(float)
    at_end = slices.loc[slices["at_end"].astype(bool), "patient_id"].nunique()
    steps = escalations["step"].value_counts()
    states = notifications["state"].value_counts()
    decided = handovers["state"].value_counts()
    return {
        "patients_followed": _count(slices["patient_id"].nunique()),
        "patients_new": _count(slices.loc[began, "patient_id"].nunique()),
        "patients_ended": _count(slices.loc[ended, "patient_id"].nunique()),
        "patient_days": Value(round(patient_days, 2), round(patient_days, 2), None),
        "adherence": _share(float(received), float(scheduled["expected"].sum())),
        "questionnaire_completion": _share(
            float(answered.sum()), float(slices["questionnaires_expected"].sum())
        ),
        "alerts": _share(len(alerts), per_100, per=1.0),
        **{
            f"alerts_{kind}": _share(int((alerts[column] == kind).sum()), per_100, per=1.0)
            for column, kinds in (
                ("severity", ("red", "yellow")),
                ("category", ("clinical", "adherence", "technical")),
            )
            for kind in kinds
        },
        "acknowledge_minutes_median": _quantile(acknowledged, 0.5),
        "acknowledge_minutes_p90": _quantile(acknowledged, 0.9),
        "resolve_minutes_median": _quantile(resolved, 0.5),
        "resolve_minutes_p90": _quantile(resolved, 0.9),
        "alerts_outside_opening_hours": _share(
            float(alerts["outside_hours"].astype(bool).sum()), float(len(alerts))
        ),
        "escalations_to_backup": _count(int(steps.get("backup", 0))),
        "escalations_to_on_call": _count(int(steps.get("on_call", 0))),
        "notifications_delivered": _count(int(states.get("delivered", 0))),
        "notifications_retried": _count(int((notifications["attempts"] > 1).sum())),
        "notifications_dead": _count(int(states.get("dead", 0))),
        "handovers_proposed": _count(len(handovers)),
        "handovers_accepted": _count(int(decided.get("accepted", 0))),
        "handovers_declined": _count(int(decided.get("declined", 0))),
        "handover_accept_hours_median": _quantile(handovers["accept_hours"].astype(float), 0.5),
        "patients_per_nurse": (
            Value(None) if weekly or nurses is None else _share(float(at_end), nurses, per=1.0)
        ),
    }


_EMPTY: Final = {
    "slices": pd.DataFrame(
        columns=[
            "unit_id", "patient_id", "condition", "block", "days", "at_end", "began", "ended",
            "came_from_unit", "went_to_unit", "questionnaires_expected",
            "questionnaires_answered",
        ]
    ),
    "scheduled": pd.DataFrame(columns=["block", "expected", "received"]),
    "alerts": pd.DataFrame(
        columns=[
            "block", "severity", "category", "acknowledge_minutes", "resolve_minutes",
            "outside_hours",
        ]
    ),
    "escalations": pd.DataFrame(columns=["block", "step"]),
    "notifications": pd.DataFrame(columns=["block", "state", "attempts"]),
    "handovers": pd.DataFrame(columns=["block", "state", "accept_hours"]),
}  # fmt: skip
"""A cell without any fact of a kind counts an empty frame of that kind's columns."""


def _table(
    facts: _Facts,
    units: Mapping[str, str],
    *,
    label: str,
    week: int | None = None,
    week_start: date | None = None,
) -> pd.DataFrame:
    """The long table of one period (or one week of it): a row per unit, condition and
    figure; a small cell's values withheld."""
    grouped = {
        name: _groups(frame if week is None else frame[frame["block"] == week])
        for name, frame in facts.frames.items()
    }
    nurse_counts = facts.nurses.assign(unit_id=facts.nurses["unit_id"].astype(str))
    nurses_of = nurse_counts.groupby("unit_id")["staff_id"].nunique().to_dict()
    nurses_of[ALL] = nurse_counts["staff_id"].nunique()
    rows: list[tuple[Any, ...]] = []
    for unit_id, unit in units.items():
        for condition in CONDITIONS:
            cell = {
                name: groups.get((unit_id, condition), _EMPTY[name])
                for name, groups in grouped.items()
            }
            figures = _cell_figures(cell, float(nurses_of.get(unit_id, 0)), weekly=week is not None)
            suppressed = figures["patients_followed"].numerator is not None and (
                figures["patients_followed"].numerator < SMALL_CELL
            )
            for key in FIGURE_KEYS:
                found = Value(None) if suppressed else figures[key]
                rows.append(
                    (
                        label,
                        week_start,
                        unit_id,
                        unit,
                        condition,
                        key,
                        found.value,
                        found.numerator,
                        found.denominator,
                        suppressed,
                    )
                )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _groups(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    return {
        (str(unit_id), str(condition)): group
        for (unit_id, condition), group in frame.groupby(["unit_id", "condition"], sort=False)
    }


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
