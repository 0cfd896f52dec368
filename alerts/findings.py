"""What rules see and what they say: the contract between the rule library and the engine.

The types the engine makes for every reading (observations, contexts, findings) are plain
slotted dataclasses, not frozen ones: a frozen one costs three times as much to create, and
nothing changes them after creation (a rule that needs a changed finding makes a new one).

Rules are pure functions of a `PatientContext` returning `Finding`s, so each can be tested
table by table without a database; the engine (alerts/engine.py) loads contexts and turns
findings into alerts (alerts/lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from alerts.series import micros
from core.limits import Limits, Severity
from core.rule_parameters import TUNABLES

if TYPE_CHECKING:
    from alerts.series import Series


class Category(StrEnum):
    CLINICAL = "clinical"
    ADHERENCE = "adherence"
    """A scheduled measurement is missing."""
    TECHNICAL = "technical"
    """A device has gone silent, or a notification could not be delivered."""


@dataclass(slots=True)
class Observation:
    """A reading as rules see it: in the catalog's canonical unit."""

    code: str
    value: float
    measured_at: datetime


@dataclass(frozen=True, slots=True)
class SymptomAnswer:
    kind: Literal["daily_symptoms", "cat"]
    answered_at: datetime
    answers: Mapping[str, Any]
    """daily_symptoms: {"more_breathless": bool, "more_swelling": bool, "more_cough": bool};
    cat: {"q1".."q8": 0..5}."""
    total: int | None = None


@dataclass(slots=True)
class PatientContext:
    """Everything rules may use about one patient, as of `at` (nothing measured after it)."""

    patient_id: UUID
    at: datetime
    history: Mapping[str, Series]
    """Per LOINC code: the readings of at least the last 8 days up to `at`. It may hold later
    readings too (the engine shares one history between the moments of a batch), so rules ask
    only about windows that end at or before `at`."""
    limits: Mapping[str, Limits]
    spo2_scale: int = 1
    on_oxygen: bool = False
    symptoms: tuple[SymptomAnswer, ...] = ()
    """Questionnaire answers of the last 8 days up to `at`, oldest first."""
    conditions: tuple[str, ...] = ()
    measured: frozenset[str] | None = None
    """The measurements taken at `at` itself, when the engine knows them (None: any may be)."""
    parameters: Mapping[str, float] = field(default_factory=dict)
    """The rule parameters the care plan tunes for this patient (core/rule_parameters.py)."""
    at_micros: int = field(init=False)
    """`at` as `series.micros` gives it, worked out once: rules compare it many times."""

    def __post_init__(self) -> None:
        self.at_micros = micros(self.at)

    def parameter(self, name: str) -> float:
        """The patient's value of a tunable rule parameter, or its default."""
        tuned = self.parameters.get(name)
        if tuned is not None:
            return tuned
        default = TUNABLES[name].default
        assert default is not None, f"{name} has no default"
        return default


@dataclass(slots=True)
class Finding:
    """One rule's verdict on one patient. `instance` names what an alert is about (rule,
    measurement, direction: "threshold:59408-5:low"): one open alert per patient and instance,
    and a snooze mutes exactly one instance."""

    rule: str
    instance: str
    severity: Severity
    category: Category
    measured_at: datetime
    rule_version: int
    """The version of the rule that found it (the catalogue's): the alert it opens records it."""
    code: str | None = None
    direction: Literal["low", "high"] | None = None
    value: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    """What the rule used, for the nurse: e.g. NEWS2 parameters and sub-scores, the baseline."""
