"""Per-patient limits: yellow outside [low, high], red outside [red_low, red_high].

A value equal to a limit is inside it. A value clearly inside the yellow band (by the
measurement's hysteresis margin) is GREEN and re-arms the rule after a resolved alert; one just
inside the band says nothing, so a value hovering at a limit cannot flap.
"""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType
from typing import Final, Literal

from alerts.findings import Category, Finding, Observation, PatientContext
from alerts.series import moment_of, span
from core.catalog import MEASUREMENTS
from core.limits import Limits, Severity

RULE: Final = "threshold"
VERSION: Final = 2
"""Raised whenever the logic or the defaults below change (the catalogue shows it)."""
MARGINS: Final = MappingProxyType({m.code: m.hysteresis_margin for m in MEASUREMENTS})
"""Each measurement's hysteresis margin, as the measurement catalog describes it."""
DEFAULT_MARGIN: Final = 0.0


def newest(
    context: PatientContext, code: str, *, within: timedelta = timedelta(0)
) -> Observation | None:
    """The newest reading of `code` measured in [at - within, at]. With no `within`, only a
    reading taken at `context.at` itself: the engine evaluates each reading at its own time,
    so an older reading has had its verdict already and is never judged again."""
    found = latest(context, code, within=within)
    return None if found is None else Observation(code, found[1], moment_of(found[0]))


def latest(
    context: PatientContext, code: str, *, within: timedelta = timedelta(0)
) -> tuple[int, float] | None:
    """`newest` as (time in µs, value), for rules that look at many measurements at once."""
    series = context.history.get(code)
    if series is None:
        return None
    at = context.at_micros
    index = series.newest(at - span(within), at)
    return None if index is None else (series.times[index], series.values[index])


def values_between(
    context: PatientContext, code: str, nearest: timedelta, farthest: timedelta
) -> list[float]:
    """`code`'s values measured in [at - farthest, at - nearest], oldest first."""
    series = context.history.get(code)
    if series is None:
        return []
    at = context.at_micros
    first, last = series.bounds(at - span(farthest), at - span(nearest))
    return list(series.values[first:last])


def classify(
    value: float, limits: Limits, margin: float
) -> tuple[Severity, Literal["low", "high"] | None] | None:
    """(severity, direction) of one value against one measurement's limits; None: no verdict."""
    if limits.red_low is not None and value < limits.red_low:
        return Severity.RED, "low"
    if limits.red_high is not None and value > limits.red_high:
        return Severity.RED, "high"
    if limits.low is not None and value < limits.low:
        return Severity.YELLOW, "low"
    if limits.high is not None and value > limits.high:
        return Severity.YELLOW, "high"
    low = limits.low if limits.low is not None else limits.red_low
    high = limits.high if limits.high is not None else limits.red_high
    clear_low = low is None or value >= low + margin
    clear_high = high is None or value <= high - margin
    return (Severity.GREEN, None) if clear_low and clear_high else None


def evaluate(context: PatientContext) -> list[Finding]:
    findings = []
    judged = context.limits.keys() if context.measured is None else context.measured
    for code, limits in sorted(context.limits.items()):
        if code not in judged:
            continue
        reading = newest(context, code)
        if reading is None:
            continue
        verdict = classify(reading.value, limits, MARGINS.get(code, DEFAULT_MARGIN))
        if verdict is None:
            continue
        severity, direction = verdict
        if severity is Severity.GREEN:
            # Clearly normal re-arms both directions of this measurement.
            findings += [
                Finding(
                    rule=RULE,
                    rule_version=VERSION,
                    instance=f"{RULE}:{code}:{side}",
                    severity=Severity.GREEN,
                    category=Category.CLINICAL,
                    measured_at=reading.measured_at,
                    code=code,
                    value=reading.value,
                )
                for side in ("low", "high")
            ]
            continue
        findings.append(
            Finding(
                rule=RULE,
                rule_version=VERSION,
                instance=f"{RULE}:{code}:{direction}",
                severity=severity,
                category=Category.CLINICAL,
                measured_at=reading.measured_at,
                code=code,
                direction=direction,
                value=reading.value,
                details={
                    "low": limits.low,
                    "high": limits.high,
                    "red_low": limits.red_low,
                    "red_high": limits.red_high,
                },
            )
        )
    return findings
