"""Change over a window, against the patient's own earlier readings: heart-failure weight
gain, an SpO2 fall below the personal baseline, and a fall in peak flow or FEV1."""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Final

from alerts.findings import Category, Finding, PatientContext, Severity
from alerts.library.threshold import newest, values_between
from alerts.series import MICROSECOND, span

WEIGHT, SPO2, PEF, FEV1 = "29463-7", "59408-5", "19935-6", "20150-9"

WEIGHT_GAIN_VERSION: Final = 2
SPO2_DROP_VERSION: Final = 2
PEAK_FLOW_DROP_VERSION: Final = 2
"""Each rule's version, raised whenever its logic or defaults below change (2: the numeric
parameters are tuned per patient through the care plan, core/rule_parameters.py)."""

YESTERDAY: Final = (timedelta(hours=18), timedelta(hours=30))
WINDOW_SLACK: Final = timedelta(hours=12)
"""The earlier readings compared with: yesterday's, and those (window_days * 24 ± 12) hours
before the new one (60-84 hours for the default three days)."""

SPO2_CLEAR_BELOW: Final = 2.0
"""A fall this much smaller than the limit (or less) is clearly normal: it re-arms the rule."""
BASELINE_DAYS: Final = 7
"""The longest baseline (the engine keeps 8 days of readings)."""
BASELINE_MIN_READINGS: Final = 3
BASELINE_GAP: Final = timedelta(hours=12)
"""The baseline ends this long before the new reading, so a fall is not its own baseline."""

FLOW_MIN_READINGS: Final = 5


def weight_gain(context: PatientContext) -> list[Finding]:
    current = newest(context, WEIGHT)
    if current is None:
        return []
    gains = {}
    days = timedelta(days=context.parameter("weight_gain.window_days"))
    for label, (nearest, farthest), limit in (
        ("1_day", YESTERDAY, context.parameter("weight_gain.kg_in_1_day")),
        (
            f"{days.days}_days",
            (days - WINDOW_SLACK, days + WINDOW_SLACK),
            context.parameter("weight_gain.kg_in_window"),
        ),
    ):
        earlier = values_between(context, WEIGHT, nearest, farthest)
        if earlier:
            gain = round(current.value - min(earlier), 2)
            gains[label] = (gain, limit)
    if not gains:
        return []
    breached = any(gain >= limit for gain, limit in gains.values())
    return [
        Finding(
            rule="weight_gain",
            rule_version=WEIGHT_GAIN_VERSION,
            instance=f"weight_gain:{WEIGHT}",
            severity=Severity.YELLOW if breached else Severity.GREEN,
            category=Category.CLINICAL,
            measured_at=current.measured_at,
            code=WEIGHT,
            direction="high",
            value=current.value,
            details={label: {"gain_kg": g, "limit_kg": lim} for label, (g, lim) in gains.items()},
        )
    ]


def spo2_drop(context: PatientContext) -> list[Finding]:
    current = newest(context, SPO2)
    if current is None:
        return []
    at = context.at_micros
    days = context.parameter("spo2_drop.baseline_days")
    found = context.history[SPO2].median(at - span(timedelta(days=days)), at - span(BASELINE_GAP))
    if found is None or found[1] < BASELINE_MIN_READINGS:
        return []
    median, count = found
    drop = round(median - current.value, 2)
    points = context.parameter("spo2_drop.points")
    if drop >= points:
        severity = Severity.YELLOW
    elif drop <= points - SPO2_CLEAR_BELOW:
        severity = Severity.GREEN
    else:
        return []
    return [
        Finding(
            rule="spo2_drop",
            rule_version=SPO2_DROP_VERSION,
            instance=f"spo2_drop:{SPO2}",
            severity=severity,
            category=Category.CLINICAL,
            measured_at=current.measured_at,
            code=SPO2,
            direction="low",
            value=current.value,
            details={
                "baseline_median": median,
                "drop": drop,
                "limit": points,
                "baseline_days": days,
                "baseline_readings": count,
            },
        )
    ]


def peak_flow_drop(context: PatientContext) -> list[Finding]:
    findings = []
    for code in (PEF, FEV1):
        current = newest(context, code)
        if current is None:
            continue
        values = values_between(context, code, MICROSECOND, timedelta(days=BASELINE_DAYS))
        if len(values) < FLOW_MIN_READINGS:
            continue
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        limit = round(mean - context.parameter("peak_flow_drop.z") * sd, 3)
        findings.append(
            Finding(
                rule="peak_flow_drop",
                rule_version=PEAK_FLOW_DROP_VERSION,
                instance=f"peak_flow_drop:{code}",
                severity=Severity.YELLOW if current.value < limit else Severity.GREEN,
                category=Category.CLINICAL,
                measured_at=current.measured_at,
                code=code,
                direction="low",
                value=current.value,
                details={
                    "mean": round(mean, 3),
                    "sd": round(sd, 3),
                    "limit": limit,
                    "readings": len(values),
                },
            )
        )
    return findings
