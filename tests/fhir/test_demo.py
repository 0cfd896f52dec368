"""Every resource the facade serves about the demo's patients validates against the R4
models: the demo seeded as `heimvakt up --demo` seeds it, two days of its simulated devices'
readings stored through the ingest's decoder and store, then read by the demo nurse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from psycopg_pool import ConnectionPool

from care.people import do_link_identity
from core.clock import ManualClock
from devices.simulator import history_times
from heimvakt.demo import PATIENTS, seed_demo, simulated_devices
from ingest.decoding import Envelope
from ingest.native import decode_native
from ingest.store import store_batch
from tests.care.conftest import build_app, local_issuer
from tests.ingest.conftest import TEST_LIMITS


def _store_history(conn: psycopg.Connection, now: datetime) -> int:
    messages, quarantined = [], []
    for device in simulated_devices():
        envelope = Envelope(
            channel="mqtt",
            topic=None,
            device_id=device.device_id,
            received_at=now,
            max_future=TEST_LIMITS.max_future,
            max_age=TEST_LIMITS.max_age,
            max_readings=TEST_LIMITS.max_readings,
        )
        for at in history_times(now=now, days=2):
            decoded = decode_native(device.payload(measured_at=at, now=now), envelope)
            messages.append(decoded.candidates)
            quarantined += decoded.quarantined
    outcome = store_batch(conn, channel="mqtt", messages=messages, quarantined=quarantined)
    assert not quarantined
    assert not outcome.refused
    return outcome.stored_count


def test_everything_about_every_demo_patient_validates(database_url: str) -> None:
    now = datetime.now(UTC)
    with ConnectionPool(database_url, min_size=1, max_size=4) as pool:
        issuer = local_issuer(pool)
        issuer.ensure_signing_key()
        with pool.connection() as conn:
            assert seed_demo(conn, clock=ManualClock(now - timedelta(minutes=1)), issuer=None)
            assert _store_history(conn, now) > 0
            nurse = conn.execute(
                "SELECT id FROM staff WHERE display_name = 'Siri Sykepleier'"
            ).fetchone()
            assert nurse is not None
            do_link_identity(
                conn, issuer=issuer.config.issuer, subject="demo-nurse", staff_id=nurse[0]
            )
        headers = {"Authorization": f"Bearer {issuer.issue(subject='demo-nurse')}"}
        with build_app(pool, issuer) as client:
            found = _get(client, "/fhir/Patient?_count=100", headers)
            ids = [e["resource"]["id"] for e in found["entry"]]
            assert len(ids) == len(PATIENTS)
            kinds: set[str] = set()
            for patient_id in ids:
                everything = _get(
                    client, f"/fhir/Patient/{patient_id}/$everything?_count=1000", headers
                )
                kinds |= {e["resource"]["resourceType"] for e in everything["entry"]}
                for entry in everything["entry"]:
                    if entry["resource"]["resourceType"] == "Device":
                        _get(client, f"/fhir/Device/{entry['resource']['id']}", headers)
            searched = _get(
                client, "/fhir/Observation?_include=Observation:device&_count=1000", headers
            )
    assert kinds == {"Patient", "Device", "Observation"}
    codes = {
        e["resource"]["code"]["coding"][0]["code"]
        for e in searched["entry"]
        if e["resource"]["resourceType"] == "Observation"
    }
    assert "85354-9" in codes


def _get(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body
