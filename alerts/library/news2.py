"""NEWS2 (Royal College of Physicians 2017), partial: from the vital signs measured at home.

Consciousness is never available at home and respiration rate often is not, so the score is
always labelled partial and says which parameters it used. Bands are applied to values rounded
as NEWS2 charts them: whole numbers, temperature to one decimal (half up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from alerts.findings import Category, Finding, PatientContext, Severity
from alerts.library.threshold import latest
from alerts.series import moment_of

RULE: Final = "news2_partial"
VERSION: Final = 1
"""Raised whenever the logic or the defaults below change (the catalogue shows it)."""
WINDOW: Final = timedelta(hours=12)
MIN_PARAMETERS: Final = 2

RESPIRATION, SPO2, SYSTOLIC, PULSE, TEMPERATURE = "9279-1", "59408-5", "8480-6", "8867-4", "8310-5"
VITAL_SIGNS: Final = frozenset({RESPIRATION, SPO2, SYSTOLIC, PULSE, TEMPERATURE})


def _round(value: float, places: int = 0) -> float:
    if round(value, places) == value:  # already at the chart's precision (most readings)
        return value
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))


Bands = tuple[tuple[float, int], ...]
"""(highest value in the band, score), rising; a value above the last band scores `above`."""

RESPIRATION_BANDS: Final[Bands] = ((8, 3), (11, 1), (20, 0), (24, 2))
SPO2_SCALE1_BANDS: Final[Bands] = ((91, 3), (93, 2), (95, 1))
SPO2_SCALE2_AIR_BANDS: Final[Bands] = ((83, 3), (85, 2), (87, 1))
SPO2_SCALE2_OXYGEN_BANDS: Final[Bands] = ((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2))
SYSTOLIC_BANDS: Final[Bands] = ((90, 3), (100, 2), (110, 1), (219, 0))
PULSE_BANDS: Final[Bands] = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2))
TEMPERATURE_BANDS: Final[Bands] = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1))


def score(value: float, bands: Bands, *, above: int, places: int = 0) -> int:
    rounded = _round(value, places)
    return next((points for upper, points in bands if rounded <= upper), above)


def respiration_score(rate: float) -> int:
    return score(rate, RESPIRATION_BANDS, above=3)


def spo2_scale1_score(spo2: float) -> int:
    return score(spo2, SPO2_SCALE1_BANDS, above=0)


def spo2_scale2_score(spo2: float, *, on_oxygen: bool) -> int:
    """Scale 2: 88-92 % scores 0, and so does 93 % or more on air; on oxygen, high scores."""
    if on_oxygen:
        return score(spo2, SPO2_SCALE2_OXYGEN_BANDS, above=3)
    return score(spo2, SPO2_SCALE2_AIR_BANDS, above=0)


def systolic_score(systolic: float) -> int:
    return score(systolic, SYSTOLIC_BANDS, above=3)


def pulse_score(pulse: float) -> int:
    return score(pulse, PULSE_BANDS, above=3)


def temperature_score(celsius: float) -> int:
    return score(celsius, TEMPERATURE_BANDS, above=2, places=1)


def band(total: int, *, any_three: bool) -> str:
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if any_three:
        return "low-medium"
    return "low"


SEVERITY: Final = {
    "high": Severity.RED,
    "medium": Severity.YELLOW,
    "low-medium": Severity.YELLOW,
    "low": Severity.GREEN,
}


def scorers(*, scale2: bool, on_oxygen: bool) -> dict[str, Callable[[float], int]]:
    """Each vital sign's scoring, SpO2 on the patient's scale."""
    return {
        RESPIRATION: respiration_score,
        SPO2: (lambda v: spo2_scale2_score(v, on_oxygen=on_oxygen))
        if scale2
        else spo2_scale1_score,
        SYSTOLIC: systolic_score,
        PULSE: pulse_score,
        TEMPERATURE: temperature_score,
    }


def scores_over_time(
    readings: Iterable[tuple[datetime, str, float]], *, scale2: bool, on_oxygen: bool = False
) -> list[tuple[datetime, int]]:
    """The partial score after each vital-sign reading, from the newest value of each vital
    sign within WINDOW, as `evaluate` scores the newest moment; none where fewer than
    MIN_PARAMETERS were measured in the window. `readings`: (time, code, value), oldest first.
    For drawing the score over time; the alert itself is `evaluate`'s."""
    score_of = scorers(scale2=scale2, on_oxygen=on_oxygen)
    oxygen = 2 if on_oxygen else 0
    newest: dict[str, tuple[datetime, float]] = {}
    found: list[tuple[datetime, int]] = []
    for at, code, value in readings:
        if code not in score_of:
            continue
        newest[code] = (at, value)
        current = [score_of[c](v) for c, (when, v) in newest.items() if at - when <= WINDOW]
        if len(current) >= MIN_PARAMETERS:
            found.append((at, sum(current) + oxygen))
    return found


def evaluate(context: PatientContext) -> list[Finding]:
    if sum(code in context.history for code in VITAL_SIGNS) < MIN_PARAMETERS:
        return []  # fewer vital signs ever measured than a score needs: no lookups
    scale2 = context.spo2_scale == 2
    score_of = scorers(scale2=scale2, on_oxygen=context.on_oxygen)
    used: dict[str, dict[str, float]] = {}
    newest_time = None
    for code, score in score_of.items():
        found = latest(context, code, within=WINDOW)
        if found is None:
            continue
        time, value = found
        used[code] = {"value": value, "score": score(value)}
        newest_time = time if newest_time is None else max(newest_time, time)
    if len(used) < MIN_PARAMETERS or newest_time is None:
        return []
    newest_at = moment_of(newest_time)
    oxygen = 2 if context.on_oxygen else 0
    total = sum(int(p["score"]) for p in used.values()) + oxygen
    risk = band(total, any_three=any(p["score"] == 3 for p in used.values()))
    return [
        Finding(
            rule=RULE,
            rule_version=VERSION,
            instance=RULE,
            severity=SEVERITY[risk],
            category=Category.CLINICAL,
            measured_at=newest_at,
            value=float(total),
            details={
                "partial": True,
                "total": total,
                "band": risk,
                "spo2_scale": 2 if scale2 else 1,
                "supplemental_oxygen": oxygen,
                "used": used,
                "missing": [*sorted(set(score_of) - set(used)), "consciousness"],
            },
        )
    ]
