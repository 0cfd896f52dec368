"""Addresses inside the dashboard. The language rides along in every link, so it survives
navigation, reloads and a link pasted to a colleague."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Final, TypeVar
from urllib.parse import parse_qs, urlencode
from uuid import UUID

from care.models import Condition
from core.i18n import negotiate
from core.links import (
    DEVICES_SEGMENT,
    FIGURES_SEGMENT,
    LOGIN_SEGMENT,
    PATIENTS_SEGMENT,
    patient_path,
)
from dashboard.data.worklist import (
    PAGE_SIZE,
    AlertState,
    Standing,
    WorklistFilters,
)
from dashboard.ranges import TrendRange, trend_range_from_search
from quality.figures import CONDITIONS, Period

T = TypeVar("T")

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
    values = parse_qs((search or "").removeprefix("?")).get("lang", [])
    return negotiate(values[-1] if values else None)


def language_chosen(search: str | None) -> bool:
    """Whether the address names a language (a user's choice, or a link that carries it)."""
    values = parse_qs((search or "").removeprefix("?")).get("lang", [])
    return bool(values) and negotiate(values[-1]) == values[-1]


def login_failed(search: str | None) -> bool:
    """Whether /auth/login sent the browser back here after a wrong user name or password."""
    return parse_qs((search or "").removeprefix("?")).get("failed") == ["1"]


def login_throttled(search: str | None) -> bool:
    """Whether /auth/login sent the browser back here to wait: too many failed log-ins for
    the account or the address, or too many log-ins at once."""
    return parse_qs((search or "").removeprefix("?")).get("failed") == ["wait"]


INVITATION_STATES: Final = ("new", "invitation", "username", "password")
"""``?invitation=``: show the form to accept a relative's invitation ("new"), or show it again
after /auth/invitations/accept refused the code, the user name or the password."""


def invitation_from_search(search: str | None) -> str | None:
    """Which state of the invitation form the address names, or None for no form."""
    found = parse_qs((search or "").removeprefix("?")).get("invitation")
    return found[0] if found and found[0] in INVITATION_STATES else None


def login_refused(search: str | None) -> str | None:
    """Why a HelseID or ID-porten log-in sent the browser back here (core.oidc.Refusal's
    value), or None."""
    reasons = parse_qs((search or "").removeprefix("?")).get("refused")
    return None if not reasons else reasons[-1]


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
class CarePlanChoice:
    """What the care plan page's forms were pointed at, from its address."""

    measure: str | None = None
    to: UUID | None = None


def care_plan_choice_from_search(search: str | None) -> CarePlanChoice:
    query = parse_qs((search or "").removeprefix("?"))
    measure = query.get("measure", [None])[-1]
    try:
        to = UUID(query["to"][-1])
    except (KeyError, ValueError):
        to = None
    return CarePlanChoice(measure=measure, to=to)


def worklist_filters_from_search(search: str | None) -> WorklistFilters:
    """The worklist's filters as its address holds them; a value that names nothing known is
    no filter, so an old or mistyped link still opens the list."""
    query = {key: values[-1] for key, values in parse_qs((search or "").removeprefix("?")).items()}

    shown = query.get("shown", "")
    return WorklistFilters(
        unit=_parsed(UUID, query.get("unit")),
        condition=_parsed(Condition, query.get("condition")),
        standing=_parsed(Standing, query.get("standing")),
        state=_parsed(AlertState, query.get("state")),
        mine=query.get("mine") == "1",
        unacknowledged=query.get("unacknowledged") == "1",
        name=query.get("name", "")[:100],
        shown=min(int(shown), 10 * PAGE_SIZE) if shown.isdigit() and int(shown) else PAGE_SIZE,
    )


def _parsed(parse: Callable[[str], T], value: str | None) -> T | None:
    try:
        return None if value is None else parse(value)
    except ValueError:
        return None


def handled_from_search(search: str | None) -> int | None:
    """The alert whose forms are open (``handle=<lead alert id>``), if any."""
    values = parse_qs((search or "").removeprefix("?")).get("handle")
    return int(values[-1]) if values and values[-1].isdigit() else None


def worklist_query(filters: WorklistFilters) -> dict[str, str]:
    """The address's query for `filters`: only what differs from the whole list."""
    query: dict[str, str] = {}
    for key, value in (
        ("unit", filters.unit),
        ("condition", filters.condition),
        ("standing", filters.standing),
        ("state", filters.state),
    ):
        if value is not None:
            query[key] = str(value)
    if filters.mine:
        query["mine"] = "1"
    if filters.unacknowledged:
        query["unacknowledged"] = "1"
    if filters.name.strip():
        query["name"] = filters.name.strip()
    if filters.shown != PAGE_SIZE:
        query["shown"] = str(filters.shown)
    return query


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

    def worklist(self, filters: WorklistFilters | None = None, *, handle: int | None = None) -> str:
        """The worklist, narrowed by `filters` when given, with the forms of the episode led
        by alert `handle` open."""
        query = {"lang": self.language, **worklist_query(filters or WorklistFilters())}
        if handle is not None:
            query["handle"] = str(handle)
        return f"{self.base}?{urlencode(query)}"

    def patient(
        self,
        patient_id: UUID,
        trend_range: TrendRange | None = None,
        *,
        handle: int | None = None,
    ) -> str:
        """The patient's page: with the trend's range when it is not the default, and the
        forms of the episode led by alert `handle` open."""
        query = "" if trend_range is None else trend_range.query()
        query = f"?lang={self.language}" + (f"&{query}" if query else "")
        query += "" if handle is None else f"&handle={handle}"
        return f"{patient_path(patient_id, base=self.base)}{query}"

    def care_plan(
        self, patient_id: UUID, *, measure: str | None = None, to: UUID | None = None
    ) -> str:
        """The care plan page; `measure`: the measurement its limit form edits; `to`: the
        unit its hand-over form proposes."""
        query = {"lang": self.language}
        if measure is not None:
            query["measure"] = measure
        if to is not None:
            query["to"] = str(to)
        path = patient_path(patient_id, base=self.base)
        return f"{path}/{CARE_PLAN_SEGMENT}?{urlencode(query)}"

    def figures(self, period: Period | None = None, condition: str = CONDITIONS[0]) -> str:
        query = f"?lang={self.language}"
        if period is not None:
            query += f"&from={period.first}&to={period.last}"
        if condition != CONDITIONS[0]:
            query += f"&condition={condition}"
        return f"{self.base}{FIGURES_SEGMENT}{query}"

    def devices(self) -> str:
        return f"{self.base}{DEVICES_SEGMENT}?lang={self.language}"

    def in_language(self, route: Route, language: str, search: str | None = None) -> str:
        """The page `route` names, in `language`, with what the user chose on it (filters, a
        range, a period): built from the route and the parsed choices, never from the raw
        address."""
        other = Links(self.base, language)
        if route.patient_id is not None and route.page is Page.CARE_PLAN:
            choice = care_plan_choice_from_search(search)
            return other.care_plan(route.patient_id, measure=choice.measure, to=choice.to)
        if route.patient_id is not None:
            return other.patient(route.patient_id, trend_range_from_search(search))
        if route.page is Page.FIGURES:
            return other.figures(period_from_search(search), condition_from_search(search))
        if route.page is Page.DEVICES:
            return other.devices()
        return other.worklist(worklist_filters_from_search(search))
