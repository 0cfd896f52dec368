"""Loads what rules may know about patients (`PatientContext`) in a few set-based queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg

from alerts.findings import Limits, Observation, PatientContext, SymptomAnswer

HISTORY: Final = timedelta(days=8)
"""How far back rules look: the longest window (a 7-day baseline) plus the day before it."""
RECENT: Final = timedelta(hours=12)
"""How far back rules look at vital signs without a baseline rule (partial NEWS2's window)."""
LONG_HISTORY_CODES: Final = ("29463-7", "59408-5", "19935-6", "20150-9")
"""Weight, SpO2, PEF and FEV1: the measurements whose rules compare with a baseline."""


class PatientHistory:
    """One patient's readings, limits, plan and answers over a span; `at(t)` cuts a context."""

    def __init__(
        self,
        *,
        patient_id: UUID,
        observations: Iterable[Observation],
        limits: Mapping[str, Limits],
        spo2_scale: int,
        conditions: tuple[str, ...],
        symptoms: Iterable[SymptomAnswer],
    ) -> None:
        self.patient_id = patient_id
        self._observations = sorted(observations, key=lambda o: o.measured_at)
        self._limits = limits
        self._spo2_scale = spo2_scale
        self._conditions = conditions
        self._symptoms = sorted(symptoms, key=lambda s: s.answered_at)

    def at(self, moment: datetime) -> PatientContext:
        """The context as it was at `moment`: nothing measured or answered after it."""
        since = moment - HISTORY
        history: dict[str, list[Observation]] = defaultdict(list)
        for observation in self._observations:
            if since <= observation.measured_at <= moment:
                history[observation.code].append(observation)
        return PatientContext(
            patient_id=self.patient_id,
            at=moment,
            history={code: tuple(found) for code, found in history.items()},
            limits=self._limits,
            spo2_scale=self._spo2_scale,
            conditions=self._conditions,
            symptoms=tuple(s for s in self._symptoms if since <= s.answered_at <= moment),
        )

    def newer_than(self, code: str | None, moment: datetime) -> bool:
        """Whether a reading of `code` measured after `moment` is already known: a finding at
        `moment` then describes a state that has passed (it is late)."""
        return any(
            o.measured_at > moment and (code is None or o.code == code) for o in self._observations
        )


def load_histories(
    conn: psycopg.Connection, *, spans: Mapping[UUID, tuple[datetime, datetime]]
) -> dict[UUID, PatientHistory]:
    """Histories covering [first - HISTORY, last] per patient, and any later readings (so
    late findings can be recognised)."""
    if not spans:
        return {}
    patients = list(spans)
    first = min(first for first, _last in spans.values())
    since = first - HISTORY
    observations: dict[UUID, list[Observation]] = defaultdict(list)
    for patient_id, code, value, measured_at in conn.execute(
        "SELECT patient_id, code, value, measured_at FROM readings"
        " WHERE patient_id = ANY(%(patients)s) AND measured_at >= %(since)s"
        " AND (measured_at >= %(recent)s OR code = ANY(%(long)s))",
        {
            "patients": patients,
            "since": since,
            "recent": first - RECENT,
            "long": list(LONG_HISTORY_CODES),
        },
    ):
        observations[patient_id].append(Observation(code, value, measured_at))
    limits: dict[UUID, dict[str, Limits]] = defaultdict(dict)
    for patient_id, code, low, high, red_low, red_high in conn.execute(
        "SELECT patient_id, code, low, high, red_low, red_high FROM patient_thresholds"
        " WHERE patient_id = ANY(%s)",
        (patients,),
    ):
        limits[patient_id][code] = Limits(code, low, high, red_low, red_high)
    plans = {
        row[0]: (row[1], tuple(row[2]))
        for row in conn.execute(
            "SELECT p.id, coalesce(c.spo2_scale, 1), p.conditions FROM patients p"
            " LEFT JOIN care_plans c ON c.patient_id = p.id WHERE p.id = ANY(%s)",
            (patients,),
        )
    }
    symptoms: dict[UUID, list[SymptomAnswer]] = defaultdict(list)
    for patient_id, kind, answered_at, answers, total in conn.execute(
        "SELECT patient_id, kind, answered_at, answers, total FROM questionnaire_responses"
        " WHERE patient_id = ANY(%s) AND answered_at >= %s",
        (patients, since),
    ):
        symptoms[patient_id].append(SymptomAnswer(kind, answered_at, answers, total))
    return {
        patient_id: PatientHistory(
            patient_id=patient_id,
            observations=observations[patient_id],
            limits=limits[patient_id],
            spo2_scale=plans[patient_id][0],
            conditions=plans[patient_id][1],
            symptoms=symptoms[patient_id],
        )
        for patient_id in patients
        if patient_id in plans
    }
