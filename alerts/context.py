"""Loads what rules may know about patients (`PatientContext`) in a few set-based queries.

The readings come as one `Series` per measurement; limits, plan and questionnaire answers are
small and read fresh for every batch, so a clinician's change applies to the next reading.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg

from alerts.findings import PatientContext, SymptomAnswer
from alerts.series import Series, micros
from core.catalog import MEASUREMENTS
from core.limits import Limits

CODES: Final = [m.code for m in MEASUREMENTS]
"""Readings are read per measurement, so each is one range of the (patient, code, time) index."""
HISTORY: Final = timedelta(days=8)
"""How far back rules look: the longest window (a 7-day baseline) plus the day before it."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What rules know about a patient besides readings: limits, plan and recent answers."""

    limits: Mapping[str, Limits]
    spo2_scale: int
    conditions: tuple[str, ...]
    symptoms: tuple[SymptomAnswer, ...]
    """Oldest first."""
    parameters: Mapping[str, float] = field(default_factory=dict)
    """The care plan's tuned rule parameters."""


class PatientHistory:
    """One patient's readings and profile; `at(t)` cuts the context rules see at moment t."""

    def __init__(self, *, patient_id: UUID, series: dict[str, Series], profile: Profile) -> None:
        # A dict: the incremental state (alerts/state.py) adds the codes a new batch brings.
        self.patient_id = patient_id
        self.series = series
        self.profile = profile

    def at(self, moment: datetime, *, measured: frozenset[str] | None = None) -> PatientContext:
        """The context as it was at `moment`: rules ask nothing measured after it."""
        since = moment - HISTORY
        symptoms = self.profile.symptoms
        return PatientContext(
            patient_id=self.patient_id,
            at=moment,
            history=self.series,
            limits=self.profile.limits,
            spo2_scale=self.profile.spo2_scale,
            conditions=self.profile.conditions,
            symptoms=tuple(s for s in symptoms if since <= s.answered_at <= moment)
            if symptoms
            else (),
            measured=measured,
            parameters=self.profile.parameters,
        )

    def newer_than(self, code: str | None, moment: datetime) -> bool:
        """Whether a reading of `code` (of any code, for None) measured after `moment` is
        already known: a finding at `moment` then describes a state that has passed (late)."""
        time = micros(moment)
        if code is not None:
            series = self.series.get(code)
            return series is not None and series.newer_than(time)
        return any(series.newer_than(time) for series in self.series.values())


def load_series(
    conn: psycopg.Connection, *, since: Mapping[UUID, datetime | tuple[datetime, datetime]]
) -> dict[UUID, dict[str, Series]]:
    """Each patient's readings measured from their `since` on (or within a (first, last) span),
    one series per measurement.

    Of two readings measured at the same moment the one stored first counts (`Series` keeps
    the first it is given); alerts/state.py adds a batch's readings in the same order."""
    found: dict[UUID, dict[str, Series]] = {patient: {} for patient in since}
    if not since:
        return found
    patients = list(since)
    spans = [value if isinstance(value, tuple) else (value, None) for value in since.values()]
    rows = conn.execute(
        "SELECT r.patient_id, r.code, r.measured_at, r.value"
        " FROM unnest(%b::uuid[], %b::timestamptz[], %b::timestamptz[])"
        " AS w(patient_id, first, last)"
        " CROSS JOIN unnest(%b::text[]) AS c(code)"
        " JOIN readings r ON r.patient_id = w.patient_id AND r.code = c.code"
        " AND r.measured_at >= w.first AND (w.last IS NULL OR r.measured_at <= w.last)"
        " ORDER BY r.measured_at, r.received_at, r.device_id",
        (patients, [a for a, _ in spans], [b for _, b in spans], CODES),
        binary=True,
    )
    for patient_id, code, measured_at, value in rows:
        by_code = found[patient_id]
        series = by_code.get(code)
        if series is None:
            series = by_code[code] = Series()
        series.add(micros(measured_at), value)
    return found


def load_profiles(
    conn: psycopg.Connection, *, patients: list[UUID], since: datetime
) -> dict[UUID, Profile]:
    """Limits and the rest of the care plan, and questionnaire answers (from `since` on), of
    the patients that exist."""
    limits: dict[UUID, dict[str, Limits]] = defaultdict(dict)
    for patient_id, code, low, high, red_low, red_high in conn.execute(
        "SELECT patient_id, code, low, high, red_low, red_high FROM care_plan_limits"
        " WHERE patient_id = ANY(%b)",
        (patients,),
    ):
        limits[patient_id][code] = Limits(code, low, high, red_low, red_high)
    symptoms: dict[UUID, list[SymptomAnswer]] = defaultdict(list)
    for patient_id, kind, answered_at, answers, total in conn.execute(
        "SELECT patient_id, kind, answered_at, answers, total FROM questionnaire_responses"
        " WHERE patient_id = ANY(%b) AND answered_at >= %s ORDER BY answered_at",
        (patients, since),
    ):
        symptoms[patient_id].append(SymptomAnswer(kind, answered_at, answers, total))
    return {
        patient_id: Profile(
            limits=limits[patient_id],
            spo2_scale=spo2_scale,
            conditions=tuple(conditions),
            symptoms=tuple(symptoms[patient_id]),
            parameters=parameters or {},
        )
        for patient_id, spo2_scale, conditions, parameters in conn.execute(
            "SELECT p.id, coalesce(c.spo2_scale, 1), p.conditions, c.rule_parameters"
            " FROM patients p"
            " LEFT JOIN care_plans c ON c.patient_id = p.id WHERE p.id = ANY(%b)",
            (patients,),
        )
    }


def load_histories(
    conn: psycopg.Connection, *, spans: Mapping[UUID, tuple[datetime, datetime]]
) -> dict[UUID, PatientHistory]:
    """Histories covering [first - HISTORY, last] per patient, and any later readings (so
    late findings can be recognised): the full recomputation, without any kept state."""
    if not spans:
        return {}
    since = {patient: first - HISTORY for patient, (first, _last) in spans.items()}
    series = load_series(conn, since=since)
    profiles = load_profiles(conn, patients=list(spans), since=min(since.values()))
    return {
        patient_id: PatientHistory(
            patient_id=patient_id, series=series[patient_id], profile=profile
        )
        for patient_id, profile in profiles.items()
    }
