"""Every text and time the API takes, with what PostgreSQL, UTF-8 or datetime cannot hold: a
NUL character, a lone surrogate, a very long string, a time far in the past or future, a time
without a time zone. Each used to be a 500 somewhere (a patient's name, a care plan's reason, a
subscription's address, an organisation's name, an identity's issuer, `readings?until=0001-…`,
a questionnaire's `answered_at`); each must be a 4xx now, and nothing stored.

The fields come from the OpenAPI document, so a field added later is fuzzed too. The schemathesis
run (test_api_fuzz.py) explores the schema at large; this one aims at the values it rarely makes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from tests.care.conftest import WorldClient
from tests.care.test_authorization_matrix import (
    BODIES,
    EXPECTED,
    HEADERS,
    OPERATIONS,
    _fingerprint,
    _url,
    openapi,
)
from tests.care.world import ROLES, World
from tests.dashboard import routing_request

BAD_TEXT = {
    "NUL": "a\x00b",
    "lone surrogate": "a\ud800b",
    "very long": "x" * 100_000,
}
BAD_TIME = {
    **BAD_TEXT,
    "year 1": "0001-01-01T00:00:00Z",
    "year 9999": "9999-12-31T23:59:59Z",
    "no time zone": "2026-01-01T12:00:00",
    "far future, offset": "5000-01-01T00:00:00+01:00",
}


def _schema(node: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """`node` with $ref resolved and a nullable anyOf reduced to its non-null member."""
    if "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    for key in ("anyOf", "oneOf"):
        if key in node:
            members = [m for m in node[key] if m.get("type") != "null"]
            return _schema(members[0], document)
    return node


def _is_text(node: dict[str, Any]) -> bool:
    return node.get("type") == "string" and "enum" not in node and "const" not in node


def _slots(
    schema: dict[str, Any], base: Any, document: dict[str, Any], path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every text or time field of a body: the schema's properties, and the items of lists the
    valid body `base` holds."""
    schema = _schema(schema, document)
    if schema.get("type") == "array" and isinstance(base, list):
        for index, item in enumerate(base):
            yield from _slots(schema["items"], item, document, (*path, index))
        return
    for name, prop in schema.get("properties", {}).items():
        resolved = _schema(prop, document)
        if _is_text(resolved):
            yield (*path, name), resolved
        elif isinstance(base, dict) and name in base:
            yield from _slots(prop, base[name], document, (*path, name))


def _with(body: Any, path: tuple[Any, ...], value: str) -> Any:
    body = json.loads(json.dumps(body))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


def _role_for(operation: tuple[str, str]) -> str | None:
    return next((r for r in ROLES if r != "anonymous" and EXPECTED[operation](r, "own")), None)


def _cases(
    world: World,
) -> Iterator[tuple[tuple[str, str], str, str, str, bytes | None, tuple[str, str] | None]]:
    """(operation, role, url, label, body, query) for every bad value in every field; the query
    is a (name, value) pair."""
    document = openapi()
    for operation in OPERATIONS:
        role = _role_for(operation) if operation in EXPECTED else None
        if role is None:
            continue
        item = document["paths"][operation[1]][operation[0].lower()]
        url = _url(operation, world, "own")
        for parameter in item.get("parameters", []):
            schema = _schema(parameter["schema"], document)
            if parameter["in"] != "query" or not _is_text(schema) or schema.get("format") == "uuid":
                continue
            bad = BAD_TIME if schema.get("format") == "date-time" else BAD_TEXT
            for label, value in bad.items():
                value = value[:20_000]  # noqa: PLW2901  # an address holds 64 KiB at most
                yield (
                    operation,
                    role,
                    url,
                    f"?{parameter['name']}: {label}",
                    None,
                    (
                        parameter["name"],
                        value,
                    ),
                )
        content = item.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None or operation not in BODIES:
            continue
        base = BODIES[operation](world, world.scenarios["own"])
        for path, schema in _slots(content["schema"], base, document):
            if schema.get("format") == "uuid":
                continue  # parsed, never stored as text
            bad = BAD_TIME if schema.get("format") in ("date-time", "date") else BAD_TEXT
            for label, value in bad.items():
                body = json.dumps(_with(base, path, value)).encode()
                yield operation, role, url, f"{'.'.join(map(str, path))}: {label}", body, None


def test_bad_text_and_times_are_refused_not_crashed_on(
    world_client: WorldClient, world: World
) -> None:
    wrong: list[tuple[str, str, str, int, str]] = []
    sent = 0
    with world_client() as (client, conn):
        before = _fingerprint(conn)
        for operation, role, url, label, body, query in _cases(world):
            headers = {
                **HEADERS.get(operation, {}),
                "Authorization": f"Bearer {world.tokens[role]}",
                "Content-Type": "application/json",
            }
            if query is not None:
                # A lone surrogate travels as the bytes UTF-8 would give it (invalid UTF-8).
                raw = query[1].encode("utf-8", "surrogatepass")
                address = f"{url}?{query[0]}={quote(raw)}"
            else:
                address = url
            response = client.request(operation[0], address, content=body, headers=headers)
            sent += 1
            # Invalid UTF-8 in an address is read as U+FFFD: harmless, so it may succeed.
            harmless = query is not None and label.endswith("lone surrogate")
            if response.status_code >= 500 or not (harmless or response.status_code >= 400):
                wrong.append((operation[0], operation[1], label, response.status_code, role))
        after = _fingerprint(conn)
    assert not wrong, "\n".join(map(str, wrong))
    assert _changed(before, after) <= {"access_log"}, "a refused value was stored"
    assert sent >= 120  # 132 when written: the fields are found


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {table for table in before if before[table] != after[table]}


def test_the_dashboard_refuses_malformed_callbacks_with_422(world_client: WorldClient) -> None:
    """Dash answered a callback body it could not use with a 500 of its own."""
    bodies: list[Any] = [
        "not json",
        [],
        {},
        {"output": "no-such.children", "outputs": [], "inputs": []},
        {"output": "action-status.children", "outputs": {}, "inputs": "x"},
        {
            "output": "action-status.children",
            "outputs": {"id": "action-status", "property": "children"},
            "inputs": [],  # the callback has one input and one state
        },
        {
            "output": "..page.children...status.children...shown-at.data..",
            "outputs": [],
            "inputs": [{"id": "url", "property": "pathname", "value": "/app/\x00"}] * 3,
        },
    ]
    with world_client() as (client, _conn):
        for body in bodies:
            content = body if isinstance(body, str) else json.dumps(body)
            response = client.post(
                "/app/_dash-update-component",
                content=content,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 422, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        good = routing_request("/app/")
        assert client.post("/app/_dash-update-component", json=good).status_code == 200
