"""Building contexts for rule tests: readings by code, limits, answers, at a fixed moment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from alerts.findings import Finding, PatientContext, SymptomAnswer
from alerts.series import Series, micros
from core.limits import Limits

AT = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
PATIENT = UUID(int=1)


def ago(**delta: float) -> datetime:
    return AT - timedelta(**delta)


def context(
    readings: Sequence[tuple[str, float, datetime]] = (),
    *,
    limits: Sequence[Limits] = (),
    spo2_scale: int = 1,
    on_oxygen: bool = False,
    symptoms: Sequence[SymptomAnswer] = (),
    at: datetime = AT,
    parameters: Mapping[str, float] | None = None,
) -> PatientContext:
    history: dict[str, Series] = {}
    for code, value, measured_at in readings:
        history.setdefault(code, Series()).add(micros(measured_at), value)
    return PatientContext(
        patient_id=PATIENT,
        at=at,
        history=history,
        limits={limit.code: limit for limit in limits},
        spo2_scale=spo2_scale,
        on_oxygen=on_oxygen,
        symptoms=tuple(symptoms),
        parameters=parameters or {},
    )


def daily(answered_at: datetime = AT, **answers: bool) -> SymptomAnswer:
    base: Mapping[str, Any] = {
        "more_breathless": False,
        "more_swelling": False,
        "more_cough": False,
    }
    return SymptomAnswer("daily_symptoms", answered_at, {**base, **answers})


def cat(total_items: Sequence[int], answered_at: datetime = AT) -> SymptomAnswer:
    return SymptomAnswer(
        "cat", answered_at, {f"q{i + 1}": v for i, v in enumerate(total_items)}, sum(total_items)
    )


def verdicts(findings: Sequence[Finding]) -> list[tuple[str, str]]:
    """(instance, severity) of each finding, in order."""
    return [(f.instance, f.severity.value) for f in findings]
