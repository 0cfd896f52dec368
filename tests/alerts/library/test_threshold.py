"""Per-patient limits: at, just below and just above every edge, yellow and red, low and high."""

from __future__ import annotations

import pytest

from alerts.library.threshold import evaluate
from core import catalog
from core.limits import Limits
from tests.alerts.library.support import AT, ago, context, verdicts

RULES_TESTED = {"threshold"}

SPO2 = "59408-5"
PULSE = "8867-4"
WEIGHT = "29463-7"
SPO2_LIMITS = Limits(SPO2, low=94, red_low=91)
PULSE_LIMITS = Limits(PULSE, low=50, high=110, red_low=40, red_high=130)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (95.0, [(f"threshold:{SPO2}:low", "green"), (f"threshold:{SPO2}:high", "green")]),
        (94.9, []),  # inside, within the 1-point hysteresis margin: no verdict
        (94.0, []),  # at the yellow limit: inside
        (93.9, [(f"threshold:{SPO2}:low", "yellow")]),
        (91.1, [(f"threshold:{SPO2}:low", "yellow")]),
        (91.0, [(f"threshold:{SPO2}:low", "yellow")]),  # at the red limit: not red
        (90.9, [(f"threshold:{SPO2}:low", "red")]),
    ],
)
def test_spo2_low_edges(value: float, expected: list[tuple[str, str]]) -> None:
    assert verdicts(evaluate(context([(SPO2, value, AT)], limits=[SPO2_LIMITS]))) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (39.9, ("low", "red")),
        (40.0, ("low", "yellow")),
        (49.9, ("low", "yellow")),
        (50.0, None),
        (110.0, None),
        (110.1, ("high", "yellow")),
        (130.0, ("high", "yellow")),
        (130.1, ("high", "red")),
    ],
)
def test_pulse_edges_both_sides(value: float, expected: tuple[str, str] | None) -> None:
    found = verdicts(evaluate(context([(PULSE, value, AT)], limits=[PULSE_LIMITS])))
    if expected is None:
        assert found == []
    else:
        assert found == [(f"threshold:{PULSE}:{expected[0]}", expected[1])]


def test_missing_data_gives_no_verdict() -> None:
    assert evaluate(context([], limits=[SPO2_LIMITS])) == []
    assert evaluate(context([(PULSE, 20, AT)], limits=[SPO2_LIMITS])) == []


def test_a_stale_reading_is_not_judged_again() -> None:
    assert evaluate(context([(SPO2, 85, ago(hours=3))], limits=[SPO2_LIMITS])) == []


def test_a_reading_measured_after_the_moment_is_ignored() -> None:
    assert evaluate(context([(SPO2, 85, ago(seconds=-60))], limits=[SPO2_LIMITS])) == []


def test_duplicate_readings_give_one_verdict() -> None:
    found = evaluate(context([(SPO2, 90, AT), (SPO2, 90, AT)], limits=[SPO2_LIMITS]))
    assert verdicts(found) == [(f"threshold:{SPO2}:low", "red")]


def test_a_converted_unit_is_judged_in_the_canonical_unit() -> None:
    weight = catalog.lookup("weight")
    assert weight is not None
    pounds = catalog.to_canonical(weight, 220.0, "[lb_av]")
    found = evaluate(context([(WEIGHT, pounds, AT)], limits=[Limits(WEIGHT, high=95)]))
    assert verdicts(found) == [(f"threshold:{WEIGHT}:high", "yellow")]
    assert found[0].value == pytest.approx(99.79, abs=0.01)
