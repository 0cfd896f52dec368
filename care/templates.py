"""Care-plan templates per condition, as data: what to measure, how often, default limits,
the SpO2 scale and the patient's self-management text. A clinician starts a patient's plan
from one and overrides what the patient needs, with a reason (care/careplan.py).

Every default cites ../shared/domain/clinical-reference.md (the clinical reference): NEWS2
(RCP 2017, §2.1 [R1][R2][R3]) for SpO2, pulse and temperature; BEAT-HF's urgent-alert limits
(§2.2 [H4]) for heart-failure blood pressure and pulse; the ESC Heart Failure Association's
weight advice (§2.2 [H1][H2]). Weight change is a rule over a window (alerts/library/trends.py),
so no template has an absolute weight limit. All defaults are starting points for the
clinician, who sets each patient's own limits (national advice: "the patient's own normal
values", §4 [N-6]).

How NEWS2 bands become limits: a value equal to a limit is inside it
(alerts/library/threshold.py), so "<= 91 scores 3" is `red_low=92`. Red is where one NEWS2
parameter scores 3 (urgent review, [R3]); yellow is where it scores 2, or 1 on a side that has
no score-2 band (pulse low, temperature).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from core.limits import Limits


@dataclass(frozen=True, slots=True)
class ScheduledMeasurement:
    """Measure `code` at least every `every_hours`; it is missing after `every_hours +
    grace_hours` without a reading."""

    code: str
    every_hours: int
    grace_hours: int = 0


@dataclass(frozen=True, slots=True)
class CarePlanTemplate:
    key: str
    conditions: tuple[str, ...]
    spo2_scale: int
    measurements: tuple[ScheduledMeasurement, ...]
    thresholds: tuple[Limits, ...]
    self_management: Mapping[str, str]
    """Plain-language advice to the patient, per language (nb, nn, en)."""
    source: str


SPO2, PULSE, SYSTOLIC, DIASTOLIC = "59408-5", "8867-4", "8480-6", "8462-4"
WEIGHT, TEMPERATURE, PEF = "29463-7", "8310-5", "19935-6"

_MEASURE_EVERY_MORNING = {
    "nb": "Mål oksygenmetning og puls hver morgen i hvile.",
    "nn": "Mål oksygenmettinga og pulsen kvar morgon i kvile.",
    "en": "Measure oxygen saturation and pulse every morning at rest.",
}
# Scale 2 is for a prescribed target of 88-92 % (clinical reference §2.1 [R2][R4]).
_HYPERCAPNIC_TARGET = {
    "nb": "Målet ditt er en metning på mellom 88 og 92 %. Høyere er ikke bedre for deg: "
    "ikke skru opp oksygenet mer enn legen har bestemt.",
    "nn": "Målet ditt er ei metting på mellom 88 og 92 %. Høgare er ikkje betre for deg: "
    "ikkje skru opp oksygenet meir enn legen har bestemt.",
    "en": "Your target is a saturation between 88 and 92 %. Higher is not better for you: "
    "do not turn up your oxygen beyond what your doctor prescribed.",
}
_COPD_WORSE = {
    "nb": "Blir du mer tung i pusten, hoster mer eller får mer eller mørkere slim i to dager, "
    "skal du starte egenbehandlingen du har avtalt og ringe oppfølgingstjenesten. Ved akutt "
    "tung pust: ring 113.",
    "nn": "Blir du tyngre i pusten, hostar meir eller får meir eller mørkare slim i to dagar, "
    "skal du starte eigenbehandlinga du har avtalt og ringje oppfølgingstenesta. Ved akutt "
    "tung pust: ring 113.",
    "en": "If you are more breathless, cough more, or have more or darker phlegm for two days, "
    "start the self-treatment you agreed on and call the follow-up service. If you are "
    "suddenly very short of breath, call 113.",
}


def _advice(*parts: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(
        {language: " ".join(part[language] for part in parts) for language in ("nb", "nn", "en")}
    )


_COPD_ADVICE = _advice(_MEASURE_EVERY_MORNING, _COPD_WORSE)
_HYPERCAPNIC_COPD_ADVICE = _advice(_MEASURE_EVERY_MORNING, _HYPERCAPNIC_TARGET, _COPD_WORSE)
# The weight advice is the ESC HFA's (clinical reference §2.2 [H1]).
_HEART_FAILURE_ADVICE = MappingProxyType(
    {
        "nb": "Vei deg hver morgen etter vannlating, før frokost, og mål blodtrykk og puls. "
        "Går vekten opp mer enn 2 kg på tre dager, eller hovner beina opp, eller blir du tyngre "
        "i pusten når du ligger: ring oppfølgingstjenesten samme dag. Ved brystsmerter eller "
        "akutt tung pust: ring 113.",
        "nn": "Veg deg kvar morgon etter vasslating, før frukost, og mål blodtrykket og pulsen. "
        "Går vekta opp meir enn 2 kg på tre dagar, eller hovnar beina opp, eller blir du tyngre "
        "i pusten når du ligg: ring oppfølgingstenesta same dag. Ved brystsmerter eller akutt "
        "tung pust: ring 113.",
        "en": "Weigh yourself every morning after using the toilet, before breakfast, and "
        "measure your blood pressure and pulse. If your weight goes up more than 2 kg in three "
        "days, your legs swell, or you get more breathless lying down, call the follow-up "
        "service the same day. For chest pain or sudden severe breathlessness, call 113.",
    }
)

_COPD_MEASUREMENTS = (
    ScheduledMeasurement(SPO2, every_hours=24, grace_hours=12),
    ScheduledMeasurement(PULSE, every_hours=24, grace_hours=12),
    # Weekly PEF: the follow-up sees the trend. The peak_flow_drop rule needs daily readings
    # (five in seven days, clinical reference §2.3 [X1]); a clinician who wants it sets PEF daily.
    ScheduledMeasurement(PEF, every_hours=24 * 7, grace_hours=24),
)
_VITALS_NEWS2 = (
    # NEWS2 pulse: <=40 scores 3, 41-50 scores 1 (no score-2 band below), 111-130 scores 2,
    # >=131 scores 3.
    Limits(PULSE, low=51, high=110, red_low=41, red_high=130),
    # NEWS2 temperature: <=35.0 scores 3, 35.1-36.0 and 38.1-39.0 score 1, >=39.1 scores 2
    # (the highest score above; red there is our judgement, to be confirmed by clinicians).
    Limits(TEMPERATURE, low=36.1, high=38.0, red_low=35.1, red_high=39.0),
)

TEMPLATES: Final[Mapping[str, CarePlanTemplate]] = MappingProxyType(
    {
        "copd": CarePlanTemplate(
            key="copd",
            conditions=("copd",),
            spo2_scale=1,
            measurements=_COPD_MEASUREMENTS,
            thresholds=(
                # NEWS2 scale 1 (COPD without hypercapnia, [R2]): 92-93 scores 2, <=91 scores 3.
                Limits(SPO2, low=94, red_low=92),
                *_VITALS_NEWS2,
            ),
            self_management=_COPD_ADVICE,
            source="clinical-reference.md §2.1 NEWS2 scale 1 [R1][R2][R3]; §2.3 COPD signals",
        ),
        "copd_hypercapnic": CarePlanTemplate(
            key="copd_hypercapnic",
            conditions=("copd",),
            spo2_scale=2,
            measurements=_COPD_MEASUREMENTS,
            thresholds=(
                # NEWS2 scale 2 (prescribed target 88-92 %, [R2][R4]): 86-87 scores 1, 84-85
                # scores 2, <=83 scores 3. No high limit: >=93 scores only on oxygen, and
                # whether the patient is on oxygen is not measured at home.
                Limits(SPO2, low=86, red_low=84),
                *_VITALS_NEWS2,
            ),
            self_management=_HYPERCAPNIC_COPD_ADVICE,
            source="clinical-reference.md §2.1 NEWS2 scale 2 (hypercapnic failure) [R2][R4]; §2.3",
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
                # BEAT-HF [H4]: SBP with symptoms <90 or >160 (yellow), without symptoms <80
                # or >170 (red).
                Limits(SYSTOLIC, low=90, high=160, red_low=80, red_high=170),
                # BEAT-HF [H4]: HR with symptoms <50 or >100 (yellow), without <40 or >110.
                Limits(PULSE, low=50, high=100, red_low=40, red_high=110),
            ),
            self_management=_HEART_FAILURE_ADVICE,
            source="clinical-reference.md §2.2: BEAT-HF alert limits [H4]; ESC HFA weight [H1][H2]",
        ),
    }
)
