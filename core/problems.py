"""Every HTTP error as ``application/problem+json`` (RFC 9457), from every component's routes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """The body of every error answer; extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    # Validated from a mapping: the extension members are whatever the caller adds.
    body = Problem.model_validate(
        {"title": title or HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def conflict(error: object) -> HTTPException:
    """A 409 to raise: the change conflicts with the current state, which `error` names."""
    return HTTPException(409, str(error))


def problem_response(description: str) -> dict[str, Any]:
    """An error answer for a route's OpenAPI ``responses``, as problem+json."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
    }


def install_problem_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        return problem(error.status_code, str(error.detail), headers=error.headers)

    async def invalid_request(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()
        ]
        return problem(422, "the request is not valid", errors=errors)

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        """A bug: logged with its traceback, answered without one (no internals leak)."""
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
        return problem(500, "an unexpected error occurred; it has been logged")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)
