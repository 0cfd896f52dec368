"""The patients of home follow-up as a clinician would describe them, for the simulator: what each
measures every morning over a month, what they answer, and which alerts the rule library is
expected to raise for them (none for the stable ones).

Why as data: the same descriptions drive `heimvakt simulate` and the test that runs a month of
them through the real engine (tests/alerts/test_scenarios.py), so the simulator's patients are
exactly the ones the rule library is checked against. Values come from a seeded generator:
the same seed gives the same month.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from core.limits import Limits

SPO2, PULSE, PEF = "59408-5", "8867-4", "19935-6"
WEIGHT, SYSTOLIC, DIASTOLIC = "29463-7", "8480-6", "8462-4"

Day = Callable[[int, random.Random], dict[str, float] | None]
"""A patient's morning readings on a day (LOINC code -> value), or None: nothing measured."""


def stable_copd(day: int, rng: random.Random) -> dict[str, float]:
    readings: dict[str, float] = {
        SPO2: rng.choice([95, 95, 96, 96, 97]),
        PULSE: rng.randint(68, 82),
    }
    if day % 7 == 0:
        readings[PEF] = rng.randint(340, 360)
    return readings


def copd_exacerbation(day: int, rng: random.Random) -> dict[str, float]:
    readings = stable_copd(day, rng)
    if day >= 20:
        worse = day - 19
        readings[SPO2] = 96 - worse
        readings[PULSE] = 76 + 3 * worse
    return readings


def stable_heart_failure(day: int, rng: random.Random) -> dict[str, float]:
    return {
        WEIGHT: round(82.0 + rng.uniform(-0.3, 0.3), 1),
        SYSTOLIC: rng.randint(122, 136),
        DIASTOLIC: rng.randint(72, 84),
        PULSE: rng.randint(62, 76),
    }


def heart_failure_weight_gain(day: int, rng: random.Random) -> dict[str, float]:
    readings = stable_heart_failure(day, rng)
    if day >= 25:
        readings[WEIGHT] = round(82.0 + 0.8 * (day - 24), 1)
    return readings


def stops_measuring(day: int, rng: random.Random) -> dict[str, float] | None:
    return stable_copd(day, rng) if day < 15 else None


def stable_hypoxaemic_copd(day: int, rng: random.Random) -> dict[str, float]:
    """Chronic hypoxaemia at the prescribed 88-92 %: on NEWS2 scale 1, 91 % scores 3 alone."""
    readings: dict[str, float] = {
        SPO2: rng.choice([89, 90, 90, 91, 91, 92]),
        PULSE: rng.randint(70, 84),
    }
    if day % 7 == 0:
        readings[PEF] = rng.randint(240, 260)
    return readings


def oximeter_only(day: int, rng: random.Random) -> dict[str, float]:
    """Measures with the oximeter; the peak-flow meter it was given stays in its box."""
    readings = stable_copd(day, rng)
    readings.pop(PEF, None)
    return readings


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    template: str
    """The care-plan template (copd, heart_failure)."""
    days: Day
    devices: Mapping[str, tuple[str, ...]]
    """Device kind -> the LOINC codes it measures."""
    symptoms: Callable[[int], dict[str, bool]] | None = None
    """The daily symptom answers, on the days the patient measures."""
    expected: frozenset[str] = frozenset()
    """The alert instances the rule library should raise over a month; ``{kind}`` stands for
    the id of the patient's device of that kind."""
    plan: Mapping[str, Any] = field(default_factory=dict)
    """What the clinician set when making the plan (do_create_care_plan's keywords)."""
    new_devices: frozenset[str] = frozenset()
    """Device kinds registered on NEW_DEVICE_DAY with an assignment dated back to the start,
    never heard from."""


NEW_DEVICE_DAY: Final = 10
"""The day the backdated peak-flow meter is registered (its assignment says day -1)."""


def no_symptoms(day: int) -> dict[str, bool]:
    return {"more_breathless": False, "more_swelling": False, "more_cough": False}


def swelling_from_day_27(day: int) -> dict[str, bool]:
    return {**no_symptoms(day), "more_swelling": day >= 27}


COPD_DEVICES: Final = {"pulse_oximeter": (SPO2, PULSE), "peak_flow_meter": (PEF,)}
HF_DEVICES: Final = {"scale": (WEIGHT,), "blood_pressure_monitor": (SYSTOLIC, DIASTOLIC, PULSE)}


SCENARIOS: Final = (
    Scenario("Stabil KOLS", "copd", stable_copd, COPD_DEVICES),
    Scenario(
        "KOLS-forverring",
        "copd",
        copd_exacerbation,
        COPD_DEVICES,
        expected=frozenset({"threshold:59408-5:low", "spo2_drop:59408-5", "news2_partial"}),
    ),
    Scenario(
        "Stabil hjertesvikt",
        "heart_failure",
        stable_heart_failure,
        HF_DEVICES,
        symptoms=no_symptoms,
    ),
    Scenario(
        "Hjertesvikt med vektøkning",
        "heart_failure",
        heart_failure_weight_gain,
        HF_DEVICES,
        symptoms=swelling_from_day_27,
        expected=frozenset({"weight_gain:29463-7", "daily_symptoms"}),
    ),
    Scenario(
        "Slutter å måle",
        "copd",
        stops_measuring,
        COPD_DEVICES,
        expected=frozenset(
            {
                "missing_measurement:59408-5",
                "missing_measurement:8867-4",
                "missing_measurement:19935-6",
                "device_silent:{pulse_oximeter}",
                "device_silent:{peak_flow_meter}",
            }
        ),
    ),
    Scenario(
        "Stabil hypoksemisk KOLS",
        "copd",
        stable_hypoxaemic_copd,
        COPD_DEVICES,
        plan={
            "spo2_target": (88, 92),
            "limits": [
                Limits(SPO2, low=88, red_low=86),
                Limits(PULSE, low=51, high=110, red_low=41, red_high=130),
            ],
        },
    ),
    Scenario(
        "Ny måler, tilbakedatert",
        "copd",
        oximeter_only,
        COPD_DEVICES,
        new_devices=frozenset({"peak_flow_meter"}),
        expected=frozenset({"missing_measurement:19935-6", "device_silent:{peak_flow_meter}"}),
    ),
)


@dataclass(frozen=True, slots=True)
class Morning:
    """What one patient measured and answered one morning."""

    patient: int
    """Which of the simulated patients (their index)."""
    day: int
    at: datetime
    readings: Mapping[str, float]
    symptoms: Mapping[str, bool] | None


def mornings(
    patients: Sequence[Scenario], *, seed: int, days: int, start: datetime
) -> Iterator[Morning]:
    """Each patient's mornings, day by day, in the patients' order; measured some time in the
    first 45 minutes after `start`'s time of day. A day a patient does not measure is left out."""
    rng = random.Random(seed)  # noqa: S311  # simulated values, not secrets
    for day in range(days):
        morning = start + timedelta(days=day)
        for index, scenario in enumerate(patients):
            at = morning + timedelta(minutes=rng.randint(0, 45))
            readings = scenario.days(day, rng)
            if readings is None:
                continue
            answers = None if scenario.symptoms is None else scenario.symptoms(day)
            yield Morning(index, day, at, readings, answers)
