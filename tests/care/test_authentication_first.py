"""docs/security.md rule 1: an anonymous caller is refused with 401, whatever else the request
holds. FastAPI validates a body before it resolves dependencies, so an anonymous request with a
missing or broken body used to get a 422 listing the body's fields (22 routes)."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.api import ACCESS_EXTENSION
from tests.care.conftest import build_app, local_issuer


@pytest.fixture(scope="module")
def client() -> TestClient:
    """Anonymous and forged callers are refused before the database is needed."""
    pool = ConnectionPool("postgresql://unused", open=False)
    return build_app(pool, local_issuer(pool))


def _protected(client: TestClient) -> list[tuple[str, str]]:
    app = client.app
    assert isinstance(app, FastAPI)
    paths = app.openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, item in paths.items()
        for method, operation in item.items()
        if ACCESS_EXTENSION in operation
    )


def _url(path: str) -> str:
    return re.sub(
        r"\{(\w+)\}",
        lambda m: "7" if m[1] in ("alert_id", "subscription_id") else str(uuid.uuid4()),
        path,
    )


BODIES = {
    "no body": None,
    "an empty object": b"{}",
    "the wrong fields": b'{"unexpected": [1, 2, 3]}',
    "not JSON": b"{not json",
    "a NUL in a text": b'{"name": "a\\u0000b", "note": "\\u0000"}',
}


def test_the_check_covers_every_route_with_a_body() -> None:
    pool = ConnectionPool("postgresql://unused", open=False)
    operations = _protected(build_app(pool, local_issuer(pool)))
    assert len([op for op in operations if op[0] in ("POST", "PUT", "PATCH")]) >= 22


@pytest.mark.parametrize("body", BODIES, ids=list(BODIES))
@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_anonymous_and_forged_callers_get_401_whatever_the_body(
    client: TestClient, body: str, token: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    wrong = []
    for method, path in _protected(client):
        response = client.request(method, _url(path), content=BODIES[body], headers=headers)
        # FHIR answers every error as an OperationOutcome.
        fhir = path.split("/")[1] == "fhir"
        expected = "application/fhir+json" if fhir else "application/problem+json"
        if (
            response.status_code != 401
            or response.headers.get("content-type") != expected
            or "WWW-Authenticate" not in response.headers
            or "errors" in response.json()
        ):
            wrong.append((method, path, response.status_code, response.text[:120]))
    assert not wrong, wrong
