"""Every rule as versioned data: what it checks, why, from which source, with which defaults,
how a clinician tunes it, and the requirement and hazard it answers (IEC 62304 traceability).

A rule's `version` rises whenever its logic or defaults change; an alert records the version
that raised it. tests/alerts/library/test_catalogue.py fails the suite if a rule has no tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from alerts.findings import Category, Finding, PatientContext
from alerts.library import news2, symptoms, threshold, trends
from core.catalog import MEASUREMENTS
from core.rule_parameters import TUNABLES


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    version: int
    category: Category
    title: Mapping[str, str]
    explanation: Mapping[str, str]
    """Plain language per language (nb, nn, en), shown to the nurse next to the alert."""
    source: str
    defaults: Mapping[str, Any]
    tuning: str
    requirement: str
    hazard: str
    evaluate: Callable[[PatientContext], list[Finding]] | None
    """None for rules the engine's sweep evaluates in SQL (time-based, not reading-based)."""
    triggers: frozenset[str] = frozenset()
    """The measurements (LOINC codes) whose new reading can change this rule's verdict: on
    ingest the engine runs a rule only at moments where one of them was measured. Empty for
    rules about questionnaire answers, which run when an answer arrives."""
    disarmed_by_resolution: bool = True
    """Whether resolving an alert of this rule mutes its instance until a clearly normal
    finding re-arms it (hysteresis). False for a rule that never finds anything clearly
    normal and whose every occurrence is news: the next one opens a new alert."""


def _text(nb: str, nn: str, en: str) -> Mapping[str, str]:
    return MappingProxyType({"nb": nb, "nn": nn, "en": en})


def _tunable(rule: str, **fixed: Any) -> Mapping[str, Any]:
    """The rule's defaults: its tunable parameters' (core/rule_parameters.py) and `fixed`."""
    prefix = f"{rule}."
    tuned = {
        name.removeprefix(prefix): "from the schedule" if t.default is None else t.default
        for name, t in TUNABLES.items()
        if name.startswith(prefix)
    }
    return MappingProxyType({**tuned, **fixed})


_PLAN_TUNING = (
    "Per patient in the care plan's rule_parameters ({names}): PATCH "
    "/api/v1/patients/{{id}}/care-plan with the values and a reason; versioned like limits."
)


def _tuning(rule: str) -> str:
    names = ", ".join(f"`{name}`" for name in TUNABLES if name.startswith(f"{rule}."))
    return _PLAN_TUNING.format(names=names)


RULES: Final[tuple[Rule, ...]] = (
    Rule(
        id="threshold",
        version=threshold.VERSION,
        category=Category.CLINICAL,
        title=_text("Utenfor grensene", "Utanfor grensene", "Outside the limits"),
        explanation=_text(
            "Målingen er utenfor grensene som er satt for denne pasienten "
            "(gul utenfor de gule grensene, rød utenfor de røde).",
            "Målinga er utanfor grensene som er sette for denne pasienten "
            "(gul utanfor dei gule grensene, raud utanfor dei raude).",
            "The reading is outside the limits set for this patient "
            "(yellow outside the yellow limits, red outside the red ones).",
        ),
        source="Per-patient limits in the care plan; template defaults from NEWS2 (RCP 2017) "
        "and BEAT-HF (care/templates.py).",
        defaults=MappingProxyType({"hysteresis_margins": dict(threshold.MARGINS)}),
        tuning="The care plan's thresholds: PATCH /api/v1/patients/{id}/care-plan with the "
        "limits and a reason (template defaults otherwise).",
        requirement="REQ-ALERT-001",
        hazard="HAZ-001: a deterioration beyond the patient's limits is missed",
        evaluate=threshold.evaluate,
        triggers=frozenset(m.code for m in MEASUREMENTS),
    ),
    Rule(
        id="news2_partial",
        version=news2.VERSION,
        category=Category.CLINICAL,
        title=_text("NEWS2 (delvis)", "NEWS2 (delvis)", "NEWS2 (partial)"),
        explanation=_text(
            "Delvis NEWS2 fra vitale tegn målt hjemme de siste 12 timene. Bevissthet (og ofte "
            "respirasjonsfrekvens) mangler, så dette er ikke en full NEWS2.",
            "Delvis NEWS2 frå vitale teikn målte heime dei siste 12 timane. Medvit (og ofte "
            "respirasjonsfrekvens) manglar, så dette er ikkje ein full NEWS2.",
            "A partial NEWS2 from vital signs measured at home in the last 12 hours. "
            "Consciousness (and often respiration rate) is missing: never a full NEWS2.",
        ),
        source="Royal College of Physicians, National Early Warning Score (NEWS) 2, 2017.",
        defaults=MappingProxyType(
            {
                "window_hours": 12,
                "min_parameters": 2,
                "red": "total >= 7",
                "yellow": "total 5-6 or any parameter 3",
            }
        ),
        tuning="The care plan's SpO2 scale: chosen by the clinician, or 2 when the plan's "
        "SpO2 target is 88-92 % (hypercapnic respiratory failure), else the template's.",
        requirement="REQ-ALERT-002",
        hazard="HAZ-002: combined moderate changes in several vital signs are missed",
        evaluate=news2.evaluate,
        triggers=news2.VITAL_SIGNS,
    ),
    Rule(
        id="weight_gain",
        version=trends.WEIGHT_GAIN_VERSION,
        category=Category.CLINICAL,
        title=_text("Vektøkning", "Vektauke", "Weight gain"),
        explanation=_text(
            "Vekten har økt med minst 1,5 kg siden i går eller minst 2 kg på tre dager "
            "(eller grensene behandlingsplanen setter): tegn på væskeansamling ved hjertesvikt.",
            "Vekta har auka med minst 1,5 kg sidan i går eller minst 2 kg på tre dagar "
            "(eller grensene behandlingsplanen set): teikn på væskeopphoping ved hjartesvikt.",
            "Weight has risen by at least 1.5 kg since yesterday or 2 kg in three days (or the "
            "limits the care plan sets): a sign of fluid retention in heart failure.",
        ),
        source="ESC Heart Failure Association (heartfailurematters.org); Jaarsma et al., "
        "Eur J Heart Fail 2020.",
        defaults=_tunable("weight_gain"),
        tuning=_tuning("weight_gain"),
        requirement="REQ-ALERT-003",
        hazard="HAZ-003: heart-failure decompensation is detected late",
        evaluate=trends.weight_gain,
        triggers=frozenset({trends.WEIGHT}),
    ),
    Rule(
        id="spo2_drop",
        version=trends.SPO2_DROP_VERSION,
        category=Category.CLINICAL,
        title=_text("Fall i oksygenmetning", "Fall i oksygenmetting", "SpO2 fall"),
        explanation=_text(
            "Oksygenmetningen er minst 4 prosentpoeng under pasientens egen median for de "
            "siste 7 dagene (eller det behandlingsplanen setter).",
            "Oksygenmettinga er minst 4 prosentpoeng under pasienten sin eigen median for dei "
            "siste 7 dagane (eller det behandlingsplanen set).",
            "SpO2 is at least 4 points below the patient's own median of the last 7 days (or "
            "what the care plan sets).",
        ),
        source="COPD telemonitoring studies (SpO2 fall before admission); Dovepress COPD "
        "remote monitoring review.",
        defaults=_tunable("spo2_drop", min_readings=trends.BASELINE_MIN_READINGS),
        tuning=_tuning("spo2_drop"),
        requirement="REQ-ALERT-004",
        hazard="HAZ-004: a COPD exacerbation is detected late",
        evaluate=trends.spo2_drop,
        triggers=frozenset({trends.SPO2}),
    ),
    Rule(
        id="peak_flow_drop",
        version=trends.PEAK_FLOW_DROP_VERSION,
        category=Category.CLINICAL,
        title=_text("Fall i PEF/FEV1", "Fall i PEF/FEV1", "PEF/FEV1 fall"),
        explanation=_text(
            "PEF eller FEV1 er under pasientens 7-dagers gjennomsnitt minus 1,645 standardavvik "
            "(eller det behandlingsplanen setter).",
            "PEF eller FEV1 er under pasienten sitt 7-dagars gjennomsnitt minus 1,645 "
            "standardavvik (eller det behandlingsplanen set).",
            "PEF or FEV1 is below the patient's 7-day mean minus 1.645 standard deviations (or "
            "what the care plan sets).",
        ),
        source="Statistical process control of home spirometry (one-sided 95 % limit).",
        defaults=_tunable(
            "peak_flow_drop", days=trends.BASELINE_DAYS, min_readings=trends.FLOW_MIN_READINGS
        ),
        tuning=_tuning("peak_flow_drop")
        + " Daily readings in the schedule give the rule its baseline.",
        requirement="REQ-ALERT-005",
        hazard="HAZ-004: a COPD exacerbation is detected late",
        evaluate=trends.peak_flow_drop,
        triggers=frozenset({trends.PEF, trends.FEV1}),
    ),
    Rule(
        id="daily_symptoms",
        version=symptoms.DAILY_SYMPTOMS_VERSION,
        category=Category.CLINICAL,
        title=_text("Symptomer", "Symptom", "Symptoms"),
        explanation=_text(
            "Pasienten svarte ja på minst ett spørsmål i dagens symptomsjekk (mer tung pust, "
            "mer hevelse, mer hoste eller slim). Et ja gjør samtidige vekt- og "
            "metningsfunn røde.",
            "Pasienten svara ja på minst eitt spørsmål i dagens symptomsjekk (tyngre pust, "
            "meir hevelse, meir hoste eller slim). Eit ja gjer samtidige vekt- og "
            "mettingsfunn raude.",
            "The patient answered yes to at least one question of today's symptom check (more "
            "breathless, more swelling, more cough or sputum). A yes makes simultaneous weight "
            "and SpO2 findings red.",
        ),
        source="BEAT-HF protocol (alerts with symptoms); COPD action plans.",
        defaults=MappingProxyType({"questions": list(symptoms.QUESTIONS), "recent_hours": 24}),
        tuning="Not tunable: every yes is shown.",
        requirement="REQ-ALERT-006",
        hazard="HAZ-005: symptoms the patient reports are not acted on",
        evaluate=symptoms.daily_symptoms,
    ),
    Rule(
        id="cat_score",
        version=symptoms.CAT_SCORE_VERSION,
        category=Category.CLINICAL,
        title=_text("CAT-skår", "CAT-skår", "CAT score"),
        explanation=_text(
            "KOLS-vurderingstesten (CAT) er 21 eller mer, eller 10 eller mer og steget med "
            "minst 2 poeng (eller det behandlingsplanen setter) siden forrige gang.",
            "KOLS-vurderingstesten (CAT) er 21 eller meir, eller 10 eller meir og stige med "
            "minst 2 poeng (eller det behandlingsplanen set) sidan førre gong.",
            "The COPD Assessment Test (CAT) is 21 or more, or 10 or more and up by at least 2 "
            "points (or what the care plan sets) since the previous one.",
        ),
        source="COPD Assessment Test (8 items, 0-5 each); GOLD report (CAT >= 10 high impact).",
        defaults=_tunable(
            "cat_score", high=symptoms.CAT_HIGH_IMPACT, very_high=symptoms.CAT_VERY_HIGH
        ),
        tuning=_tuning("cat_score"),
        requirement="REQ-ALERT-007",
        hazard="HAZ-004: a COPD exacerbation is detected late",
        evaluate=symptoms.cat_score,
    ),
    Rule(
        id="missing_measurement",
        version=2,
        category=Category.ADHERENCE,
        title=_text("Manglende måling", "Manglande måling", "Missing measurement"),
        explanation=_text(
            "En planlagt måling har ikke kommet innen fristen i behandlingsplanen, heller ikke "
            "etter at pasienten fikk en påminnelse.",
            "Ei planlagd måling har ikkje kome innan fristen i behandlingsplanen, heller ikkje "
            "etter at pasienten fekk ei påminning.",
            "A scheduled measurement has not arrived within the care plan's window, nor after "
            "the patient was reminded of it.",
        ),
        source="French heart-failure telemonitoring specification (non-transmission alerts "
        "that cannot be disabled).",
        defaults=_tunable("missing_measurement", evaluated_every_seconds=30),
        tuning="The care plan's schedule: every_hours and grace_hours per measurement. "
        + _tuning("missing_measurement")
        + " A patient with a reminder channel is reminded at the due time moved into the"
        " allowed hours, and the alert comes `alert_after_hours` after the reminder; without"
        " one, the alert comes at the due time.",
        requirement="REQ-ALERT-008",
        hazard="HAZ-006: no data is mistaken for a stable patient",
        evaluate=None,
    ),
    Rule(
        id="device_silent",
        version=2,
        category=Category.TECHNICAL,
        title=_text("Stille enhet", "Stille eining", "Silent device"),
        explanation=_text(
            "Vi har ikke hørt fra en av pasientens enheter på lenger enn måleplanen tillater "
            "(48 timer uten plan), regnet fra siste måling eller registreringen.",
            "Vi har ikkje høyrt frå ei av pasienten sine einingar på lenger enn måleplanen "
            "tillèt (48 timar utan plan), rekna frå siste måling eller registreringa.",
            "We have not heard from one of the patient's devices for longer than the "
            "measurement schedule allows (48 hours without one), counted from its last reading "
            "or its registration.",
        ),
        source="IEC 60601-1-8 (technical alarm conditions).",
        defaults=_tunable("device_silent", without_schedule_hours=48),
        tuning=_tuning("device_silent")
        + " Unset: the longest interval plus grace of the plan's schedule (48 hours without"
        " one), counted from the device's last reading or its registration. It can be"
        " acknowledged and resolved, not switched off.",
        requirement="REQ-ALERT-009",
        hazard="HAZ-006: no data is mistaken for a stable patient",
        evaluate=None,
    ),
    Rule(
        id="battery_low",
        version=1,
        category=Category.TECHNICAL,
        title=_text("Lavt batteri", "Lågt batteri", "Battery low"),
        explanation=_text(
            "En av pasientens enheter melder under 20 % batteri: den kan snart slutte å måle. "
            "Be pasienten lade eller bytte batteri.",
            "Ei av pasienten sine einingar melder under 20 % batteri: ho kan snart slutte å "
            "måle. Be pasienten lade eller byte batteri.",
            "One of the patient's devices reports less than 20 % battery: it may soon stop "
            "measuring. Ask the patient to charge it or change the battery.",
        ),
        source="IEC 60601-1-8 (technical alarm conditions: a power supply about to fail).",
        defaults=MappingProxyType({"below_percent": 20, "clearly_normal_percent": 30}),
        tuning="Not tunable: from the device's status report (docs/mqtt.md).",
        requirement="REQ-ALERT-012",
        hazard="HAZ-006: no data is mistaken for a stable patient",
        evaluate=None,
    ),
    Rule(
        id="gateway_backlog",
        version=1,
        category=Category.TECHNICAL,
        title=_text("Målinger venter", "Målingar ventar", "Readings waiting"),
        explanation=_text(
            "Pasientens gateway melder at 50 eller flere målinger venter på å bli sendt: det vi "
            "ser er ikke det siste pasienten har målt.",
            "Pasienten sin gateway melder at 50 eller fleire målingar ventar på å bli sende: "
            "det vi ser, er ikkje det siste pasienten har målt.",
            "The patient's gateway reports 50 or more readings waiting to be sent: what we see "
            "is not the latest the patient has measured.",
        ),
        source="IEC 60601-1-8 (technical alarm conditions); docs/devices.md (the gateway).",
        defaults=MappingProxyType({"waiting_at_least": 50, "clearly_normal_at_most": 10}),
        tuning="Not tunable: from the gateway's status report (docs/mqtt.md).",
        requirement="REQ-ALERT-013",
        hazard="HAZ-006: no data is mistaken for a stable patient",
        evaluate=None,
    ),
    Rule(
        id="notification_undeliverable",
        version=1,
        category=Category.TECHNICAL,
        title=_text("Varsel ikke levert", "Varsel ikkje levert", "Notification undeliverable"),
        explanation=_text(
            "Et varsel kunne ikke leveres etter gjentatte forsøk.",
            "Eit varsel kunne ikkje leverast etter gjentekne forsøk.",
            "A notification could not be delivered after repeated attempts.",
        ),
        source="IEC 60601-1-8 (distributed alarm systems must report failed delivery).",
        defaults=MappingProxyType({"max_attempts": 12}),
        tuning="HEIMVAKT_NOTIFICATION_MAX_ATTEMPTS.",
        requirement="REQ-ALERT-010",
        hazard="HAZ-007: an alert never reaches a nurse",
        evaluate=None,
        disarmed_by_resolution=False,
    ),
    Rule(
        id="rule_failed",
        version=1,
        category=Category.TECHNICAL,
        title=_text("Regel feilet", "Regel feila", "Rule failed"),
        explanation=_text(
            "En regel kunne ikke vurdere pasientens målinger på grunn av en feil i Heimvakt. "
            "Målingene er lagret, men denne regelen har ikke sett dem: se på dem selv.",
            "Ein regel kunne ikkje vurdere målingane til pasienten på grunn av ein feil i "
            "Heimvakt. Målingane er lagra, men denne regelen har ikkje sett dei: sjå på dei sjølv.",
            "A rule could not judge the patient's readings because of a fault in Heimvakt. The "
            "readings are stored, but this rule has not seen them: look at them yourself.",
        ),
        source="IEC 60601-1-8 (technical alarm conditions); IEC 62304 (fail visibly).",
        defaults=MappingProxyType({}),
        tuning="Not tunable: raised by the engine whenever a rule raises an error.",
        requirement="REQ-ALERT-011",
        hazard="HAZ-006: no data is mistaken for a stable patient",
        evaluate=None,
    ),
)

RULES_BY_ID: Final[Mapping[str, Rule]] = MappingProxyType({rule.id: rule for rule in RULES})
