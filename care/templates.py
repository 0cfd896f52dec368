"""Care-plan templates per condition, as data: what to measure, how often, default limits,
the SpO2 scale and the patient's self-management text. A clinician starts a patient's plan
from one and overrides what the patient needs, with a reason (care/careplan.py).

Sources: NEWS2 (Royal College of Physicians 2017) for SpO2, pulse, blood pressure and
temperature bands; BEAT-HF's alert limits for heart-failure blood pressure and pulse; the
ESC Heart Failure Association's weight advice (weight change is a rule over a window, so
there is no absolute weight limit here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class ScheduledMeasurement:
    """Measure `code` at least every `every_hours`; it is missing after `every_hours +
    grace_hours` without a reading."""

    code: str
    every_hours: int
    grace_hours: int = 0


@dataclass(frozen=True, slots=True)
class ThresholdDefault:
    """Yellow outside [low, high], red outside [red_low, red_high]; None: no limit there."""

    code: str
    low: float | None = None
    high: float | None = None
    red_low: float | None = None
    red_high: float | None = None


@dataclass(frozen=True, slots=True)
class CarePlanTemplate:
    key: str
    conditions: tuple[str, ...]
    spo2_scale: int
    measurements: tuple[ScheduledMeasurement, ...]
    thresholds: tuple[ThresholdDefault, ...]
    self_management: Mapping[str, str]
    """Plain-language advice to the patient, per language (nb, nn, en)."""
    source: str


SPO2, PULSE, SYSTOLIC, DIASTOLIC = "59408-5", "8867-4", "8480-6", "8462-4"
WEIGHT, TEMPERATURE, PEF = "29463-7", "8310-5", "19935-6"

_COPD_ADVICE = MappingProxyType(
    {
        "nb": "Mål oksygenmetning og puls hver morgen i hvile. Blir du mer tung i pusten, hoster "
        "mer eller får mer eller mørkere slim i to dager, skal du starte egenbehandlingen du har "
        "avtalt og ringe oppfølgingstjenesten. Ved akutt tung pust: ring 113.",
        "nn": "Mål oksygenmetninga og pulsen kvar morgon i kvile. Blir du tyngre i pusten, hostar "
        "meir eller får meir eller mørkare slim i to dagar, skal du starte eigenbehandlinga de "
        "har avtalt og ringje oppfølgingstenesta. Ved akutt tung pust: ring 113.",
        "en": "Measure oxygen saturation and pulse every morning at rest. If you are more "
        "breathless, cough more, or have more or darker phlegm for two days, start the "
        "self-treatment you agreed on and call the follow-up service. If you are suddenly very "
        "short of breath, call 113.",
    }
)
_HEART_FAILURE_ADVICE = MappingProxyType(
    {
        "nb": "Vei deg hver morgen etter vannlating, før frokost. Går vekten opp mer enn 2 kg på "
        "tre dager, eller hovner beina opp, eller blir du tyngre i pusten når du ligger: ring "
        "oppfølgingstjenesten samme dag. Ved brystsmerter eller akutt tung pust: ring 113.",
        "nn": "Veg deg kvar morgon etter vasslating, før frukost. Går vekta opp meir enn 2 kg på "
        "tre dagar, eller hovnar beina opp, eller blir du tyngre i pusten når du ligg: ring "
        "oppfølgingstenesta same dag. Ved brystsmerter eller akutt tung pust: ring 113.",
        "en": "Weigh yourself every morning after using the toilet, before breakfast. If your "
        "weight goes up more than 2 kg in three days, your legs swell, or you get more "
        "breathless lying down, call the follow-up service the same day. For chest pain or "
        "sudden severe breathlessness, call 113.",
    }
)

_COPD_MEASUREMENTS = (
    ScheduledMeasurement(SPO2, every_hours=24, grace_hours=12),
    ScheduledMeasurement(PULSE, every_hours=24, grace_hours=12),
    ScheduledMeasurement(PEF, every_hours=24 * 7, grace_hours=24),
)
_VITALS_NEWS2 = (
    # NEWS2: pulse 41-50 and 91-110 score 1, <=40 and >=131 score 3.
    ThresholdDefault(PULSE, low=50, high=110, red_low=40, red_high=130),
    # NEWS2: temperature 35.1-36.0 and 38.1-39.0 score 1, <=35.0 scores 3.
    ThresholdDefault(TEMPERATURE, low=36.0, high=38.0, red_low=35.0, red_high=39.0),
)

TEMPLATES: Final[Mapping[str, CarePlanTemplate]] = MappingProxyType(
    {
        "copd": CarePlanTemplate(
            key="copd",
            conditions=("copd",),
            spo2_scale=1,
            measurements=_COPD_MEASUREMENTS,
            thresholds=(
                # NEWS2 scale 1: 92-93 scores 2, <=91 scores 3.
                ThresholdDefault(SPO2, low=94, red_low=91),
                *_VITALS_NEWS2,
            ),
            self_management=_COPD_ADVICE,
            source="NEWS2 (RCP 2017), scale 1; COPD telemonitoring practice",
        ),
        "copd_hypercapnic": CarePlanTemplate(
            key="copd_hypercapnic",
            conditions=("copd",),
            spo2_scale=2,
            measurements=_COPD_MEASUREMENTS,
            thresholds=(
                # NEWS2 scale 2: target 88-92 %; 84-85 scores 2, <=83 scores 3.
                ThresholdDefault(SPO2, low=86, red_low=83),
                *_VITALS_NEWS2,
            ),
            self_management=_COPD_ADVICE,
            source="NEWS2 (RCP 2017), scale 2 for hypercapnic respiratory failure",
        ),
        "heart_failure": CarePlanTemplate(
            key="heart_failure",
            conditions=("heart_failure",),
            spo2_scale=1,
            measurements=(
                ScheduledMeasurement(WEIGHT, every_hours=24, grace_hours=12),
                ScheduledMeasurement(SYSTOLIC, every_hours=24, grace_hours=12),
                ScheduledMeasurement(DIASTOLIC, every_hours=24, grace_hours=12),
                ScheduledMeasurement(PULSE, every_hours=24, grace_hours=12),
            ),
            thresholds=(
                # BEAT-HF: with symptoms SBP <90 or >160; without <80 or >170.
                ThresholdDefault(SYSTOLIC, low=90, high=160, red_low=80, red_high=170),
                # BEAT-HF: with symptoms HR <50 or >100; without <40 or >110.
                ThresholdDefault(PULSE, low=50, high=100, red_low=40, red_high=110),
            ),
            self_management=_HEART_FAILURE_ADVICE,
            source="BEAT-HF alert limits; ESC HFA weight advice (weight change rules)",
        ),
    }
)
