"""Partial NEWS2: every band edge of every parameter, both SpO2 scales, the total bands, and
missing, stale and duplicate data."""

from __future__ import annotations

import pytest

from alerts.library import news2
from alerts.library.news2 import evaluate
from core import catalog
from tests.alerts.library.support import AT, ago, context

RULES_TESTED = {"news2_partial"}

RESP, SPO2, SYS, PULSE, TEMP = "9279-1", "59408-5", "8480-6", "8867-4", "8310-5"

# (value, score): at, just below and just above each band edge (RCP 2017).
RESPIRATION = [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)]
SPO2_SCALE1 = [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0)]
SPO2_SCALE2_AIR = [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 0), (99, 0)]
SPO2_SCALE2_OXYGEN = [(87, 1), (88, 0), (92, 0), (93, 1), (94, 1), (95, 2), (96, 2), (97, 3)]
SYSTOLIC = [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
PULSE_BANDS = [
    (40, 3),
    (41, 1),
    (50, 1),
    (51, 0),
    (90, 0),
    (91, 1),
    (110, 1),
    (111, 2),
    (130, 2),
    (131, 3),
]
TEMPERATURE = [
    (35.0, 3),
    (35.1, 1),
    (36.0, 1),
    (36.1, 0),
    (38.0, 0),
    (38.1, 1),
    (39.0, 1),
    (39.1, 2),
]


@pytest.mark.parametrize(("value", "score"), RESPIRATION)
def test_respiration_rate(value: float, score: int) -> None:
    assert news2.respiration_score(value) == score


@pytest.mark.parametrize(("value", "score"), SPO2_SCALE1)
def test_spo2_scale_1(value: float, score: int) -> None:
    assert news2.spo2_scale1_score(value) == score


@pytest.mark.parametrize(("value", "score"), SPO2_SCALE2_AIR)
def test_spo2_scale_2_on_air(value: float, score: int) -> None:
    assert news2.spo2_scale2_score(value, on_oxygen=False) == score


@pytest.mark.parametrize(("value", "score"), SPO2_SCALE2_OXYGEN)
def test_spo2_scale_2_on_oxygen(value: float, score: int) -> None:
    assert news2.spo2_scale2_score(value, on_oxygen=True) == score


@pytest.mark.parametrize(("value", "score"), SYSTOLIC)
def test_systolic(value: float, score: int) -> None:
    assert news2.systolic_score(value) == score


@pytest.mark.parametrize(("value", "score"), PULSE_BANDS)
def test_pulse(value: float, score: int) -> None:
    assert news2.pulse_score(value) == score


@pytest.mark.parametrize(("value", "score"), TEMPERATURE)
def test_temperature(value: float, score: int) -> None:
    assert news2.temperature_score(value) == score


@pytest.mark.parametrize(("value", "score"), [(91.4, 3), (91.5, 2), (35.04, 3), (35.05, 1)])
def test_values_between_bands_round_half_up_as_charted(value: float, score: int) -> None:
    scorer = news2.spo2_scale1_score if value > 50 else news2.temperature_score
    assert scorer(value) == score


@pytest.mark.parametrize(
    ("readings", "band", "severity"),
    [
        ({SPO2: 96, PULSE: 70}, "low", "green"),  # 0
        ({SPO2: 94, PULSE: 100, SYS: 105, TEMP: 38.5}, "low", "green"),  # 1+1+1+1 = 4
        ({SPO2: 91, PULSE: 70}, "low-medium", "yellow"),  # a single 3
        ({SPO2: 93, PULSE: 100, SYS: 105, TEMP: 38.5}, "medium", "yellow"),  # 2+1+1+1 = 5
        ({SPO2: 93, PULSE: 115, SYS: 105, TEMP: 38.5}, "medium", "yellow"),  # 2+2+1+1 = 6
        ({SPO2: 91, PULSE: 115, SYS: 105, TEMP: 38.5}, "high", "red"),  # 3+2+1+1 = 7
    ],
)
def test_total_bands(readings: dict[str, float], band: str, severity: str) -> None:
    [finding] = evaluate(context([(code, value, AT) for code, value in readings.items()]))
    assert (finding.details["band"], finding.severity.value) == (band, severity)
    assert finding.details["partial"] is True
    assert "consciousness" in finding.details["missing"]


def test_supplemental_oxygen_adds_two() -> None:
    [finding] = evaluate(context([(SPO2, 96, AT), (PULSE, 70, AT)], on_oxygen=True))
    assert finding.details["total"] == 2


def test_scale_2_is_used_where_the_care_plan_says_so() -> None:
    [finding] = evaluate(context([(SPO2, 88, AT), (PULSE, 70, AT)], spo2_scale=2))
    assert (finding.details["total"], finding.details["spo2_scale"]) == (0, 2)


def test_it_names_what_it_used_and_what_was_missing() -> None:
    [finding] = evaluate(context([(SPO2, 95, AT), (PULSE, 70, ago(hours=2))]))
    assert set(finding.details["used"]) == {SPO2, PULSE}
    assert finding.details["missing"] == [*sorted([RESP, SYS, TEMP]), "consciousness"]


def test_one_parameter_is_not_a_score() -> None:
    assert evaluate(context([(SPO2, 85, AT)])) == []


def test_stale_vital_signs_are_left_out() -> None:
    assert evaluate(context([(SPO2, 85, AT), (PULSE, 140, ago(hours=13))])) == []


def test_duplicate_readings_count_once() -> None:
    [finding] = evaluate(context([(SPO2, 91, AT), (SPO2, 91, AT), (PULSE, 70, AT)]))
    assert finding.details["total"] == 3


@pytest.mark.parametrize(("fahrenheit", "score"), [(95.0, 3), (95.2, 1), (100.6, 1), (102.4, 2)])
def test_a_temperature_in_fahrenheit_is_scored_after_conversion(
    fahrenheit: float, score: int
) -> None:
    temperature = catalog.lookup("temp")
    assert temperature is not None
    celsius = catalog.to_canonical(temperature, fahrenheit, "[degF]")
    [finding] = evaluate(context([(TEMP, celsius, AT), (PULSE, 70, AT)]))
    assert finding.details["used"][TEMP]["score"] == score


def test_the_score_over_time_is_what_evaluate_scores_at_each_moment() -> None:
    """The patient page draws the score after every vital sign: from the newest value of
    each within 12 hours, and only once two of them are there."""
    readings = [
        (ago(hours=30), SPO2, 96.0),  # alone: no score
        (ago(hours=20), PULSE, 95.0),  # 10 hours later: SpO2 0 + pulse 1
        (ago(hours=10), SPO2, 91.0),  # SpO2 3 + pulse 1
        (ago(hours=1), PULSE, 72.0),  # the pulse of 20 hours ago is out of the window
    ]
    scores = news2.scores_over_time(readings, scale2=False)
    assert scores == [(ago(hours=20), 1), (ago(hours=10), 4), (ago(hours=1), 3)]
    [finding] = evaluate(context([(SPO2, 91.0, ago(hours=10)), (PULSE, 72.0, ago(hours=1))]))
    assert finding.value == scores[-1][1]
    assert news2.scores_over_time(readings, scale2=True)[1] == (ago(hours=10), 1)
