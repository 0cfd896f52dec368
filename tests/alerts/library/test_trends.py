"""Change over a window: weight gain, SpO2 fall below the personal baseline, PEF/FEV1 fall."""

from __future__ import annotations

from datetime import datetime

import pytest

from alerts.library.trends import peak_flow_drop, spo2_drop, weight_gain
from core import catalog
from tests.alerts.library.support import AT, ago, context, verdicts

RULES_TESTED = {"weight_gain", "spo2_drop", "peak_flow_drop"}

WEIGHT, SPO2, PEF, FEV1 = "29463-7", "59408-5", "19935-6", "20150-9"


@pytest.mark.parametrize(
    ("gain_1_day", "expected"),
    [(1.4, "green"), (1.5, "yellow"), (1.6, "yellow")],
)
def test_weight_gain_in_one_day(gain_1_day: float, expected: str) -> None:
    readings = [(WEIGHT, 80.0, ago(hours=24)), (WEIGHT, 80.0 + gain_1_day, AT)]
    assert verdicts(weight_gain(context(readings))) == [(f"weight_gain:{WEIGHT}", expected)]


@pytest.mark.parametrize(
    ("gain_3_days", "expected"),
    [(1.9, "green"), (2.0, "yellow"), (2.1, "yellow")],
)
def test_weight_gain_in_three_days(gain_3_days: float, expected: str) -> None:
    readings = [
        (WEIGHT, 80.0, ago(hours=72)),
        (WEIGHT, 80.0 + gain_3_days - 0.5, ago(hours=24)),
        (WEIGHT, 80.0 + gain_3_days, AT),
    ]
    assert verdicts(weight_gain(context(readings))) == [(f"weight_gain:{WEIGHT}", expected)]


def test_weight_gain_compares_with_the_lowest_earlier_reading() -> None:
    readings = [
        (WEIGHT, 81.0, ago(hours=26)),
        (WEIGHT, 80.0, ago(hours=20)),
        (WEIGHT, 81.6, AT),
    ]
    assert verdicts(weight_gain(context(readings))) == [(f"weight_gain:{WEIGHT}", "yellow")]


def test_weight_gain_needs_earlier_readings_and_ignores_stale_ones() -> None:
    assert weight_gain(context([(WEIGHT, 85.0, AT)])) == []
    assert weight_gain(context([(WEIGHT, 80.0, ago(days=6)), (WEIGHT, 85.0, AT)])) == []
    assert weight_gain(context([(WEIGHT, 80.0, ago(hours=24)), (WEIGHT, 85.0, ago(hours=2))])) == []


def test_weight_gain_in_pounds_is_converted_before_it_is_compared() -> None:
    weight = catalog.lookup("weight")
    assert weight is not None
    before = catalog.to_canonical(weight, 176.0, "[lb_av]")
    after = catalog.to_canonical(weight, 180.0, "[lb_av]")  # +1.81 kg
    readings = [(WEIGHT, before, ago(hours=24)), (WEIGHT, after, AT)]
    assert verdicts(weight_gain(context(readings))) == [(f"weight_gain:{WEIGHT}", "yellow")]


def test_duplicate_weights_do_not_change_the_verdict() -> None:
    readings = [(WEIGHT, 80.0, ago(hours=24))] * 2 + [(WEIGHT, 81.4, AT)] * 2
    assert verdicts(weight_gain(context(readings))) == [(f"weight_gain:{WEIGHT}", "green")]


def _baseline(value: float = 95.0) -> list[tuple[str, float, datetime]]:
    return [(SPO2, value, ago(days=day)) for day in range(1, 7)]


@pytest.mark.parametrize(
    ("newest", "expected"),
    [(93.0, "green"), (92.0, None), (91.1, None), (91.0, "yellow"), (90.0, "yellow")],
)
def test_spo2_drop_edges(newest: float, expected: str | None) -> None:
    found = verdicts(spo2_drop(context([*_baseline(95.0), (SPO2, newest, AT)])))
    assert found == ([] if expected is None else [(f"spo2_drop:{SPO2}", expected)])


def test_spo2_drop_needs_three_baseline_readings_within_seven_days() -> None:
    two = [(SPO2, 95.0, ago(days=1)), (SPO2, 95.0, ago(days=2))]
    assert spo2_drop(context([*two, (SPO2, 88.0, AT)])) == []
    old = [(SPO2, 95.0, ago(days=d)) for d in (8, 9, 10)]
    assert spo2_drop(context([*two, *old, (SPO2, 88.0, AT)])) == []


def test_the_last_twelve_hours_are_not_part_of_the_baseline() -> None:
    falling = [(SPO2, 90.0, ago(hours=h)) for h in (2, 4, 6, 8)]
    found = spo2_drop(context([*_baseline(95.0), *falling, (SPO2, 90.0, AT)]))
    assert found[0].details["baseline_median"] == 95.0


def _flow(code: str, values: list[float], newest: float) -> list[tuple[str, float, datetime]]:
    return [(code, v, ago(days=len(values) - i)) for i, v in enumerate(values)] + [
        (code, newest, AT)
    ]


@pytest.mark.parametrize("code", [PEF, FEV1])
def test_flow_drop_below_mean_minus_1645_sd(code: str) -> None:
    values = [400.0, 410.0, 390.0, 400.0, 400.0]  # mean 400, sd 7.071 -> limit 388.37
    for newest, expected in ((388.4, "green"), (388.3, "yellow")):
        found = verdicts(peak_flow_drop(context(_flow(code, values, newest))))
        assert found == [(f"peak_flow_drop:{code}", expected)]


def test_flow_drop_needs_five_earlier_readings() -> None:
    assert peak_flow_drop(context(_flow(PEF, [400.0, 410.0, 390.0, 400.0], 300.0))) == []


@pytest.mark.parametrize(
    ("parameters", "readings", "expected"),
    [
        # The 1-day limit tuned to 1.0 kg: at, below and above the tuned boundary.
        ({"weight_gain.kg_in_1_day": 1.0}, [(80.0, 24), (80.9, 0)], "green"),
        ({"weight_gain.kg_in_1_day": 1.0}, [(80.0, 24), (81.0, 0)], "yellow"),
        ({"weight_gain.kg_in_1_day": 2.5}, [(80.0, 24), (82.0, 0)], "green"),
        # A 5-day window of 3 kg: a gain of 2.9 kg over five days is not one, 3.0 is.
        ({"weight_gain.window_days": 5, "weight_gain.kg_in_window": 3.0},
         [(80.0, 120), (82.9, 0)], "green"),
        ({"weight_gain.window_days": 5, "weight_gain.kg_in_window": 3.0},
         [(80.0, 120), (83.0, 0)], "yellow"),
    ],
)  # fmt: skip
def test_weight_gain_follows_the_patients_tuned_parameters(
    parameters: dict[str, float], readings: list[tuple[float, int]], expected: str
) -> None:
    found = weight_gain(
        context([(WEIGHT, v, ago(hours=h)) for v, h in readings], parameters=parameters)
    )
    assert verdicts(found) == [(f"weight_gain:{WEIGHT}", expected)]


@pytest.mark.parametrize(("points", "latest", "expected"), [(6, 92, "green"), (6, 90, "yellow")])
def test_spo2_drop_follows_the_patients_tuned_points(
    points: float, latest: float, expected: str
) -> None:
    baseline = [(SPO2, 96.0, ago(days=d)) for d in (1, 2, 3, 4)]
    found = spo2_drop(
        context([*baseline, (SPO2, latest, AT)], parameters={"spo2_drop.points": points})
    )
    assert verdicts(found) == [(f"spo2_drop:{SPO2}", expected)]


def test_spo2_drop_baseline_is_the_tuned_number_of_days() -> None:
    readings = [(SPO2, 90.0, ago(days=d)) for d in (4, 5, 6)]
    readings += [(SPO2, 96.0, ago(days=d)) for d in (1, 2, 3)] + [(SPO2, 92.0, AT)]
    week = spo2_drop(context(readings))
    three_days = spo2_drop(context(readings, parameters={"spo2_drop.baseline_days": 3}))
    assert verdicts(week) == [(f"spo2_drop:{SPO2}", "green")]  # median 93: a fall of 1
    assert verdicts(three_days) == [(f"spo2_drop:{SPO2}", "yellow")]
