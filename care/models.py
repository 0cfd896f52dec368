"""Care records as the rest of the code sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any
from uuid import UUID


class OrganisationKind(StrEnum):
    HOSPITAL_DEPARTMENT = "hospital_department"
    MUNICIPAL_SERVICE = "municipal_service"
    GP_OFFICE = "gp_office"


class Condition(StrEnum):
    COPD = "copd"
    HEART_FAILURE = "heart_failure"


@dataclass(frozen=True, slots=True)
class Organisation:
    id: UUID
    name: str
    kind: OrganisationKind
    org_number: str | None = None
    timezone: str = "Europe/Oslo"
    opening_hours: list[dict[str, Any]] = field(default_factory=list)
    """[{"weekday": 0..6 (Monday 0), "opens": "08:00", "closes": "15:30"}]; [] is always open."""


@dataclass(frozen=True, slots=True)
class Patient:
    id: UUID
    display_name: str
    birth_date: date | None
    conditions: list[str]
    preferred_language: str
    responsible_unit: str | None
    """Name of the unit responsible now, if any."""
