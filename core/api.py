"""The API's shared vocabulary, for every component's routes under /api/v1: the prefix, the
error answers every route documents, paging, the bearer scheme, how a route declares its
access rule in the OpenAPI document, and where a route finds the pool, the clock and the
authenticator the composition root configured.

It lives in the kernel because care, alerts, ingest, and later FHIR and the dashboard all
speak it, and none of them may import another's route modules (the import contract in
pyproject.toml). Who may do what is care's (care/access.py, care/guard.py); this module only
names the words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Generic, Literal, Protocol, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.security import HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from core.auth import Principal
from core.clock import Clock
from core.problems import problem_response

T = TypeVar("T")

API_PREFIX: Final = "/api/v1"

PROBLEM_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: problem_response("No valid bearer token"),
    403: problem_response("Your role may not do this"),
    404: problem_response("Not found, or not in your care"),
    409: problem_response("The change conflicts with the current state"),
    422: problem_response("The request is not valid"),
}
"""The refusals every API route may answer, as problem+json (core/problems.py)."""

BEARER: Final = HTTPBearer(
    auto_error=False,  # the access check answers: 401 problem+json with a challenge
    scheme_name="OIDC",
    description="An OpenID Connect access token: HelseID (staff), ID-porten (patients), or the "
    "built-in issuer's (POST /auth/token) in demo and embedded mode.",
)
"""The one bearer scheme people's requests carry, as the OpenAPI document names it."""

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last one")


def page(items: list[T], *, limit: int, offset: int) -> Page[T]:
    """One page of a list; a full page promises a next one (which may be empty)."""
    return Page[T](
        items=items,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(items) == limit else None,
    )


ACCESS_EXTENSION: Final = "x-heimvakt-access"

AccessScope = Literal[
    "none", "self", "team", "staff", "organisation", "patient", "handover", "alert", "patients"
]
"""The compartment a route's check narrows to: none (no patient data), self (the caller's own
account), team (one care team's members), staff (one staff member's employment), organisation
(one unit's settings), patient (one patient), handover or alert (the patient of one hand-over
or alert), patients (a list of them)."""

PATIENT_SCOPES: Final = frozenset({"patient", "handover", "patients", "alert", "team", "staff"})
"""Scopes whose routes read or write patients' data, or change who may, so every request
leaves a log row."""


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Who may use a route: a permission (care.access.Permission, or "any") and the
    compartment its check narrows to. Declared in the OpenAPI document, from which the
    authorization matrix and access-log tests build their cases."""

    permission: str
    scope: AccessScope

    def openapi(self) -> dict[str, Any]:
        return {
            ACCESS_EXTENSION: {
                "permission": str(self.permission),
                "scope": self.scope,
                "access_logged": self.scope in PATIENT_SCOPES,
            }
        }


def access(permission: str, scope: AccessScope) -> dict[str, Any]:
    """The route's access rule as ``openapi_extra``, for a route that checks access itself
    rather than through one of care.guard's dependencies."""
    return AccessRule(permission, scope).openapi()


class Authenticator(Protocol):
    """Who sends a request (heimvakt.auth.BearerAuthenticator): a FastAPI dependency that
    can also be resolved on its own, before the body is read."""

    async def resolve(self, request: Request) -> Principal: ...

    async def __call__(self, *args: Any, **kwargs: Any) -> Principal: ...


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the composition root gives every API route: its pool, clock and authenticator.
    Routes are declared once, at module level; the app they serve carries these."""

    pool: ConnectionPool
    clock: Clock
    authenticate: Authenticator


def bind_api_context(app: FastAPI, context: ApiContext) -> None:
    app.state.api_context = context


def api_context(request: Request) -> ApiContext:
    context = request.app.state.api_context
    assert isinstance(context, ApiContext), "the app factory binds the API context"
    return context
