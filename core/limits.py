"""A patient's limits for one measurement and the severities they give, declared once.

Care plans store limits (care/careplan.py), templates suggest them (care/templates.py), the
threshold rule judges readings by them (alerts/library/threshold.py), the API shows them and
the dashboard draws them: all through `Limits`, so a new band is one change here. The kernel
holds it because every one of those layers reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How bad a finding or an alert is; stored as its value (`alerts.severity`)."""

    GREEN = "green"
    """Clearly normal (beyond the hysteresis margin): re-arms a rule after a resolved alert."""
    YELLOW = "yellow"
    RED = "red"

    @property
    def rank(self) -> int:
        """Green 0, yellow 1, red 2: the order in which severities grow."""
        return _RANKS[self]


_RANKS = {Severity.GREEN: 0, Severity.YELLOW: 1, Severity.RED: 2}


@dataclass(frozen=True, slots=True)
class Limits:
    """Yellow outside [low, high], red outside [red_low, red_high], for the measurement with
    LOINC code `code`; None means no limit on that side. A value equal to a limit is inside."""

    code: str
    low: float | None = None
    high: float | None = None
    red_low: float | None = None
    red_high: float | None = None

    def bands(self) -> tuple[tuple[Severity, float | None, float | None], ...]:
        """(severity, low, high) per band, yellow first: what a chart draws."""
        return ((Severity.YELLOW, self.low, self.high), (Severity.RED, self.red_low, self.red_high))
