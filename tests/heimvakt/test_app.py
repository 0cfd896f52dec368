"""The composed app: operations endpoints, problem+json everywhere, HTTP ingest wired in."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.auth import TokenVerifier
from core.clock import SystemClock
from core.loops import Pulse
from devices.tokens import do_issue_token
from heimvakt.app import create_app
from heimvakt.worker import rules
from tests.ingest.conftest import TEST_LIMITS
from tests.support import seed_patient_with_device

PUBLIC_URL = "http://testserver"
MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(pool: ConnectionPool) -> MakeClient:
    def make(*, broker_connected: bool = True, loops: Sequence[Pulse] = ()) -> TestClient:
        clock = SystemClock()
        app = create_app(
            pool=pool,
            clock=clock,
            broker_connected=lambda: broker_connected,
            after_store=rules(clock, public_url=PUBLIC_URL),
            limits=TEST_LIMITS,
            verifier=TokenVerifier([], local=None),
            public_url=PUBLIC_URL,
            loops=loops,
        )
        return TestClient(app, raise_server_exceptions=False)

    return make


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
    text = make_client().get("/metrics").text
    assert "heimvakt_readings_stored_total" in text
    assert "heimvakt_quarantined_total" in text


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
    conn.execute(
        "INSERT INTO patient_thresholds (patient_id, code, low) VALUES (%s, '59408-5', 90)",
        (patient,),
    )
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
