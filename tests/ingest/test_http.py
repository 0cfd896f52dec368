"""HTTP ingest: the MQTT pipeline behind a per-device token, with an answer per reading."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from psycopg_pool import ConnectionPool
from starlette.types import Message

from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.clock import ManualClock
from core.problems import install_problem_handlers
from core.readings import Reading
from devices.service import do_assign_device, do_register_device
from devices.tokens import do_issue_token, do_revoke_token, token_prefix
from ingest import formats
from ingest.decoding import Envelope
from ingest.http import READINGS_PATH, ingest_router
from ingest.native import decode_native
from ingest.store import AfterStore, store_batch
from tests.ingest.conftest import TEST_LIMITS
from tests.support import LONG_AGO, seed_patient_with_device

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LIMITS = TEST_LIMITS
SPO2 = {"code": "spo2", "value": 93, "unit": "%"}
PROBLEM_JSON = "application/problem+json"


def message(*readings: dict[str, Any], **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "msg_id": str(uuid.uuid4()),
        "measured_at": "2026-11-22T08:15:00+01:00",
        "readings": list(readings) or [SPO2],
    }
    body.update(fields)
    return json.dumps(body).encode()


def build_app(
    pool: ConnectionPool, *, after_store: Sequence[AfterStore] = (), clock: ManualClock
) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(
        ingest_router(pool=pool, clock=clock, after_store=after_store, limits=LIMITS)
    )
    return app


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def hooked() -> list[Reading]:
    return []


@pytest.fixture
def client(pool: ConnectionPool, clock: ManualClock, hooked: list[Reading]) -> Iterator[TestClient]:
    def record(conn: psycopg.Connection, stored: Sequence[Reading]) -> None:
        hooked.extend(stored)

    with TestClient(build_app(pool, after_store=[record], clock=clock)) as test_client:
        yield test_client


@pytest.fixture
def token(conn: psycopg.Connection) -> str:
    seed_patient_with_device(conn, device_id="ox-1")
    return do_issue_token(conn, device_id="ox-1", now=NOW)


def post(
    client: TestClient,
    body: bytes | Iterator[bytes],
    *,
    token: str | None,
    device_id: str = "ox-1",
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post(f"/api/v1/devices/{device_id}/readings", content=body, headers=sent)


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM quarantine)"
    ).fetchone()
    assert row is not None
    return row


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    assert all(isinstance(body[k], str) and body[k] for k in ("type", "title", "detail"))
    return body


def test_a_message_is_stored_exactly_as_the_same_message_over_mqtt(
    client: TestClient, token: str, conn: psycopg.Connection, hooked: list[Reading]
) -> None:
    seed_patient_with_device(conn, device_id="ox-2", name="Second")
    body = message(
        SPO2,
        {"code": "weight", "value": 180, "unit": "[lb_av]"},
        {"code": "pulse", "value": 400, "unit": "/min"},
    )

    response = post(client, body, token=token)

    over_mqtt = decode_native(
        body,
        Envelope(
            channel="mqtt",
            topic="heimvakt/v1/devices/ox-2/readings",
            device_id="ox-2",
            received_at=NOW,
            max_future=LIMITS.max_future,
            max_readings=LIMITS.max_readings,
        ),
    )
    store_batch(
        conn, channel="mqtt", messages=[over_mqtt.candidates], quarantined=over_mqtt.quarantined
    )

    def rows(device_id: str, table: str) -> list[tuple[Any, ...]]:
        columns = {
            "readings": "code, measured_at, value, unit, received_at",
            "quarantine": "received_at, msg_id, reason, detail, payload",
        }[table]
        return conn.execute(
            f"SELECT {columns} FROM {table} WHERE device_id = %s ORDER BY 1, 2, 3", (device_id,)
        ).fetchall()

    assert rows("ox-1", "readings") == rows("ox-2", "readings")
    assert len(rows("ox-1", "readings")) == 2
    assert rows("ox-1", "quarantine") == rows("ox-2", "quarantine")
    assert conn.execute(
        "SELECT channel, topic FROM quarantine WHERE device_id = 'ox-1'"
    ).fetchall() == [("http", None)]

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["stored"], answer["duplicates"], answer["quarantined"]) == (2, 0, 1)
    assert answer["msg_id"] == json.loads(body)["msg_id"]
    assert [(r["outcome"], r["code"], r["reason"]) for r in answer["readings"]] == [
        ("stored", "59408-5", None),
        ("stored", "29463-7", None),
        ("quarantined", None, "implausible_value"),
    ]
    assert answer["readings"][1]["value"] == pytest.approx(81.6466266)
    assert answer["readings"][1]["unit"] == "kg"
    assert answer["readings"][2]["detail"].startswith("readings[2]: ")
    assert sorted(r.code for r in hooked) == ["29463-7", "59408-5"]


def test_the_same_message_sent_twice_is_stored_once(
    client: TestClient, token: str, conn: psycopg.Connection, hooked: list[Reading]
) -> None:
    body = message(SPO2, {"code": "pulse", "value": 88, "unit": "/min"})

    first = post(client, body, token=token)
    again = post(client, body, token=token)

    assert first.status_code == again.status_code == 200
    assert [r["outcome"] for r in first.json()["readings"]] == ["stored", "stored"]
    assert [r["outcome"] for r in again.json()["readings"]] == ["duplicate", "duplicate"]
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 2)
    assert counts(conn) == (2, 0)
    assert len(hooked) == 2


def test_two_names_for_one_measurement_at_one_instant_are_one_reading(
    client: TestClient, token: str, conn: psycopg.Connection
) -> None:
    response = post(
        client, message(SPO2, {"code": "59408-5", "value": 94, "unit": "%"}), token=token
    )

    [stored] = conn.execute("SELECT value FROM readings").fetchall()
    outcomes = {r["value"]: r["outcome"] for r in response.json()["readings"]}
    assert outcomes == {stored[0]: "stored", ({93.0, 94.0} - {stored[0]}).pop(): "duplicate"}


@pytest.mark.parametrize(
    ("credentials", "status"),
    [
        ("none", 401),
        ("basic", 401),
        ("malformed", 401),
        ("unknown", 403),
        ("other_device", 403),
        ("revoked", 403),
    ],
)
def test_a_request_without_a_valid_token_for_the_device_stores_nothing(
    client: TestClient, token: str, conn: psycopg.Connection, credentials: str, status: int
) -> None:
    seed_patient_with_device(conn, device_id="ox-2", name="Second")
    other = do_issue_token(conn, device_id="ox-2", now=NOW)
    headers = {}
    sent: str | None = None
    if credentials == "basic":
        headers["Authorization"] = "Basic b3gtMTpzZWNyZXQ="
    elif credentials == "malformed":
        sent = f"{token} extra"
    elif credentials == "unknown":
        sent = "hv_" + "A" * 43
    elif credentials == "other_device":
        sent = other
    elif credentials == "revoked":
        do_revoke_token(conn, prefix=token_prefix(token), now=NOW)
        sent = token

    response = post(client, message(), token=sent, headers=headers)

    body = assert_problem(response, status)
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    else:
        assert body["detail"] == "the token is not valid for this device"
    assert counts(conn) == (0, 0)


def test_a_token_for_an_unregistered_device_path_is_refused(
    client: TestClient, token: str, conn: psycopg.Connection
) -> None:
    assert_problem(post(client, message(), token=token, device_id="ghost"), 403)
    assert counts(conn) == (0, 0)


def test_an_oversized_body_is_refused_and_nothing_is_stored(
    client: TestClient, token: str, conn: psycopg.Connection
) -> None:
    body = message(note="x" * LIMITS.max_payload_bytes)

    declared = post(client, body, token=token)
    chunked = post(client, iter([body[:1000], body[1000:]]), token=token)

    assert_problem(declared, 413)
    assert_problem(chunked, 413)
    assert counts(conn) == (0, 0)


def test_a_body_declared_too_large_is_refused_without_reading_it(
    pool: ConnectionPool, clock: ManualClock, token: str, conn: psycopg.Connection
) -> None:
    app = build_app(pool, clock=clock)
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(event: Message) -> None:
        sent.append(event)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/devices/ox-1/readings",
        "raw_path": b"/api/v1/devices/ox-1/readings",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"1000000000"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))

    assert sent[0]["status"] == 413
    assert (b"content-type", PROBLEM_JSON.encode()) in sent[0]["headers"]
    assert counts(conn) == (0, 0)


def test_a_body_at_the_limit_is_accepted(
    client: TestClient, token: str, conn: psycopg.Connection
) -> None:
    body = message()
    body = body[:-1] + b', "note": "' + b"x" * (LIMITS.max_payload_bytes - len(body) - 12) + b'"}'
    assert len(body) == LIMITS.max_payload_bytes

    assert post(client, iter([body]), token=token).status_code == 200
    assert counts(conn) == (1, 0)


@pytest.mark.parametrize(
    ("content_type", "headers"),
    [
        ("text/plain", {}),
        (None, {}),
        ("application/xml", {}),
        ("application/json", {"Content-Encoding": "gzip"}),
    ],
)
def test_a_body_in_no_registered_format_is_refused_as_unsupported(
    client: TestClient,
    token: str,
    conn: psycopg.Connection,
    content_type: str | None,
    headers: dict[str, str],
) -> None:
    response = post(client, message(), token=token, content_type=content_type, headers=headers)
    assert_problem(response, 415)
    assert counts(conn) == (0, 0)


def test_a_content_type_with_parameters_is_read_as_its_media_type(
    client: TestClient, token: str, conn: psycopg.Connection
) -> None:
    response = post(client, message(), token=token, content_type="Application/JSON; charset=utf-8")
    assert response.status_code == 200
    assert counts(conn) == (1, 0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"msg_id": "6f1c1f0e-4d1e-4c39-9d6a-3b1e1f5f2a10", "readings": [', "malformed_json"),
        (b"", "malformed_json"),
        (json.dumps({"msg_id": str(uuid.uuid4()), "readings": [SPO2]}).encode(), "missing_field"),
        (message(*[SPO2] * 21), "too_many_readings"),
        (message(measured_at="2026-11-22T09:10:00+00:00"), "future_timestamp"),
    ],
)
def test_a_refused_message_is_answered_422_and_kept_in_quarantine(
    client: TestClient, token: str, conn: psycopg.Connection, body: bytes, reason: str
) -> None:
    response = post(client, body, token=token)

    problem = assert_problem(response, 422)
    assert problem["reason"] == reason
    assert problem["quarantined"] == 1
    quarantined = conn.execute(
        "SELECT channel, topic, device_id, reason, detail, payload FROM quarantine"
    ).fetchall()
    assert quarantined == [("http", None, "ox-1", reason, problem["detail"], body)]
    assert counts(conn) == (0, 1)


def test_a_message_whose_every_reading_is_refused_is_answered_422(
    client: TestClient, token: str, conn: psycopg.Connection
) -> None:
    body = message(
        {"code": "sys", "value": 80, "unit": "mm[Hg]"},
        {"code": "dia", "value": 90, "unit": "mm[Hg]"},
    )

    problem = assert_problem(post(client, body, token=token), 422)

    assert problem["reason"] == "inconsistent_blood_pressure"
    assert [r["reason"] for r in problem["readings"]] == ["inconsistent_blood_pressure"] * 2
    assert problem["msg_id"] == json.loads(body)["msg_id"]
    assert counts(conn) == (0, 2)


def test_one_bad_reading_is_quarantined_and_the_rest_of_the_message_stored(
    client: TestClient, token: str, conn: psycopg.Connection
) -> None:
    body = message(SPO2, {"code": "pulse", "value": "88", "unit": "/min"})

    response = post(client, body, token=token)

    assert response.status_code == 200
    answer = response.json()
    assert (answer["stored"], answer["duplicates"], answer["quarantined"]) == (1, 0, 1)
    stored, refused = answer["readings"]
    assert (stored["outcome"], stored["code"], stored["value"]) == ("stored", "59408-5", 93.0)
    assert stored["measured_at"] == "2026-11-22T07:15:00Z"
    assert (refused["outcome"], refused["reason"]) == ("quarantined", "invalid_field")
    assert refused["detail"].startswith("readings[1]: ")
    assert conn.execute("SELECT channel, reason FROM quarantine").fetchall() == [
        ("http", "invalid_field")
    ]
    assert counts(conn) == (1, 1)


def test_a_reading_from_before_the_device_was_assigned_is_quarantined_as_not_assigned(
    client: TestClient, conn: psycopg.Connection
) -> None:
    unit = do_create_organisation(conn, name="Testkommune", kind=OrganisationKind.MUNICIPAL_SERVICE)
    patient = do_create_patient(
        conn,
        display_name="Ny Pasient",
        conditions=[Condition.HEART_FAILURE],
        responsible_unit=unit,
        since=LONG_AGO,
    )
    do_register_device(conn, device_id="scale-9", kind="scale")
    do_assign_device(
        conn,
        device_id="scale-9",
        patient_id=patient,
        valid_from=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
    )
    token = do_issue_token(conn, device_id="scale-9", now=NOW)
    weight = {"code": "weight", "value": 81.5, "unit": "kg"}

    before = post(
        client,
        message(weight, measured_at="2026-11-22T07:30:00Z"),
        token=token,
        device_id="scale-9",
    )
    after = post(
        client,
        message(weight, measured_at="2026-11-22T08:30:00Z"),
        token=token,
        device_id="scale-9",
    )

    assert before.status_code == after.status_code == 200
    [refused] = before.json()["readings"]
    assert (refused["outcome"], refused["reason"], refused["code"]) == (
        "quarantined",
        "device_not_assigned",
        "29463-7",
    )
    assert refused["measured_at"] == "2026-11-22T07:30:00Z"
    assert "not assigned" in refused["detail"]
    assert before.json()["quarantined"] == 1
    assert [r["outcome"] for r in after.json()["readings"]] == ["stored"]
    assert conn.execute("SELECT channel, device_id, reason FROM quarantine").fetchall() == [
        ("http", "scale-9", "device_not_assigned")
    ]
    assert conn.execute("SELECT patient_id FROM readings").fetchall() == [(patient,)]


def test_readings_the_database_refuses_are_kept_in_quarantine_not_lost(
    pool: ConnectionPool, clock: ManualClock, token: str, conn: psycopg.Connection
) -> None:
    def failing_rule(hook_conn: psycopg.Connection, stored: Sequence[Reading]) -> None:
        if stored:
            raise psycopg.errors.RaiseException("rule failed")

    with TestClient(build_app(pool, after_store=[failing_rule], clock=clock)) as client:
        response = post(
            client, message(SPO2, {"code": "pulse", "value": 400, "unit": "/min"}), token=token
        )

    assert response.status_code == 200
    assert [(r["outcome"], r["reason"]) for r in response.json()["readings"]] == [
        ("quarantined", "storage_error"),
        ("quarantined", "implausible_value"),
    ]
    assert sorted(conn.execute("SELECT channel, reason FROM quarantine").fetchall()) == [
        ("http", "implausible_value"),
        ("http", "storage_error"),
    ]
    assert counts(conn) == (0, 2)


def test_an_unavailable_database_is_answered_503_with_retry_after(clock: ManualClock) -> None:
    with (
        ConnectionPool(
            "postgresql://heimvakt@127.0.0.1:1/nowhere", min_size=1, timeout=0.5, open=True
        ) as unreachable,
        TestClient(build_app(unreachable, clock=clock)) as client,
    ):
        response = post(client, message(), token="hv_" + "A" * 43)

    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) > 0


def test_the_route_is_documented_with_every_registered_content_type(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    operation = document["paths"][READINGS_PATH]["post"]
    registered = {t for f in formats.FORMATS for t in f.content_types}
    assert "application/json" in registered
    assert set(operation["requestBody"]["content"]) == registered
    assert operation["security"] == [{"DeviceToken": []}]
    assert document["components"]["securitySchemes"]["DeviceToken"]["scheme"] == "bearer"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IngestResult"
    }
    for status in ("401", "403", "413", "415", "422", "503"):
        assert PROBLEM_JSON in operation["responses"][status]["content"], status
    refused = operation["responses"]["422"]["content"][PROBLEM_JSON]["schema"]
    reading_ref = refused["properties"]["readings"]["items"]["$ref"]
    assert reading_ref.removeprefix("#/components/schemas/") in document["components"]["schemas"]


def http_metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_accepted_post_is_counted_as_a_200_with_its_readings_by_outcome(
    client: TestClient, token: str
) -> None:
    before = {
        "ok": http_metric("heimvakt_http_ingest_requests_total", status="200"),
        "stored": http_metric("heimvakt_http_ingest_readings_total", outcome="stored"),
        "quarantined": http_metric("heimvakt_http_ingest_readings_total", outcome="quarantined"),
        "timed": http_metric("heimvakt_http_ingest_request_seconds_count"),
    }

    response = post(
        client, message(SPO2, {"code": "pulse", "value": 400, "unit": "/min"}), token=token
    )

    assert response.status_code == 200, response.text
    assert http_metric("heimvakt_http_ingest_requests_total", status="200") == before["ok"] + 1
    assert http_metric("heimvakt_http_ingest_readings_total", outcome="stored") == (
        before["stored"] + 1
    )
    assert http_metric("heimvakt_http_ingest_readings_total", outcome="quarantined") == (
        before["quarantined"] + 1
    )
    assert http_metric("heimvakt_http_ingest_request_seconds_count") == before["timed"] + 1


def test_a_refused_post_is_counted_by_its_status_and_stores_no_reading(
    client: TestClient, token: str
) -> None:
    before = {
        "forbidden": http_metric("heimvakt_http_ingest_requests_total", status="403"),
        "stored": http_metric("heimvakt_http_ingest_readings_total", outcome="stored"),
        "timed": http_metric("heimvakt_http_ingest_request_seconds_count"),
    }

    response = post(client, message(), token="hv_" + "B" * 43)

    assert_problem(response, 403)
    assert http_metric("heimvakt_http_ingest_requests_total", status="403") == (
        before["forbidden"] + 1
    )
    assert http_metric("heimvakt_http_ingest_readings_total", outcome="stored") == before["stored"]
    assert http_metric("heimvakt_http_ingest_request_seconds_count") == before["timed"] + 1
