"""What every answer of the one server gets: a bound on request bodies, security headers, and
API documentation that needs nothing from outside the installation."""

from __future__ import annotations

import asyncio
import re

import pytest
from psycopg_pool import ConnectionPool
from starlette.types import Message

from tests.care.conftest import local_issuer
from tests.heimvakt.conftest import MakeClient

LIMIT = 65_536
CALLBACK = "/app/_dash-update-component"
STATE_CHANGING_ROUTES = [
    "/app/_dash-update-component",  # the dashboard's callbacks: anonymous, whole body read
    "/api/v1/organisations",  # the API
    "/api/v1/devices/ox-1/readings",  # HTTP ingest
]


@pytest.mark.parametrize("path", STATE_CHANGING_ROUTES)
def test_a_declared_body_over_the_limit_is_refused_unread(
    make_client: MakeClient, path: str
) -> None:
    """Six anonymous 60 MiB posts to the callback route took the server from 202 MiB to 1.1 GiB:
    every route read whatever it was sent."""
    response = make_client(max_body_bytes=LIMIT).post(
        path, content=b"{" + b" " * LIMIT + b"}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413


def test_a_body_at_the_limit_still_passes(make_client: MakeClient) -> None:
    body = b"{" + b" " * (LIMIT - 2) + b"}"
    response = make_client(max_body_bytes=LIMIT).post(
        "/api/v1/organisations", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401  # read, and refused for what it is, not for its size


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (CALLBACK, 413),
        ("/auth/login", 413),
        # Anonymous: refused before a byte of the body is read.
        ("/api/v1/organisations", 401),
        ("/api/v1/devices/ox-1/readings", 401),
    ],
)
def test_a_chunked_body_is_counted_as_it_streams_and_refused(
    make_client: MakeClient, pool: ConnectionPool, path: str, status: int
) -> None:
    """Without a Content-Length the app reads chunk by chunk: the reading stops just past the
    limit, however much the client would send (60 MiB here), and the answer is a 413."""
    app = make_client(max_body_bytes=LIMIT, local_issuer=local_issuer(pool)).app
    form = path.startswith("/auth/")
    content_type = b"application/x-www-form-urlencoded" if form else b"application/json"
    chunk = b"x" * 16_384
    total = 60 * 1024 * 1024
    pulled = 0
    answer: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pulled < total}

    async def send(message: Message) -> None:
        answer.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", content_type), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def request() -> None:
        await app(scope, receive, send)

    asyncio.run(request())
    start = next(m for m in answer if m["type"] == "http.response.start")
    assert start["status"] == status
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert pulled <= LIMIT + len(chunk)


def test_the_log_in_form_is_bounded_too(make_client: MakeClient, pool: ConnectionPool) -> None:
    client = make_client(max_body_bytes=LIMIT, local_issuer=local_issuer(pool))
    for path in ("/auth/token", "/auth/login"):
        response = client.post(
            path,
            content=b"username=a&password=" + b"x" * LIMIT,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413, path
        assert response.headers["content-type"] == "application/problem+json"


CSP_DIRECTIVES = {
    "default-src": "'self'",
    "frame-ancestors": "'none'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


@pytest.mark.parametrize(
    "path", ["/app/", "/api/v1/patients", "/healthz", "/docs", "/openapi.json", "/no-such-page"]
)
def test_every_answer_carries_the_security_headers(make_client: MakeClient, path: str) -> None:
    response = make_client().get(path)
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    for directive, value in CSP_DIRECTIVES.items():
        assert policy[directive] == value, directive
    assert "'unsafe-eval'" not in policy["script-src"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in response.headers  # plain http: no HSTS


def test_hsts_when_the_public_address_is_https(make_client: MakeClient) -> None:
    response = make_client(public_url="https://heimvakt.example").get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    refused = make_client(public_url="https://heimvakt.example", max_body_bytes=LIMIT).post(
        "/api/v1/organisations", content=b" " * (LIMIT + 1)
    )
    assert refused.status_code == 413
    assert "strict-transport-security" in refused.headers


def test_the_api_docs_load_nothing_from_outside_the_installation(make_client: MakeClient) -> None:
    """/docs loaded Swagger UI from a CDN: a blank page offline, and a third party's script
    running on the dashboard's origin."""
    client = make_client()
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    assert all(source.startswith("/") for source in sources), sources
    assert "<script>" not in page.text  # no inline script: the CSP allows none
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.content) > 100, source
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404  # a CDN page too; not served
