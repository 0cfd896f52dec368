"""The composed app: operations endpoints, problem+json everywhere, HTTP ingest wired in."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.limits import Limits
from core.loops import Pulse
from devices.tokens import do_issue_token
from tests.heimvakt.conftest import MakeClient
from tests.support import plan_with_limits, seed_patient_with_device

METRICS_TOKEN = "a-long-random-metrics-token"


def test_health_and_readiness(make_client: MakeClient) -> None:
    assert make_client().get("/healthz").json() == {"status": "ok"}
    assert make_client().get("/readyz").json() == {"status": "ready"}
    not_ready = make_client(broker_connected=False).get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.headers["content-type"] == "application/problem+json"
    assert "broker" in not_ready.json()["detail"]


def test_readiness_fails_while_a_background_loop_is_dead_or_late(make_client: MakeClient) -> None:
    seconds = [0.0]
    on_time = Pulse("sweeper", deadline=60, seconds=lambda: seconds[0])
    late = Pulse("dispatcher", deadline=30, seconds=lambda: seconds[0])
    dead = Pulse("ingest-writer-1", deadline=60, seconds=lambda: seconds[0])
    dead.thread = threading.Thread(target=lambda: None)
    dead.thread.start()
    dead.thread.join()
    seconds[0] = 45.0
    assert make_client(loops=[on_time]).get("/readyz").json() == {"status": "ready"}
    not_ready = make_client(loops=[on_time, late, dead]).get("/readyz")
    assert not_ready.status_code == 503
    detail = not_ready.json()["detail"]
    assert "the dispatcher loop has not completed a round" in detail
    assert "the ingest-writer-1 loop has stopped" in detail
    assert "sweeper" not in detail
    client = make_client(loops=[on_time, late])
    late.beat()
    assert client.get("/readyz").status_code == 200


def test_metrics_are_exposed_for_prometheus(make_client: MakeClient) -> None:
    response = make_client(metrics_token=METRICS_TOKEN).get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status_code == 200
    assert "heimvakt_readings_stored_total" in response.text
    assert "heimvakt_quarantined_total" in response.text


def test_metrics_need_the_token_or_a_loopback_client(make_client: MakeClient) -> None:
    """/metrics used to answer anyone: load, error rates and quarantine reasons of a clinic."""
    protected = make_client(metrics_token=METRICS_TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        refused = protected.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["content-type"] == "application/problem+json"
        assert "heimvakt_" not in refused.text
    # Without a token only the machine itself may scrape.
    assert make_client().get("/metrics").status_code == 401
    local = TestClient(make_client().app, client=("127.0.0.1", 50000))
    assert local.get("/metrics").status_code == 200


def test_readiness_says_what_failed_without_the_database_error(
    make_client: MakeClient, database_url: str, conn: psycopg.Connection
) -> None:
    """/readyz is open to anyone; it used to echo the database's own error text."""
    with ConnectionPool(database_url, min_size=1, max_size=1) as broken:
        client = make_client(pool=broken)
        assert client.get("/readyz").status_code == 200
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the database does not answer"
    assert "terminat" not in response.text
    assert "server" not in response.text


def test_an_unknown_address_is_a_problem_json_404(make_client: MakeClient) -> None:
    with make_client() as client:
        response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_http_ingest_is_part_of_the_app_and_stores_through_the_rules(
    make_client: MakeClient, conn: psycopg.Connection
) -> None:
    patient = seed_patient_with_device(conn)
    plan_with_limits(conn, patient, Limits("59408-5", low=90), now=datetime.now(UTC))
    token = do_issue_token(conn, device_id="ox-1", now=datetime.now(UTC))
    body = {
        "msg_id": str(uuid.uuid4()),
        "measured_at": datetime.now(UTC).isoformat(),
        "readings": [{"code": "spo2", "value": 86, "unit": "%"}],
    }
    response = make_client().post(
        "/api/v1/devices/ox-1/readings", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert conn.execute("SELECT direction FROM alerts").fetchall() == [("low",)]
    assert (
        "/api/v1/devices/{device_id}/readings" in make_client().get("/openapi.json").json()["paths"]
    )
