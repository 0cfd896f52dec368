"""Property-based tests of the whole API with schemathesis, in-process: whatever a client sends,
the app answers without a 5xx and every answer matches the OpenAPI document.

Each generated case is sent once per role, so refusals are exercised as much as successes. Every
operation in the OpenAPI document is fuzzed (the authorization matrix fails for a route nobody
declared); the run is derandomized (the same cases every time) and prints how many requests
it sent (``-s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.schemas import BaseSchema

from tests.care.conftest import WorldClient
from tests.care.test_authorization_matrix import OPERATIONS
from tests.care.world import World

ROLES = ("coordinator", "hospital_nurse", "administrator", "patient")
EXAMPLES_PER_OPERATION = 15
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
"""What the issue asks: no 5xx, nothing outside the schema. Not `positive_data_acceptance`:
a schema-valid care-plan change with a stale If-Match is rightly refused (412)."""


@pytest.fixture(scope="module")
def api_schema(world_client: WorldClient) -> Iterator[BaseSchema]:
    """The app's schema, loaded once per worker, on one copy of the world that every operation
    fuzzed by this worker shares (as one run over all operations would)."""
    with world_client() as (client, _conn):
        yield schemathesis.openapi.from_asgi("/openapi.json", client.app)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_no_server_errors_and_every_answer_matches_the_schema(
    operation: tuple[str, str], api_schema: BaseSchema, world: World
) -> None:
    """One test per operation, so pytest-xdist spreads the operations over its workers
    instead of one worker fuzzing them all in a row."""
    method, path = operation
    sent = _fuzz(api_schema[path][method], world=world)
    print(f"\nschemathesis: {sent} requests to {method} {path}")
    assert sent >= len(ROLES)


def _fuzz(operation: Any, *, world: World) -> int:
    """Sends each generated case once per role; returns how many requests were sent."""
    sent = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        nonlocal sent
        for role in ROLES:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {world.tokens[role]}"}, checks=CHECKS
            )
            sent += 1

    fuzz()
    return sent
