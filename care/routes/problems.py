"""How the shared-care API answers refusals and conflicts, as problem+json."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from care import careplan, handover, people
from care.access import (
    ForbiddenError,
    NotAuthenticatedError,
    NotVisibleError,
    SelfGrantError,
)
from care.emergency import EmergencyAccessOpenError
from core.problems import problem

CHALLENGE = 'Bearer realm="heimvakt"'


def not_visible() -> JSONResponse:
    """The 404 `NotVisibleError` gets, as an answer a route returns rather than raises (so the
    work's transaction, and its access-log row, still commit)."""
    return problem(404, "not found, or not in your care")


def install_care_problems(app: FastAPI) -> None:
    """Answer the access check's refusals as problem+json: 401, 403, or 404 (which hides
    whether a patient outside the caller's compartment exists)."""

    async def not_authenticated(request: Request, error: Exception) -> JSONResponse:
        return problem(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": CHALLENGE}
        )

    async def forbidden(request: Request, error: Exception) -> JSONResponse:
        return problem(403, "your role may not do this")

    async def self_grant(request: Request, error: Exception) -> JSONResponse:
        return problem(
            403,
            "nobody may give themselves a membership: ask a colleague to add you, or open an"
            " emergency access to the patient with a reason",
        )

    async def hidden(request: Request, error: Exception) -> JSONResponse:
        return not_visible()

    async def conflicting(request: Request, error: Exception) -> JSONResponse:
        return problem(409, str(error))

    async def stale(request: Request, error: Exception) -> JSONResponse:
        return problem(412, "the care plan changed since you read it; read it again")

    async def unprocessable(request: Request, error: Exception) -> JSONResponse:
        return problem(422, str(error))

    app.add_exception_handler(NotAuthenticatedError, not_authenticated)
    app.add_exception_handler(ForbiddenError, forbidden)
    app.add_exception_handler(SelfGrantError, self_grant)
    app.add_exception_handler(NotVisibleError, hidden)
    for refused in (
        people.MembershipError,
        EmergencyAccessOpenError,
        handover.HandoverStateError,
        careplan.CarePlanExistsError,
    ):
        app.add_exception_handler(refused, conflicting)
    app.add_exception_handler(careplan.StaleVersionError, stale)
    for invalid in (
        careplan.ReasonRequiredError,
        careplan.UnknownTemplateError,
        careplan.InvalidChangeError,
    ):
        app.add_exception_handler(invalid, unprocessable)
