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

WEIGHT_GAIN_VERSION: Final = 1
SPO2_DROP_VERSION: Final = 1
PEAK_FLOW_DROP_VERSION: Final = 1
"""Each rule's version, raised whenever its logic or defaults below change."""

WEIGHT_GAIN_1_DAY: Final = 1.5
WEIGHT_GAIN_3_DAYS: Final = 2.0
YESTERDAY: Final = (timedelta(hours=18), timedelta(hours=30))
THREE_DAYS_AGO: Final = (timedelta(hours=60), timedelta(hours=84))
"""Windows of earlier readings to compare with, as (nearest, farthest) before the new one."""

SPO2_DROP: Final = 4.0
SPO2_CLEAR: Final = 2.0
BASELINE_DAYS: Final = 7
BASELINE_MIN_READINGS: Final = 3
BASELINE_GAP: Final = timedelta(hours=12)
"""The baseline ends this long before the new reading, so a fall is not its own baseline."""

FLOW_Z: Final = 1.645
FLOW_MIN_READINGS: Final = 5


def weight_gain(context: PatientContext) -> list[Finding]:
    current = newest(context, WEIGHT)
    if current is None:
        return []
    gains = {}
    for label, (nearest, farthest), limit in (
        ("1_day", YESTERDAY, WEIGHT_GAIN_1_DAY),
        ("3_days", THREE_DAYS_AGO, WEIGHT_GAIN_3_DAYS),
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
    found = context.history[SPO2].median(
        at - span(timedelta(days=BASELINE_DAYS)), at - span(BASELINE_GAP)
    )
    if found is None or found[1] < BASELINE_MIN_READINGS:
        return []
    median, count = found
    drop = round(median - current.value, 2)
    if drop >= SPO2_DROP:
        severity = Severity.YELLOW
    elif drop <= SPO2_CLEAR:
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
            details={"baseline_median": median, "drop": drop, "baseline_readings": count},
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
        limit = round(mean - FLOW_Z * sd, 3)
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
