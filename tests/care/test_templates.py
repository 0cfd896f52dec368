"""Condition templates: valid data, and defaults that say what the clinical reference says
(NEWS2 and BEAT-HF, ../shared/domain/clinical-reference.md §2.1 and §2.2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alerts.library import news2
from alerts.library.threshold import classify
from care.models import Condition
from care.templates import (
    DIASTOLIC,
    PULSE,
    SPO2,
    SYSTOLIC,
    TEMPERATURE,
    TEMPLATES,
    WEIGHT,
    CarePlanTemplate,
)
from core import catalog
from core.limits import Limits, Severity

ALL = list(TEMPLATES.values())
LANGUAGES = ("nb", "nn", "en")


def limits(template: CarePlanTemplate, code: str) -> Limits:
    return next(t for t in template.thresholds if t.code == code)


def severity(value: float, default: Limits) -> Severity | None:
    """What the rule engine makes of `value` under the template's default limits."""
    verdict = classify(value, default, margin=0.0)
    return None if verdict is None else verdict[0]


def test_the_templates_are_the_three_the_database_accepts() -> None:
    assert set(TEMPLATES) == {"copd", "copd_hypercapnic", "heart_failure"}
    assert all(key == template.key for key, template in TEMPLATES.items())


@pytest.mark.parametrize("template", ALL, ids=lambda t: t.key)
def test_every_code_is_a_canonical_catalog_code(template: CarePlanTemplate) -> None:
    codes = [m.code for m in template.measurements] + [t.code for t in template.thresholds]
    for code in codes:
        measurement = catalog.lookup(code)
        assert measurement is not None, code
        assert measurement.code == code, f"{code} is an alias of {measurement.code}"
    assert len({m.code for m in template.measurements}) == len(template.measurements)
    assert len({t.code for t in template.thresholds}) == len(template.thresholds)


@pytest.mark.parametrize("template", ALL, ids=lambda t: t.key)
def test_every_band_is_consistent(template: CarePlanTemplate) -> None:
    for t in template.thresholds:
        assert any(v is not None for v in (t.low, t.high, t.red_low, t.red_high)), t.code
        if t.red_low is not None and t.low is not None:
            assert t.red_low <= t.low, t.code
        if t.low is not None and t.high is not None:
            assert t.low < t.high, t.code
        if t.high is not None and t.red_high is not None:
            assert t.high <= t.red_high, t.code
        measurement = catalog.lookup(t.code)
        assert measurement is not None
        for value in (t.low, t.high, t.red_low, t.red_high):
            assert value is None or measurement.is_plausible(value), (t.code, value)


@pytest.mark.parametrize("template", ALL, ids=lambda t: t.key)
def test_every_schedule_is_one_the_database_accepts(template: CarePlanTemplate) -> None:
    assert template.measurements
    for m in template.measurements:
        assert 1 <= m.every_hours <= 24 * 31
        assert m.grace_hours >= 0


@pytest.mark.parametrize("template", ALL, ids=lambda t: t.key)
def test_self_management_text_in_bokmal_nynorsk_and_english(template: CarePlanTemplate) -> None:
    assert set(template.self_management) == set(LANGUAGES)
    for language in LANGUAGES:
        text = template.self_management[language]
        assert text.strip()
        assert len(text) <= 8000
        assert "113" in text, "every text says when to call the emergency number"
    assert len(set(template.self_management.values())) == 3, "one text per language"


@pytest.mark.parametrize("template", ALL, ids=lambda t: t.key)
def test_conditions_and_source(template: CarePlanTemplate) -> None:
    assert template.conditions
    assert set(template.conditions) <= {str(c) for c in Condition}
    assert "clinical-reference.md" in template.source


def test_copd_uses_spo2_scale_1_and_hypercapnic_copd_scale_2_with_lower_limits() -> None:
    copd, hypercapnic = TEMPLATES["copd"], TEMPLATES["copd_hypercapnic"]
    assert (copd.spo2_scale, hypercapnic.spo2_scale) == (1, 2)
    lower = limits(hypercapnic, SPO2)
    assert lower.low is not None
    assert lower.red_low is not None
    assert lower.low < 88, "the target is 88-92 %: a value in it must not alert"
    assert lower.high is None
    usual = limits(copd, SPO2)
    assert usual.low is not None
    assert lower.low < usual.low
    assert "88" in hypercapnic.self_management["en"]


def test_heart_failure_measures_weight_blood_pressure_and_pulse_daily_without_weight_limit() -> (
    None
):
    template = TEMPLATES["heart_failure"]
    daily = {m.code for m in template.measurements if m.every_hours == 24}
    assert {WEIGHT, SYSTOLIC, DIASTOLIC, PULSE} <= daily
    assert WEIGHT not in {t.code for t in template.thresholds}, "weight change is a rule"


def test_heart_failure_limits_are_beat_hf() -> None:
    template = TEMPLATES["heart_failure"]
    # With symptoms <90 or >160 (yellow); without symptoms <80 or >170 (red).
    assert limits(template, SYSTOLIC) == Limits(SYSTOLIC, 90, 160, 80, 170)
    # With symptoms <50 or >100 (yellow); without symptoms <40 or >110 (red).
    assert limits(template, PULSE) == Limits(PULSE, 50, 100, 40, 110)
    assert severity(89, limits(template, SYSTOLIC)) is Severity.YELLOW
    assert severity(79, limits(template, SYSTOLIC)) is Severity.RED
    assert severity(171, limits(template, SYSTOLIC)) is Severity.RED


NEWS2_CASES: list[tuple[str, str, Callable[[float], int], list[float]]] = [
    ("copd", SPO2, news2.spo2_scale1_score, list(range(70, 101))),
    (
        "copd_hypercapnic",
        SPO2,
        lambda v: news2.spo2_scale2_score(v, on_oxygen=False),
        list(range(70, 101)),
    ),
    ("copd", PULSE, news2.pulse_score, list(range(25, 200))),
    ("copd", TEMPERATURE, news2.temperature_score, [x / 10 for x in range(330, 420)]),
]


@pytest.mark.parametrize(
    ("key", "code", "score", "values"), NEWS2_CASES, ids=lambda c: c if isinstance(c, str) else ""
)
def test_copd_limits_follow_news2(
    key: str, code: str, score: Callable[[float], int], values: list[float]
) -> None:
    """Red wherever one NEWS2 parameter scores 3; an alert wherever it scores 2; never an
    alert where it scores 0."""
    default = limits(TEMPLATES[key], code)
    for value in values:
        points, verdict = score(value), severity(value, default)
        if points == 3:
            assert verdict is Severity.RED, (value, points, verdict)
        if points >= 2:
            assert verdict in (Severity.YELLOW, Severity.RED), (value, points, verdict)
        if points == 0:
            assert verdict is Severity.GREEN, (value, points, verdict)
