"""What stands before Dash on the server: deep links to pages the browser draws, and a check
of every callback request's shape."""

from __future__ import annotations

import json
from typing import Any

from dash import Dash
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.fields import check_value
from core.problems import problem


class ClientSideRoutes:
    """Serves Dash's index page for a deep link to a page the browser draws, such as a patient.

    Dash's FastAPI backend answers only its base path; reloading ``/app/patients/<id>`` would
    otherwise be a 404. The path is rewritten before Dash sees it, the browser keeps the address.
    """

    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...], index: str) -> None:
        self.app = app
        self.prefixes = prefixes
        self.index = index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in {"GET", "HEAD"}
            and scope["path"].startswith(self.prefixes)
        ):
            scope = {**scope, "path": self.index, "raw_path": self.index.encode()}
        await self.app(scope, receive, send)


class _Property(BaseModel):
    """One input, state or output of a callback request, as Dash's renderer sends it."""

    id: str | dict[str, str | int | float | bool]
    property: str
    value: Any = None


_Properties = list[_Property | list[_Property]]


class _CallbackRequest(BaseModel):
    """The body of ``_dash-update-component`` (extra members are Dash's own business)."""

    output: str
    outputs: _Property | _Properties
    inputs: _Properties
    state: _Properties = Field(default_factory=list)
    changedPropIds: list[str] = Field(default_factory=list)  # Dash's name


class CallbackRequests:
    """Refuses a callback request that names no callback of this app or does not fit it, with
    422 problem+json; Dash itself would fail somewhere inside with a 500.

    The body is read here (BodyLimit bounds it), checked, and handed on unchanged. Every text
    in it is checked as API input is (`core.fields.check_value`).
    """

    def __init__(self, app: ASGIApp, *, dash: Dash) -> None:
        self.app = app
        self.dash = dash
        self.path = f"{dash.config.routes_pathname_prefix}_dash-update-component"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = self._refusal(body)
        if refusal is not None:
            await problem(422, refusal)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _refusal(self, body: bytes) -> str | None:
        """Why the body is no callback request of this app; None if it is one."""
        try:
            request = _CallbackRequest.model_validate(check_value(json.loads(body)))
        except (ValueError, ValidationError):
            return "not a callback request"
        callback = self.dash.callback_map.get(request.output)
        if callback is None:
            return "no such callback"
        if len(request.inputs) != len(callback["inputs"]) or len(request.state) != len(
            callback["state"]
        ):
            return "the request does not fit the callback"
        return None
