"""FHIR search parameters, checked: what is supported is read, anything else is refused.

A parameter the facade does not support is an error (OperationOutcome ``not-supported``),
never a filter silently ignored: a record system that asks for ``Observation?status=...``
must not receive every Observation believing they were filtered.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final
from uuid import UUID
from zoneinfo import ZoneInfo

from core import catalog
from core.fields import MAX_YEAR, MIN_YEAR
from fhir_facade.queries import Position
from fhir_facade.resources import BP_PANEL, VITAL_SIGNS_PROFILE
from ingest import mappings

DEFAULT_COUNT: Final = 100
MAX_COUNT: Final = 1000
LOCAL_TIME: Final = ZoneInfo("Europe/Oslo")
"""A date without a time of day is a day in Norway (FHIR: the server's time zone)."""

_PREFIXES: Final = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_CATEGORIES: Final = {
    "vital-signs": frozenset(VITAL_SIGNS_PROFILE),
    "exam": frozenset(m.code for m in catalog.MEASUREMENTS if m.code not in VITAL_SIGNS_PROFILE)
    - {"8480-6", "8462-4"},
}


class SearchError(ValueError):
    """A search the facade cannot answer as asked; `code` is the OperationOutcome issue type."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def only(params: Iterable[tuple[str, str]], allowed: Iterable[str]) -> None:
    supported = set(allowed)
    for name, _value in params:
        if name not in supported:
            names = ", ".join(sorted(supported))
            raise SearchError(
                "not-supported", f"search parameter {name!r} is not supported; supported: {names}"
            )


def single(params: list[tuple[str, str]], name: str) -> str | None:
    values = [v for n, v in params if n == name]
    if len(values) > 1:
        raise SearchError("invalid", f"{name} may be given once")
    return values[0] if values else None


def count(params: list[tuple[str, str]]) -> int:
    text = single(params, "_count")
    if text is None:
        return DEFAULT_COUNT
    if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise SearchError("invalid", f"_count must be a whole number from 1 to {MAX_COUNT}")
    return int(text)


def patient_reference(text: str) -> UUID:
    """``123``, ``Patient/123`` or an absolute URL ending so."""
    tail = text.rsplit("/", 2)
    if len(tail) >= 2 and tail[-2] != "Patient":
        raise SearchError("invalid", f"{text!r} is not a reference to a Patient")
    try:
        return UUID(tail[-1])
    except ValueError:
        raise SearchError("invalid", f"{text!r} is not a Patient id") from None


def codes(values: list[str], categories: list[str]) -> frozenset[str] | None:
    """The Observation codes asked for by ``code`` (comma = or; repeated = and) and
    ``category``; None when neither narrows."""
    found: frozenset[str] | None = None
    for value in values:
        either = frozenset(_code(token) for token in value.split(","))
        found = either if found is None else found & either
    for value in categories:
        either = frozenset()
        for token in value.split(","):
            system, _, name = token.rpartition("|")
            if system not in ("", "http://terminology.hl7.org/CodeSystem/observation-category"):
                raise SearchError("not-supported", f"category system {system!r} is not known")
            if name not in _CATEGORIES:
                raise SearchError("not-supported", f"category {name!r} holds no Observation here")
            either |= _CATEGORIES[name]
        found = either if found is None else found & either
    return found


def _code(token: str) -> str:
    system, bar, name = token.rpartition("|")
    if not bar:
        systems: tuple[str, ...] = (mappings.LOINC, mappings.MDC)
    elif system in (mappings.LOINC, mappings.MDC):
        systems = (system,)
    else:
        raise SearchError("not-supported", f"code system {system!r} is not searchable")
    if name == BP_PANEL and mappings.LOINC in systems:
        return BP_PANEL
    for each in systems:
        mapped = mappings.catalog_code(each, name)
        measurement = catalog.lookup(mapped) if mapped else None
        if measurement is not None:
            # Systolic and diastolic pressure are components of the panel, not Observations.
            if measurement.code in ("8480-6", "8462-4"):
                raise SearchError(
                    "not-supported",
                    f"{name} is a component of blood pressure; search code={BP_PANEL}",
                )
            return measurement.code
    raise SearchError("not-supported", f"code {token!r} names no measurement Heimvakt records")


def date_bounds(values: list[str], name: str) -> list[tuple[str, datetime]]:
    """``date=ge2026-01-01`` and friends: (SQL operator, moment) pairs, all to hold."""
    bounds = []
    for value in values:
        prefix, text = value[:2], value[2:]
        if prefix not in _PREFIXES:
            raise SearchError(
                "not-supported", f"{name}: only the prefixes ge, gt, le and lt are supported"
            )
        operator = _PREFIXES[prefix]
        moment, whole_day = _moment(text, name)
        if whole_day and operator in (">", "<="):
            # After (or up to the end of) a day means from the start of the next one.
            moment = datetime.combine(moment.date() + timedelta(days=1), time(), LOCAL_TIME)
            operator = ">=" if operator == ">" else "<"
        bounds.append((operator, moment))
    return bounds


def _moment(text: str, name: str) -> tuple[datetime, bool]:
    try:
        if "T" not in text:
            day = date.fromisoformat(text)
            moment, whole_day = datetime.combine(day, time(), LOCAL_TIME), True
        else:
            moment, whole_day = datetime.fromisoformat(text.replace("Z", "+00:00")), False
    except ValueError:
        raise SearchError("invalid", f"{name}: {text!r} is not a FHIR date or dateTime") from None
    if moment.utcoffset() is None:
        raise SearchError("invalid", f"{name}: {text!r} needs a time zone (Z or an offset)")
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise SearchError("invalid", f"{name}: the year must lie between {MIN_YEAR} and {MAX_YEAR}")
    return moment, whole_day


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts, and the search's snapshot (see `ObservationFilter`)."""

    received_by: datetime
    after: Position | None

    def encode(self) -> str:
        data: dict[str, str] = {"s": self.received_by.isoformat()}
        if self.after is not None:
            data |= {
                "m": self.after.measured_at.isoformat(),
                "d": self.after.device_id,
                "c": self.after.code,
            }
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def cursor(text: str | None) -> Cursor | None:
    """The cursor a ``next`` link carries. It only positions the page: every page is
    authorized and filtered afresh, so a forged cursor reaches nothing more."""
    if text is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        received_by = datetime.fromisoformat(data["s"])
        after = None
        if "m" in data:
            after = Position(datetime.fromisoformat(data["m"]), str(data["d"]), str(data["c"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SearchError("invalid", "_cursor is not one this server gave") from None
    if received_by.utcoffset() is None or (after and after.measured_at.utcoffset() is None):
        raise SearchError("invalid", "_cursor is not one this server gave")
    return Cursor(received_by, after)
