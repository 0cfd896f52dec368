"""The figures API under /api/v1: the figures of a period (JSON or CSV) and the deviations to
follow up (JSON or CSV). The computation checks access and logs it (quality/figures.py,
quality/deviations.py), as the dashboard's page calls it, so these routes only declare the
rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from care.access import Action, Interface, Permission
from care.guard import Caller, guarded_router
from core.api import access, api_context
from core.fields import STORABLE
from core.problems import problem
from quality.deviations import deviations_csv, load_deviations
from quality.figures import Period, figures_csv, figures_json, load_figures

router = guarded_router(tags=["figures"])
T = TypeVar("T")

_RULE = access(Permission.READ_FIGURES, "patients")
"""Aggregates for the coordinator's role; the deviations name only patients in her care."""

From = Annotated[
    date | None,
    Query(alias="from", description="First day (Norwegian time); default four weeks back"),
    STORABLE,
]
To = Annotated[date | None, Query(description="Last day, inclusive"), STORABLE]
_OR_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or with format=csv a CSV file to download",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}

Format = Annotated[Literal["json", "csv"], Query(description="json, or csv to download")]


class DeviationOut(BaseModel):
    kind: str
    at: datetime
    unit_id: UUID | None
    unit: str | None
    reference: str
    patient_id: UUID | None
    patient: str | None
    link: str | None


def _period(first: date | None, last: date | None, *, now: datetime) -> Period | Response:
    default = Period.default(now)
    try:
        return Period(first or default.first, last or default.last)
    except ValueError as error:
        return problem(422, str(error))


def _load(
    request: Request,
    *,
    principal: Caller,
    first: date | None,
    last: date | None,
    format: str,
    load: Callable[..., T],
) -> tuple[T, Period] | Response:
    """What `load` finds for the caller in the period asked for (a 422 for a bad period);
    a CSV download is logged as an export, anything else as a read."""
    context = api_context(request)
    with context.pool.connection() as conn:
        now = context.clock.now()
        period = _period(first, last, now=now)
        if isinstance(period, Response):
            return period
        found = load(
            conn,
            principal=principal,
            period=period,
            now=now,
            interface=Interface.API,
            action=Action.EXPORT if format == "csv" else Action.READ,
        )
    return found, period


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/figures", openapi_extra=_RULE, response_model=None, responses=_OR_CSV)
def figures(
    request: Request,
    principal: Caller,
    first: From = None,
    to: To = None,
    format: Format = "json",
) -> dict[str, Any] | Response:
    """Figures per unit and condition for a period, with the previous period (as many days)
    beside each; cells of fewer than five patients are withheld. docs/figures.md defines
    every figure."""
    loaded = _load(
        request, principal=principal, first=first, last=to, format=format, load=load_figures
    )
    if isinstance(loaded, Response):
        return loaded
    found, period = loaded
    if format == "csv":
        return _csv(figures_csv(found), f"figures-{period.first}-{period.last}.csv")
    # Plain JSON values already: FastAPI's own encoding would walk every one of them again.
    return JSONResponse(figures_json(found))


@router.get("/figures/deviations", openapi_extra=_RULE, response_model=None, responses=_OR_CSV)
def deviations(
    request: Request,
    principal: Caller,
    first: From = None,
    to: To = None,
    format: Format = "json",
) -> list[DeviationOut] | Response:
    """Deviations to follow up: events of the period and states of now. The patient and the
    link to the case are given only for patients in your care."""
    loaded = _load(
        request, principal=principal, first=first, last=to, format=format, load=load_deviations
    )
    if isinstance(loaded, Response):
        return loaded
    found, period = loaded
    if format == "csv":
        return _csv(deviations_csv(found), f"deviations-{period.first}-{period.last}.csv")
    return [
        DeviationOut(
            kind=d.kind,
            at=d.at,
            unit_id=d.unit_id,
            unit=d.unit,
            reference=d.reference,
            patient_id=d.patient_id,
            patient=d.patient,
            link=d.link(),
        )
        for d in found
    ]
