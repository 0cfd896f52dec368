"""Symptom questionnaires: the daily check and the CAT, and symptom gating.

A yes in the daily check raises a simultaneous weight or SpO2 finding from yellow to red,
following BEAT-HF's "with symptoms" limits: the numbers alone are ambiguous, with symptoms
they are not.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Final

from alerts.findings import Category, Finding, PatientContext, Severity, SymptomAnswer

DAILY_SYMPTOMS_VERSION: Final = 1
CAT_SCORE_VERSION: Final = 2
"""2: the rise is tuned per patient (`cat_score.rise`)."""
"""Each rule's version, raised whenever its logic or defaults below change."""
QUESTIONS: Final = ("more_breathless", "more_swelling", "more_cough")
RECENT: Final = timedelta(hours=24)
CAT_ITEMS: Final = 8
CAT_HIGH_IMPACT: Final = 10
CAT_VERY_HIGH: Final = 21
GATED: Final = {"weight_gain", "spo2_drop"}
GATED_THRESHOLD_CODES: Final = {"59408-5", "29463-7"}


def _recent(context: PatientContext, kind: str) -> list[SymptomAnswer]:
    return [
        s
        for s in context.symptoms
        if s.kind == kind and context.at - RECENT <= s.answered_at <= context.at
    ]


def positive_answers(context: PatientContext) -> list[str]:
    """The questions answered yes in the newest daily check of the last 24 hours."""
    recent = _recent(context, "daily_symptoms")
    if not recent:
        return []
    newest = max(recent, key=lambda s: s.answered_at)
    return [q for q in QUESTIONS if newest.answers.get(q) is True]


def daily_symptoms(context: PatientContext) -> list[Finding]:
    recent = _recent(context, "daily_symptoms")
    if not recent:
        return []
    newest = max(recent, key=lambda s: s.answered_at)
    yes = positive_answers(context)
    return [
        Finding(
            rule="daily_symptoms",
            rule_version=DAILY_SYMPTOMS_VERSION,
            instance="daily_symptoms",
            severity=Severity.YELLOW if yes else Severity.GREEN,
            category=Category.CLINICAL,
            measured_at=newest.answered_at,
            details={"yes": yes},
        )
    ]


def cat_total(answers: SymptomAnswer) -> int | None:
    """The CAT total, or None if the answers are not 8 items of 0-5."""
    items = [answers.answers.get(f"q{i}") for i in range(1, CAT_ITEMS + 1)]
    scores = [v for v in items if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 5]
    if len(scores) != len(items):
        return None
    return sum(scores)


def cat_score(context: PatientContext) -> list[Finding]:
    """Yellow for a CAT of 21 or more (very high impact), or of 10 or more that rose by 2 or
    more since the previous one (a clinically relevant worsening)."""
    answered = sorted(
        (s for s in context.symptoms if s.kind == "cat" and s.answered_at <= context.at),
        key=lambda s: s.answered_at,
    )
    recent = [s for s in answered if context.at - RECENT <= s.answered_at]
    if not recent:
        return []
    newest = recent[-1]
    total = cat_total(newest)
    if total is None:
        return []
    previous = [t for s in answered[:-1] if (t := cat_total(s)) is not None]
    rise = None if not previous else total - previous[-1]
    limit = context.parameter("cat_score.rise")
    worse = total >= CAT_VERY_HIGH or (
        total >= CAT_HIGH_IMPACT and rise is not None and rise >= limit
    )
    return [
        Finding(
            rule="cat_score",
            rule_version=CAT_SCORE_VERSION,
            instance="cat_score",
            severity=Severity.YELLOW if worse else Severity.GREEN,
            category=Category.CLINICAL,
            measured_at=newest.answered_at,
            value=float(total),
            details={"total": total, "rise": rise, "rise_limit": limit},
        )
    ]


def gate(findings: list[Finding], context: PatientContext) -> list[Finding]:
    """Raise yellow weight and SpO2 findings to red while a symptom answer says yes."""
    yes = positive_answers(context)
    if not yes:
        return findings
    return [
        replace(f, severity=Severity.RED, details={**f.details, "gated_by_symptoms": yes})
        if f.severity is Severity.YELLOW
        and f.category is Category.CLINICAL
        and (f.rule in GATED or (f.rule == "threshold" and f.code in GATED_THRESHOLD_CODES))
        else f
        for f in findings
    ]
