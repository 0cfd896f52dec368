"""The rule library, as data: what each rule is, why it exists, and how it is explained."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    version: int
    severity: str
    explanation: MappingProxyType[str, str]
    """Plain language per language (nb, nn, en), shown to the nurse next to the alert."""
    source: str


PATIENT_THRESHOLD = Rule(
    id="threshold",
    version=1,
    severity="yellow",
    explanation=MappingProxyType(
        {
            "nb": "Målingen er utenfor grensene som er satt for denne pasienten.",
            "nn": "Målinga er utanfor grensene som er sette for denne pasienten.",
            "en": "The reading is outside the limits set for this patient.",
        }
    ),
    source="Per-patient limits set by the responsible clinician (Helsedirektoratet, DHO advice).",
)

RULES: tuple[Rule, ...] = (PATIENT_THRESHOLD,)
