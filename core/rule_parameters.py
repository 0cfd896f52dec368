"""Every numeric rule parameter a clinician may tune per patient, with its default and range.

Why here: the care plan stores and checks a patient's values (care/careplan.py, versioned with
a reason, like limits), the rules read them (alerts/library/), the catalogue and docs/rules.md
show the defaults, so the one declaration sits in the kernel every one of those layers reads.
A name the plan does not set has the default below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Tunable:
    name: str
    """"<rule>.<parameter>", e.g. "weight_gain.kg_in_1_day"."""
    default: float | None
    """None: worked out per patient when not set (the silent-device limit from the schedule)."""
    minimum: float
    maximum: float
    unit: str
    whole: bool = False
    """Only whole numbers (days, hours, points of a questionnaire)."""


TUNABLES: Final[Mapping[str, Tunable]] = MappingProxyType(
    {
        t.name: t
        for t in (
            Tunable("weight_gain.kg_in_1_day", 1.5, 0.3, 10.0, "kg"),
            Tunable("weight_gain.kg_in_window", 2.0, 0.5, 15.0, "kg"),
            # The window reaches back (days * 24 ± 12) hours; readings are kept 8 days.
            Tunable("weight_gain.window_days", 3, 2, 7, "d", whole=True),
            Tunable("spo2_drop.points", 4.0, 1.0, 20.0, "%"),
            # The baseline ends 12 hours before the reading; readings are kept 8 days.
            Tunable("spo2_drop.baseline_days", 7, 2, 7, "d", whole=True),
            Tunable("peak_flow_drop.z", 1.645, 0.5, 4.0, "SD"),
            Tunable("cat_score.rise", 2, 1, 20, "points", whole=True),
            Tunable("device_silent.hours", None, 1, 24 * 31, "h", whole=True),
            # Reminders to the patient (alerts/reminders.py): the hours of the day (Oslo time)
            # a reminder may go out, and how long after it the nurse's alert comes.
            Tunable("missing_measurement.remind_from_hour", 8, 0, 23, "h", whole=True),
            Tunable("missing_measurement.remind_until_hour", 21, 1, 24, "h", whole=True),
            Tunable("missing_measurement.alert_after_hours", 3, 1, 48, "h", whole=True),
        )
    }
)


class InvalidParameterError(ValueError):
    """An unknown parameter, or a value outside its range."""


def checked_parameters(given: Mapping[str, float | None]) -> dict[str, float]:
    """The values a plan may store; a None value drops the name (back to its default)."""
    checked: dict[str, float] = {}
    for name, value in given.items():
        tunable = TUNABLES.get(name)
        if tunable is None:
            raise InvalidParameterError(f"no tunable rule parameter {name!r}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidParameterError(f"{name}: a number is needed")
        if not tunable.minimum <= value <= tunable.maximum:
            raise InvalidParameterError(
                f"{name}: {value} is outside {tunable.minimum}-{tunable.maximum} {tunable.unit}"
            )
        if tunable.whole and value != int(value):
            raise InvalidParameterError(f"{name}: a whole number is needed")
        checked[name] = int(value) if tunable.whole else float(value)
    return checked


WINDOWS: Final = (
    ("missing_measurement.remind_from_hour", "missing_measurement.remind_until_hour"),
)
"""Pairs of parameters that are the two ends of one window of the day."""


def check_windows(parameters: Mapping[str, float]) -> None:
    """A plan's parameters (as stored, the rest at their defaults) must leave every window
    open: its start before its end. Raises `InvalidParameterError`."""
    for start, end in WINDOWS:
        opens = parameters.get(start, TUNABLES[start].default)
        shuts = parameters.get(end, TUNABLES[end].default)
        if opens is not None and shuts is not None and opens >= shuts:
            raise InvalidParameterError(f"{start} ({opens:g}) must come before {end} ({shuts:g})")
