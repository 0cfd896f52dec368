"""Devices provisioned through the registry log in to a real Mosquitto run from the exported
configuration, exactly as far as the registry allows, and a new export takes effect at the
broker's restart while the ingest keeps running."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from psycopg_pool import ConnectionPool
from typer.testing import CliRunner

from core.clock import SystemClock
from devices.service import do_assign_device, do_provision_device, do_revoke_device
from heimvakt.cli import app
from heimvakt.mosquitto import INGEST_USER
from ingest.service import MqttIngest
from tests.broker_security import (
    DYNAMIC_SECURITY,
    MOSQUITTO,
    MOSQUITTO_PASSWD,
    WAIT_SECONDS,
    SecuredMosquitto,
    make_password_file,
)
from tests.ingest.conftest import make_ingest
from tests.support import eventually, seed_patient_with_device

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None or MOSQUITTO_PASSWD is None or DYNAMIC_SECURITY is None,
    reason="needs mosquitto, mosquitto_passwd and the dynamic-security plugin",
)

PREFIX = "heimvakt/v1"
INGEST_PASSWORD = "ingest-Secret-30b7"


class Device:
    """One device's MQTT 5 session, logged in with what the registry gave it."""

    def __init__(self, port: int, device_id: str, password: str) -> None:
        self.device_id = device_id
        self.connacks: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(device_id, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.subacks.put(codes)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            client.disconnect()  # a refused log-in is final: no reconnect loop
        self.connacks.put(reason)

    def logged_in(self) -> bool:
        return not self.connacks.get(timeout=WAIT_SECONDS).is_failure

    def publish_reading(self, *, as_device: str | None = None, minute: int) -> str:
        """A reading on `as_device`'s topic (its own by default); returns its msg_id."""
        msg_id = str(uuid.uuid4())
        at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=60 - minute)
        body = (
            f'{{"msg_id":"{msg_id}","measured_at":"{at.isoformat()}",'
            f'"readings":[{{"code":"spo2","value":95,"unit":"%"}}]}}'
        )
        topic = f"{PREFIX}/devices/{as_device or self.device_id}/readings"
        self.client.publish(topic, body, qos=1).wait_for_publish(timeout=WAIT_SECONDS)
        return msg_id

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def export(database_url: str, passwd: Path, output: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["devices", "export-broker", str(passwd), "--output", str(output)],
        env={"HEIMVAKT_DATABASE_URL": database_url, "HEIMVAKT_MQTT_TOPIC_PREFIX": PREFIX},
    )
    assert result.exit_code == 0, result.output


def stored(conn: psycopg.Connection) -> set[str]:
    """The msg_ids of the messages whose readings were stored (a message's readings carry the
    time it was received, which `ingest_messages` records with its id)."""
    rows = conn.execute(
        "SELECT m.msg_id::text FROM ingest_messages m WHERE EXISTS (SELECT 1 FROM readings r"
        " WHERE r.device_id = m.device_id AND r.received_at = m.received_at)"
    )
    return {msg_id for (msg_id,) in rows}


@pytest.fixture
def ingest_for(pool: ConnectionPool) -> Iterator[list[MqttIngest]]:
    started: list[MqttIngest] = []
    yield started
    for worker in started:
        worker.stop()


def test_the_broker_lets_in_exactly_what_the_registry_says(
    tmp_path: Path,
    conn: psycopg.Connection,
    database_url: str,
    pool: ConnectionPool,
    ingest_for: list[MqttIngest],
) -> None:
    now = SystemClock().now()
    seed_patient_with_device(conn, device_id="seed-ox")  # a patient to hand devices to
    patient = conn.execute("SELECT patient_id FROM device_assignments").fetchone()
    assert patient is not None
    passwords = {}
    for device_id in ("dev-a", "dev-b"):
        provisioned = do_provision_device(conn, device_id=device_id, kind="pulse_oximeter", now=now)
        passwords[device_id] = provisioned.broker_password
        do_assign_device(
            conn, device_id=device_id, patient_id=patient[0], valid_from=now - timedelta(days=1)
        )
    platform = tmp_path / "passwd"
    make_password_file(platform, {INGEST_USER: INGEST_PASSWORD})
    config = tmp_path / "dynamic-security.json"
    export(database_url, platform, config)
    broker = SecuredMosquitto(tmp_path, config_file=config)
    broker.start()
    sessions: list[Device] = []
    try:
        ingest = make_ingest(
            pool, f"mqtt://{INGEST_USER}:{INGEST_PASSWORD}@127.0.0.1:{broker.port}", PREFIX
        )
        ingest_for.append(ingest)
        ingest.start()
        assert ingest.wait_connected(10)

        a = Device(broker.port, "dev-a", passwords["dev-a"])
        b = Device(broker.port, "dev-b", passwords["dev-b"])
        sessions += [a, b]
        assert a.logged_in()
        assert b.logged_in()
        own = a.publish_reading(minute=1)
        eventually(lambda: own in stored(conn), timeout=10)

        forged = a.publish_reading(as_device="dev-b", minute=2)  # A on B's topic
        control = b.publish_reading(minute=3)
        eventually(lambda: control in stored(conn), timeout=10)
        assert forged not in stored(conn)
        a.client.subscribe(f"{PREFIX}/devices/+/readings", qos=1)
        assert all(code.is_failure for code in a.subacks.get(timeout=WAIT_SECONDS))
        wrong = Device(broker.port, "dev-a", "not-the-password")
        sessions.append(wrong)
        assert not wrong.logged_in()

        # A is revoked; the operator exports again and restarts the broker, not the ingest.
        do_revoke_device(conn, device_id="dev-a", now=SystemClock().now())
        export(database_url, platform, config)
        for session in sessions:
            session.close()
        broker.stop()
        broker.start()
        again = Device(broker.port, "dev-a", passwords["dev-a"])
        b_again = Device(broker.port, "dev-b", passwords["dev-b"])
        sessions += [again, b_again]
        assert not again.logged_in()
        assert b_again.logged_in()
        after = b_again.publish_reading(minute=4)
        eventually(lambda: after in stored(conn), timeout=30)  # the same ingest, reconnected
    finally:
        for session in sessions:
            session.close()
        broker.stop()
