"""Addresses inside the dashboard. The language rides along in every link, so it survives
navigation, reloads and a link pasted to a colleague."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import Enum
from urllib.parse import parse_qs
from uuid import UUID

from core.i18n import negotiate
from core.links import (
    DEVICES_SEGMENT,
    FIGURES_SEGMENT,
    LOGIN_SEGMENT,
    PATIENTS_SEGMENT,
    patient_path,
)
from quality.figures import CONDITIONS, Period

CARE_PLAN_SEGMENT = "care-plan"
"""After a patient's address: that patient's care plan and responsibility."""


class Page(Enum):
    WORKLIST = "worklist"
    PATIENT = "patient"
    LOGIN = "login"
    FIGURES = "figures"
    DEVICES = "devices"
    CARE_PLAN = "care-plan"
    UNKNOWN = "unknown"


def language_from_search(search: str | None) -> str:
    values = parse_qs((search or "").removeprefix("?")).get("lang")
    return negotiate(values[-1] if values else None)


def login_failed(search: str | None) -> bool:
    """Whether /auth/login sent the browser back here after a wrong user name or password."""
    return parse_qs((search or "").removeprefix("?")).get("failed") == ["1"]


def login_throttled(search: str | None) -> bool:
    """Whether /auth/login sent the browser back here to wait: too many failed log-ins for
    the account or the address, or too many log-ins at once."""
    return parse_qs((search or "").removeprefix("?")).get("failed") == ["wait"]


def period_from_search(search: str | None) -> Period | None:
    """The period the figures page's address names (``from`` and ``to``, ISO dates), or None
    for the default; a malformed or impossible period is the default too."""
    query = parse_qs((search or "").removeprefix("?"))
    try:
        return Period(date.fromisoformat(query["from"][-1]), date.fromisoformat(query["to"][-1]))
    except (KeyError, ValueError):
        return None


def condition_from_search(search: str | None) -> str:
    """The condition the figures page shows; every condition for anything else."""
    values = parse_qs((search or "").removeprefix("?")).get("condition")
    return values[-1] if values and values[-1] in CONDITIONS else CONDITIONS[0]


@dataclass(frozen=True, slots=True)
class Route:
    page: Page
    patient_id: UUID | None = None
    """Set on the patient page when the address holds a well-formed id."""


_NAMED_PAGES = {
    LOGIN_SEGMENT: Page.LOGIN,
    FIGURES_SEGMENT: Page.FIGURES,
    DEVICES_SEGMENT: Page.DEVICES,
}


def resolve(pathname: str | None, *, base: str) -> Route:
    """The page an address shows; a malformed patient id is still the patient page (not found)."""
    path = pathname or base
    if path in {base, base.rstrip("/")}:
        return Route(Page.WORKLIST)
    rest = path.removeprefix(base)
    named = _NAMED_PAGES.get(rest.rstrip("/"))
    if named is not None:
        return Route(named)
    if rest == path or not rest.startswith(PATIENTS_SEGMENT):
        return Route(Page.UNKNOWN)
    patient, _, part = rest.removeprefix(PATIENTS_SEGMENT).strip("/").partition("/")
    page = Page.CARE_PLAN if part == CARE_PLAN_SEGMENT else Page.PATIENT
    if part not in {"", CARE_PLAN_SEGMENT}:
        return Route(Page.UNKNOWN)
    try:
        return Route(page, UUID(patient))
    except ValueError:
        return Route(page)


@dataclass(frozen=True, slots=True)
class Links:
    base: str
    """The dashboard's URL base, with a trailing slash."""
    language: str

    def worklist(self) -> str:
        return f"{self.base}?lang={self.language}"

    def patient(self, patient_id: UUID) -> str:
        return f"{patient_path(patient_id, base=self.base)}?lang={self.language}"

    def care_plan(self, patient_id: UUID) -> str:
        path = patient_path(patient_id, base=self.base)
        return f"{path}/{CARE_PLAN_SEGMENT}?lang={self.language}"

    def figures(self, period: Period | None = None, condition: str = CONDITIONS[0]) -> str:
        query = f"?lang={self.language}"
        if period is not None:
            query += f"&from={period.first}&to={period.last}"
        if condition != CONDITIONS[0]:
            query += f"&condition={condition}"
        return f"{self.base}{FIGURES_SEGMENT}{query}"

    def devices(self) -> str:
        return f"{self.base}{DEVICES_SEGMENT}?lang={self.language}"

    def in_language(self, route: Route, language: str) -> str:
        """The page `route` names, in `language`; built from the route, never from the raw path."""
        other = Links(self.base, language)
        if route.patient_id is not None and route.page is Page.CARE_PLAN:
            return other.care_plan(route.patient_id)
        if route.patient_id is not None:
            return other.patient(route.patient_id)
        if route.page is Page.FIGURES:
            return other.figures()
        if route.page is Page.DEVICES:
            return other.devices()
        return other.worklist()
