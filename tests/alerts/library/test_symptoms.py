"""The daily symptom check, the CAT, and symptom gating of weight and SpO2 findings."""

from __future__ import annotations

import pytest

from alerts.findings import Category, Finding, Severity
from alerts.library.symptoms import cat_score, daily_symptoms, gate
from tests.alerts.library.support import AT, ago, cat, context, daily, verdicts

RULES_TESTED = {"daily_symptoms", "cat_score"}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({}, "green"),
        ({"more_breathless": True}, "yellow"),
        ({"more_swelling": True}, "yellow"),
        ({"more_cough": True}, "yellow"),
    ],
)
def test_any_yes_is_yellow(answers: dict[str, bool], expected: str) -> None:
    assert verdicts(daily_symptoms(context(symptoms=[daily(AT, **answers)]))) == [
        ("daily_symptoms", expected)
    ]


def test_only_the_newest_answer_of_the_last_day_counts() -> None:
    yesterday_yes = daily(ago(hours=20), more_swelling=True)
    today_no = daily(ago(hours=1))
    assert verdicts(daily_symptoms(context(symptoms=[yesterday_yes, today_no]))) == [
        ("daily_symptoms", "green")
    ]
    stale = daily(ago(hours=25), more_swelling=True)
    assert daily_symptoms(context(symptoms=[stale])) == []


@pytest.mark.parametrize(
    ("previous", "newest", "expected"),
    [
        (None, 20, "green"),  # no previous CAT: only a very high total counts
        (None, 21, "yellow"),
        (8, 10, "yellow"),  # 10 or more and up by 2
        (9, 10, "green"),  # up by 1
        (7, 9, "green"),  # up by 2 but below 10
        (12, 11, "green"),  # fell
    ],
)
def test_cat_edges(previous: int | None, newest: int, expected: str) -> None:
    def items(total: int) -> list[int]:
        return [min(5, max(0, total - 5 * i)) for i in range(8)]

    answers = [] if previous is None else [cat(items(previous), ago(days=3))]
    answers.append(cat(items(newest)))
    assert verdicts(cat_score(context(symptoms=answers))) == [("cat_score", expected)]


def test_a_cat_with_an_item_out_of_range_is_not_scored() -> None:
    assert cat_score(context(symptoms=[cat([6, 5, 5, 5, 5, 5, 5, 5])])) == []


def _finding(rule: str, code: str, severity: Severity = Severity.YELLOW) -> Finding:
    return Finding(
        rule=rule,
        rule_version=1,
        instance=f"{rule}:{code}",
        severity=severity,
        category=Category.CLINICAL,
        measured_at=AT,
        code=code,
    )


@pytest.mark.parametrize(
    ("finding", "gated"),
    [
        (_finding("weight_gain", "29463-7"), True),
        (_finding("spo2_drop", "59408-5"), True),
        (_finding("threshold", "59408-5"), True),
        (_finding("threshold", "8867-4"), False),  # pulse is not gated
        (_finding("weight_gain", "29463-7", Severity.GREEN), False),
    ],
)
def test_a_yes_raises_weight_and_spo2_findings_to_red(finding: Finding, gated: bool) -> None:
    [raised] = gate([finding], context(symptoms=[daily(more_breathless=True)]))
    assert (raised.severity is Severity.RED) is gated
    [unchanged] = gate([finding], context(symptoms=[daily()]))
    assert unchanged.severity is finding.severity
