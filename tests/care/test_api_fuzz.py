"""Property-based tests of the whole API with schemathesis, in-process: whatever a client sends,
the app answers without a 5xx and every answer matches the OpenAPI document.

Each generated case is sent once per role, so refusals are exercised as much as successes. The
run is derandomized (the same cases every time) and prints how many requests it sent (``-s``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Err

from tests.care.conftest import WorldClient
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


@pytest.mark.slow
def test_no_server_errors_and_every_answer_matches_the_schema(
    world_client: WorldClient, world: World
) -> None:
    sent: Counter[str] = Counter()
    failures: dict[str, str] = {}
    with world_client() as (client, _conn):
        schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            try:
                _fuzz(operation, label=label, world=world, sent=sent)
            except Exception as failure:  # noqa: BLE001  # collected and reported below
                failures[label] = str(failure)[:2000]
    print(f"\nschemathesis: {sum(sent.values())} requests over {len(sent)} operations")
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
    assert len(sent) >= 40


def _fuzz(operation: Any, *, label: str, world: World, sent: Counter[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        for role in ROLES:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {world.tokens[role]}"}, checks=CHECKS
            )
            sent[label] += 1

    fuzz()
