"""What every HTTP answer of the one server gets, whichever component serves it: a bound on
request bodies, security headers, and the API documentation served from the installation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.problems import problem

DOCS_PATH: Final = "/docs"
DOCS_ASSETS: Final = f"{DOCS_PATH}/assets"
DOCS_INITIALIZER: Final = Path(__file__).parent / "docs-initializer.js"
SWAGGER_UI: Final = Path(fastapi_offline.__file__).parent / "static"
"""Swagger UI 5 (OpenAPI 3.1, as FastAPI writes it), as the fastapi-offline package ships it."""


class BodyTooLargeError(HTTPException):
    """Raised from `receive` when a body grows past the limit: the app stops reading, and
    FastAPI's body parsing passes an HTTPException through unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413 problem+json, on every route.

    A declared Content-Length over the limit is refused before a byte is read; a chunked body
    is counted as it streams and refused when the count passes the limit, so nobody holds more
    than `max_bytes` of one request in memory (Dash's callback route and the log-in form read
    whole bodies). Whatever the app answers after that is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None:
            await problem(400, "the Content-Length header is not a number")(scope, receive, send)
            return
        if declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the 413 below answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = problem(
            413, str(BodyTooLargeError(self.max_bytes).detail), headers={"Connection": "close"}
        )
        await answer(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length, 0 without one, None when it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return 0


def content_security_policy(
    script_hashes: Iterable[str], *, log_out_origins: Iterable[str] = ()
) -> str:
    """The policy every page runs under: scripts only from this origin and, by hash, Dash's
    own inline bootstrap (`script_hashes` are quoted ``'sha256-…'`` sources, as Dash's
    ``csp_hashes()`` gives them); no framing, no plugins, forms and connections to this origin.
    Forms may also end at `log_out_origins`: the log-out form's answer sends the browser on to
    HelseID or ID-porten to end the session there, and browsers hold that redirect to
    form-action too.

    Styles allow 'unsafe-inline': Plotly inserts style elements at run time. Images allow
    data: URLs, which Plotly's mode bar and Swagger UI use.
    """
    scripts = " ".join(["'self'", *script_hashes])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            " ".join(["form-action 'self'", *log_out_origins]),
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Adds the security headers to every answer (API, dashboard, docs, errors alike)."""

    def __init__(self, app: ASGIApp, *, csp: str, hsts: bool) -> None:
        self.app = app
        headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            # Dashboard addresses name patients: they never leave in a Referer header.
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self.headers = headers
        self.names = {name for name, _value in headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", []) if n not in self.names]
                message = {**message, "headers": [*kept, *self.headers]}
            await send(message)

        await self.app(scope, receive, with_headers)


def docs_router(*, openapi_url: str, title: str) -> APIRouter:
    """Swagger UI from the installation (`SWAGGER_UI`), not a CDN: the docs work offline and no
    third-party script runs on the dashboard's origin. Its start script is a file, not inline,
    so the page runs under the same CSP as everything else."""
    router = APIRouter(include_in_schema=False)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS_PATH}/initializer.js"></script>
</body>
</html>
"""
    initializer = DOCS_INITIALIZER.read_text()

    @router.get(DOCS_PATH)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @router.get(f"{DOCS_PATH}/initializer.js")
    def docs_initializer() -> Response:
        return Response(initializer, media_type="text/javascript")

    return router


def docs_assets() -> StaticFiles:
    return StaticFiles(directory=SWAGGER_UI)
