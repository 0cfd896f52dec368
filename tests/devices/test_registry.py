"""The registry through the API and the CLI: a device is registered with a broker login shown
once, handed to a patient, moved to another, and revoked; a delivery is imported from CSV."""

from __future__ import annotations

import base64
import hashlib
import stat
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.clock import SystemClock
from devices.tokens import do_issue_token
from heimvakt.cli import app
from ingest.decoding import Candidate
from ingest.store import store_batch
from tests.care.conftest import WorldClient
from tests.care.world import World
from tests.support import seed_patient_with_device


def as_coordinator(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens['coordinator']}"}


def verifies(secret: str, password: str) -> bool:
    """Whether a stored $7$ hash is Mosquitto's PBKDF2-SHA512 of the password."""
    _, seven, iterations, salt, digest = secret.split("$")
    computed = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations)
    )
    return seven == "7" and base64.b64encode(computed).decode() == digest


def reading_at(device_id: str, at: datetime) -> list[Candidate]:
    return [Candidate(device_id, uuid.uuid4(), at, "59408-5", 95.0, "%", SystemClock().now())]


def owner_of(conn: psycopg.Connection, device_id: str, at: datetime) -> object:
    row = conn.execute(
        "SELECT patient_id FROM readings WHERE device_id = %s AND measured_at = %s",
        (device_id, at),
    ).fetchone()
    return None if row is None else row[0]


def register(client: TestClient, world: World, device_id: str) -> dict[str, object]:
    response = client.post(
        "/api/v1/devices",
        json={"id": device_id, "kind": "pulse_oximeter", "measurements": ["spo2"]},
        headers=as_coordinator(world),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_device_is_registered_with_a_login_shown_once_and_kept_only_as_a_hash(
    world: World, world_client: WorldClient
) -> None:
    with world_client() as (client, conn):
        answer = register(client, world, "ox-new")
        login = answer["broker_login"]
        assert isinstance(login, dict)
        assert login["username"] == login["client_id"] == "ox-new"
        row = conn.execute("SELECT broker_secret, measurements FROM devices WHERE id = 'ox-new'")
        secret, measurements = row.fetchone() or (None, None)
        assert measurements == ["59408-5"], "an alias is stored as its LOINC code"
        assert login["password"] not in secret
        assert verifies(secret, login["password"])
        listed = client.get("/api/v1/devices?limit=100", headers=as_coordinator(world)).json()
        [entry] = [d for d in listed["items"] if d["id"] == "ox-new"]
        assert "password" not in str(entry)
        assert entry["assigned"] is False

        again = client.post(
            "/api/v1/devices",
            json={"id": "ox-new", "kind": "pulse_oximeter"},
            headers=as_coordinator(world),
        )
        assert again.status_code == 409

        rotated = client.post(
            "/api/v1/devices/ox-new/broker-password", headers=as_coordinator(world)
        )
        new_secret = conn.execute("SELECT broker_secret FROM devices WHERE id = 'ox-new'")
        assert verifies((new_secret.fetchone() or ("",))[0], rotated.json()["password"])


def test_readings_follow_the_device_from_one_patient_to_the_next(
    world: World, world_client: WorldClient
) -> None:
    """What the first patient measured stays theirs; what is measured after the move is the
    second's; a late reading from the first period is held for a nurse (mqtt.md, quarantine)."""
    first, second = world.patients["own"], world.patients["own_no_plan"]
    with world_client() as (client, conn):
        register(client, world, "ox-moving")
        headers = as_coordinator(world)
        handed = client.post(
            f"/api/v1/patients/{first}/devices", json={"device_id": "ox-moving"}, headers=headers
        )
        assert handed.status_code == 204, handed.text
        time.sleep(0.01)
        before = SystemClock().now()
        late = before + timedelta(microseconds=1)
        store_batch(
            conn, channel="mqtt", messages=[reading_at("ox-moving", before)], quarantined=[]
        )
        taken = client.delete(f"/api/v1/patients/{first}/devices/ox-moving", headers=headers)
        assert taken.status_code == 204, taken.text
        moved = client.post(
            f"/api/v1/patients/{second}/devices", json={"device_id": "ox-moving"}, headers=headers
        )
        assert moved.status_code == 204, moved.text
        after = SystemClock().now() + timedelta(seconds=1)
        store_batch(
            conn,
            channel="mqtt",
            messages=[reading_at("ox-moving", after), reading_at("ox-moving", late)],
            quarantined=[],
        )
        assert owner_of(conn, "ox-moving", before) == first
        assert owner_of(conn, "ox-moving", after) == second
        assert owner_of(conn, "ox-moving", late) is None
        held = conn.execute("SELECT reason FROM quarantine WHERE device_id = 'ox-moving'")
        assert held.fetchall() == [("device_reassigned",)]


def test_a_broken_device_is_swapped_in_one_step(world: World, world_client: WorldClient) -> None:
    patient = world.patients["own"]
    device = world.scenarios["own"].device
    with world_client() as (client, conn):
        register(client, world, "ox-replacement")
        swapped = client.post(
            f"/api/v1/patients/{patient}/devices",
            json={"device_id": "ox-replacement", "replaces": device},
            headers=as_coordinator(world),
        )
        assert swapped.status_code == 204, swapped.text
        current = conn.execute(
            "SELECT device_id FROM device_assignments WHERE patient_id = %s AND valid_to IS NULL",
            (patient,),
        ).fetchall()
        assert current == [("ox-replacement",)]


def test_a_revoked_device_loses_its_login_and_tokens_but_keeps_its_history(
    world: World, world_client: WorldClient
) -> None:
    device = world.scenarios["own"].device
    with world_client() as (client, conn):
        revoked = client.post(f"/api/v1/devices/{device}/revoke", headers=as_coordinator(world))
        assert revoked.status_code == 204
        row = conn.execute(
            "SELECT revoked_at IS NOT NULL, broker_secret FROM devices WHERE id = %s", (device,)
        ).fetchone()
        assert row == (True, None)
        live = conn.execute(
            "SELECT count(*) FROM device_tokens WHERE device_id = %s AND revoked_at IS NULL",
            (device,),
        ).fetchone()
        assert live == (0,)
        with pytest.raises(LookupError):
            do_issue_token(conn, device_id=device, now=SystemClock().now())
        assert conn.execute(
            "SELECT count(*) FROM device_assignments WHERE device_id = %s", (device,)
        ).fetchone() == (1,)
        unknown = client.post("/api/v1/devices/nope/revoke", headers=as_coordinator(world))
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"


def test_a_delivery_is_imported_from_csv_with_a_report_per_row(
    tmp_path: Path, conn: psycopg.Connection, database_url: str
) -> None:
    patient = seed_patient_with_device(conn, device_id="ox-existing")
    source = tmp_path / "delivery.csv"
    source.write_text(
        "id,kind,vendor,model,serial,measurements,patient_id\n"
        f"ox-100,pulse_oximeter,Acme,O2,SN100,spo2;pulse,{patient}\n"
        "ox-101,pulse_oximeter,Acme,O2,SN101,spo2,\n"
        "bad id!,pulse_oximeter,,,,,\n"
        "ox-existing,pulse_oximeter,,,,,\n"
        "ox-102,scale,Acme,S1,SN102,not-a-measurement,\n"
    )
    logins = tmp_path / "logins.csv"
    result = CliRunner().invoke(
        app,
        ["devices", "import", str(source), str(logins)],
        env={"HEIMVAKT_DATABASE_URL": database_url},
    )
    assert result.exit_code == 1, result.output
    assert "2 registered, 3 refused" in result.output
    assert "line 4: id:" in result.output
    assert "line 5: device 'ox-existing' is already registered" in result.output
    assert "line 6: measurements.0:" in result.output
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600
    rows = logins.read_text().splitlines()
    assert rows[0] == "username,client_id,password"
    assert [r.split(",")[0] for r in rows[1:]] == ["ox-100", "ox-101"]
    assigned = conn.execute(
        "SELECT patient_id FROM device_assignments WHERE device_id = 'ox-100'"
    ).fetchone()
    assert assigned == (patient,)


def test_a_devices_status_is_read_as_its_patients_data(
    world: World, world_client: WorldClient
) -> None:
    device = world.scenarios["own"].device
    with world_client() as (client, conn):
        conn.execute(
            "INSERT INTO device_status (device_id, online, battery_pct, backlog, reported_at,"
            " last_seen_at) VALUES (%s, true, 15, 3, now(), now())",
            (device,),
        )
        before = conn.execute("SELECT count(*) FROM access_log").fetchone()
        answer = client.get(f"/api/v1/devices/{device}/status", headers=as_coordinator(world))
        assert answer.status_code == 200, answer.text
        assert (answer.json()["battery_pct"], answer.json()["backlog"]) == (15, 3)
        logged = conn.execute(
            "SELECT resource, patient_ids FROM access_log ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert logged == ("device-status", [world.patients["own"]])
        after = conn.execute("SELECT count(*) FROM access_log").fetchone()
        assert before is not None
        assert after == (before[0] + 1,), "exactly one access-log row per read"
        unknown = client.get("/api/v1/devices/nope/status", headers=as_coordinator(world))
        assert unknown.status_code == 404
