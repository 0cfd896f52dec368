"""What every input at the edge is checked for (API bodies and query parameters), once.

PostgreSQL cannot store a NUL character in text, UTF-8 cannot encode a lone surrogate, a
moment without a time zone cannot be compared with the platform's aware clock, and Python's
datetime overflows when a year-1 moment is shifted by a day: each of those used to become a
500 deep inside a route. `Input` (every request body) and `Moment`/`STORABLE` (query
parameters) refuse them with a 422 at the edge instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2999
"""Dates and moments outside these years are refused: nothing Heimvakt records lies there, and
a day's arithmetic on them cannot overflow."""


def check_text(value: str) -> str:
    """`value`, if PostgreSQL can store it and UTF-8 can encode it; ValueError otherwise."""
    if "\x00" in value:
        raise ValueError("text may not contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text may not contain a lone surrogate") from None
    return value


def check_moment(value: date) -> date:
    """`value`, if its year is sane and, for a moment, it says its time zone; else ValueError."""
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise ValueError("a moment must say its time zone (Z or an offset such as +01:00)")
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"the year must lie between {MIN_YEAR} and {MAX_YEAR}")
    return value


def check_value(value: Any) -> Any:
    """`check_text` and `check_moment` on every text and time in `value`, however nested."""
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, date):
        return check_moment(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_value(key)
            check_value(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_value(item)
    return value


STORABLE: Final = AfterValidator(check_value)
"""Metadata for a query parameter: ``Annotated[str | None, Query(...), STORABLE]``."""

Moment = Annotated[datetime, STORABLE]
"""A moment with its time zone, in a sane range of years."""


class Input(BaseModel):
    """Every request body: unknown fields are refused (no mass assignment of an organisation
    or a role) and every text and time in it is checked (`check_value`), fields added later
    included."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_value(value)
