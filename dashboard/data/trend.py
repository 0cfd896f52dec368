"""What the patient page's trend draws for a range: every reading (up to a month) or the
daily summaries (longer), the care plan's limits as they were at each time, the alerts and
notes on the time axis, and the patient's peak-flow baseline parameter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg

from alerts.library.news2 import scores_over_time
from alerts.library.trends import BASELINE_DAYS
from care.careplan import care_plan_history, plan_limits
from core.limits import Limits
from core.readings import Reading, readings_for_patient
from core.rule_parameters import TUNABLES
from dashboard.data.trend_days import DaySummary, day_summaries
from dashboard.formatting import DISPLAY_TIMEZONE
from dashboard.ranges import TrendRange

FLOW_Z: Final = "peak_flow_drop.z"
LOOK_BACK: Final = timedelta(days=BASELINE_DAYS)
"""Read this much before the range too: the first days' baseline is the week before them."""


@dataclass(frozen=True, slots=True)
class PlanPeriod:
    """The limits of one care plan version, valid from `starts` until the next version."""

    starts: datetime | None
    """None for the first version: its limits are drawn from the start of the range."""
    limits: tuple[Limits, ...]


@dataclass(frozen=True, slots=True)
class TrendEvent:
    """An alert (when it began) or a note on one, for the markers on the time axis."""

    at: datetime
    kind: str
    """"alert" or "note"."""
    rule_id: str
    severity: str
    text: str | None = None
    """A note's text, as written (the chart escapes it)."""
    score: int | None = None
    """A partial NEWS2 alert's total score."""


@dataclass(frozen=True, slots=True)
class Trend:
    range: TrendRange
    since: datetime
    until: datetime
    readings: list[Reading] | None
    """Every reading from LOOK_BACK before `since`, for a range up to a month; else None."""
    days: list[DaySummary] | None
    """The daily summaries from LOOK_BACK before `since`, for a longer range; else None."""
    plans: list[PlanPeriod]
    events: list[TrendEvent]
    flow_z: float
    """How many standard deviations below the baseline a peak flow alerts (the rule's)."""
    news2: list[tuple[datetime, int]] = field(default_factory=list)
    """The partial NEWS2 score after each vital sign, when every reading is drawn."""


def load_trend(
    conn: psycopg.Connection, *, patient_id: UUID, trend_range: TrendRange, now: datetime
) -> Trend:
    """The trend's data; the caller has checked access (dashboard/data/patient.py)."""
    since, until = trend_range.window(now)
    readings = days = None
    if trend_range.from_summaries(now):
        days = day_summaries(
            conn,
            patient_id=patient_id,
            first=(since - LOOK_BACK).astimezone(DISPLAY_TIMEZONE).date(),
            last=(until - timedelta(microseconds=1)).astimezone(DISPLAY_TIMEZONE).date(),
            today=now.astimezone(DISPLAY_TIMEZONE).date(),
        )
    else:
        # Up to now, and a reading from a device whose clock runs a little ahead, too.
        readings = readings_for_patient(
            conn,
            patient_id=patient_id,
            since=since - LOOK_BACK,
            until=None if trend_range.days is not None else until,
        )
    return Trend(
        range=trend_range,
        since=since,
        until=until,
        readings=readings,
        days=days,
        plans=plan_periods(conn, patient_id=patient_id),
        events=_events(conn, patient_id=patient_id, since=since, until=until),
        flow_z=_flow_z(conn, patient_id=patient_id),
        news2=[] if readings is None else _news2(conn, patient_id=patient_id, readings=readings),
    )


def _news2(
    conn: psycopg.Connection, *, patient_id: UUID, readings: list[Reading]
) -> list[tuple[datetime, int]]:
    """The partial NEWS2 score over time, on the SpO2 scale of the patient's plan."""
    row = conn.execute(
        "SELECT spo2_scale FROM care_plans WHERE patient_id = %s", (patient_id,)
    ).fetchone()
    ordered = sorted(readings, key=lambda r: r.measured_at)
    return scores_over_time(
        ((r.measured_at, r.code, r.value) for r in ordered), scale2=row is not None and row[0] == 2
    )


def plan_periods(conn: psycopg.Connection, *, patient_id: UUID) -> list[PlanPeriod]:
    """The limits of each care plan version, oldest first; the current limits for a plan
    without a recorded history."""
    periods = []
    for n, version in enumerate(reversed(care_plan_history(conn, patient_id=patient_id))):
        limits = tuple(
            Limits(
                code=threshold["code"],
                low=threshold.get("low"),
                high=threshold.get("high"),
                red_low=threshold.get("red_low"),
                red_high=threshold.get("red_high"),
            )
            for threshold in version.new.get("thresholds", [])
        )
        periods.append(PlanPeriod(starts=None if n == 0 else version.changed_at, limits=limits))
    return periods or [PlanPeriod(starts=None, limits=plan_limits(conn, patient_id=patient_id))]


def _events(
    conn: psycopg.Connection, *, patient_id: UUID, since: datetime, until: datetime
) -> list[TrendEvent]:
    rows = conn.execute(
        """
        SELECT first_measured_at, 'alert', rule_id, severity, NULL,
               (details ->> 'total')::int
          FROM alerts
         WHERE patient_id = %(patient)s AND first_measured_at >= %(since)s
           AND first_measured_at < %(until)s
        UNION ALL
        SELECT e.at, 'note', a.rule_id, a.severity, e.details ->> 'note', NULL
          FROM alerts a JOIN alert_events e ON e.alert_id = a.id AND e.action = 'noted'
         WHERE a.patient_id = %(patient)s AND e.at >= %(since)s AND e.at < %(until)s
         ORDER BY 1
        """,
        {"patient": patient_id, "since": since, "until": until},
    ).fetchall()
    return [TrendEvent(*row) for row in rows]


def _flow_z(conn: psycopg.Connection, *, patient_id: UUID) -> float:
    """The patient's own z for the peak-flow rule when the care plan tunes it, else the rule's."""
    row = conn.execute(
        "SELECT (rule_parameters ->> %s)::float FROM care_plans WHERE patient_id = %s",
        (FLOW_Z, patient_id),
    ).fetchone()
    if row is not None and row[0] is not None:
        return float(row[0])
    return flow_z_default()


def flow_z_default() -> float:
    """The peak-flow rule's z as shipped."""
    default = TUNABLES[FLOW_Z].default
    assert default is not None
    return default
