"""The ingest worker end to end: real broker in, real database out."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.library import threshold
from core.limits import Limits
from core.mqtt import BrokerAddress
from core.readings import Reading
from devices.service import do_assign_device
from devices.status import DeviceStatus, status_of
from ingest import metrics
from ingest.service import MqttIngest
from ingest.store import AfterStore
from tests.ingest.conftest import TEST_LIMITS, Publish, make_ingest
from tests.support import Fault, eventually, plan_with_limits, seed_patient_with_device

SPO2 = "59408-5"


def reading_message(
    value: float, *, at: datetime, code: str = "spo2", unit: str = "%"
) -> dict[str, Any]:
    return {
        "msg_id": str(uuid.uuid4()),
        "measured_at": at.isoformat(),
        "readings": [{"code": code, "value": value, "unit": unit}],
    }


def count(conn: psycopg.Connection, query: str, *params: object) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_each_published_reading_is_stored_exactly_once(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    patient = seed_patient_with_device(conn)
    start = datetime.now(UTC) - timedelta(hours=1)
    messages = [reading_message(90 + i % 8, at=start + timedelta(minutes=i)) for i in range(40)]
    for body in messages:
        publish("ox-1", body)

    eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 40)
    stored = conn.execute(
        "SELECT count(DISTINCT measured_at), min(patient_id::text), max(patient_id::text)"
        " FROM readings"
    ).fetchone()
    assert stored == (40, str(patient), str(patient))
    recorded = {row[0] for row in conn.execute("SELECT msg_id::text FROM ingest_messages")}
    assert recorded == {body["msg_id"] for body in messages}


def test_the_same_message_published_twice_is_stored_once(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    body = reading_message(94, at=datetime.now(UTC))
    publish("ox-1", body)
    publish("ox-1", body)
    marker = reading_message(95, at=datetime.now(UTC) + timedelta(seconds=1))
    publish("ox-1", marker)

    eventually(lambda: count(conn, "SELECT count(*) FROM readings WHERE value = 95") == 1)
    assert count(conn, "SELECT count(*) FROM readings WHERE value = 94") == 1
    assert (
        count(conn, "SELECT count(*) FROM ingest_messages WHERE msg_id = %s", body["msg_id"]) == 1
    )


def test_a_reading_beyond_the_threshold_opens_one_alert_and_a_second_updates_it(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    patient = seed_patient_with_device(conn)
    plan_with_limits(conn, patient, Limits(SPO2, low=90), now=datetime.now(UTC))
    now = datetime.now(UTC)
    publish("ox-1", reading_message(95, at=now - timedelta(minutes=3)))
    publish("ox-1", reading_message(88, at=now - timedelta(minutes=2)))

    alert = eventually(
        lambda: conn.execute(
            "SELECT id, direction, last_value, occurrences FROM alerts WHERE patient_id = %s",
            (patient,),
        ).fetchall()
    )
    assert [row[1:] for row in alert] == [("low", 88.0, 1)]

    publish("ox-1", reading_message(86, at=now - timedelta(minutes=1)))
    updated = eventually(
        lambda: conn.execute(
            "SELECT id, last_value, occurrences FROM alerts"
            " WHERE patient_id = %s AND occurrences = 2",
            (patient,),
        ).fetchall()
    )
    assert updated == [(alert[0][0], 86.0, 2)]
    assert count(conn, "SELECT count(*) FROM alerts") == 1


def test_every_kind_of_bad_input_is_quarantined_and_a_good_reading_after_it_is_stored(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    now = datetime.now(UTC)
    good = reading_message(93, at=now)
    publish("ox-1", b"{this is not json")
    publish(
        "ox-1",
        {"measured_at": now.isoformat(), "readings": [{"code": "spo2", "value": 93, "unit": "%"}]},
    )
    publish("ox-1", {**good, "msg_id": "not-a-uuid"})
    publish("unknown-device", reading_message(93, at=now))
    publish("ox-1", reading_message(93, at=now, code="99999-9"))
    publish("ox-1", reading_message(0.93, at=now, unit="1"))
    publish("ox-1", reading_message(140, at=now))
    publish("ox-1", reading_message(93, at=now + timedelta(minutes=10)))
    publish("bad device!", reading_message(93, at=now))
    publish("ox-1", good)

    eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 1)
    reasons: dict[str, int] = eventually(
        lambda: dict(
            conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall()
        )
    )
    assert reasons == {
        "malformed_json": 1,
        "missing_field": 1,
        "invalid_field": 1,
        "unknown_device": 1,
        "unknown_code": 1,
        "unknown_unit": 1,
        "implausible_value": 1,
        "future_timestamp": 1,
        "invalid_topic": 1,
    }
    assert ingest.connected
    stored = conn.execute("SELECT measured_at, value FROM readings").fetchall()
    assert stored == [(datetime.fromisoformat(good["measured_at"]), 93.0)]


def test_a_reading_from_before_the_device_was_assigned_is_quarantined(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    now = datetime.now(UTC)
    conn.execute("UPDATE device_assignments SET valid_from = %s", (now - timedelta(days=2),))
    publish("ox-1", reading_message(93, at=now - timedelta(days=3)))
    reasons = eventually(
        lambda: conn.execute("SELECT reason, device_id FROM quarantine").fetchall()
    )
    assert reasons == [("device_not_assigned", "ox-1")]
    assert count(conn, "SELECT count(*) FROM readings") == 0


def test_a_reading_older_than_the_maximum_age_is_quarantined(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    now = datetime.now(UTC)
    publish("ox-1", reading_message(93, at=now - TEST_LIMITS.max_age - timedelta(minutes=1)))
    publish("ox-1", reading_message(94, at=now - TEST_LIMITS.max_age + timedelta(hours=1)))
    eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 1)
    reasons = eventually(
        lambda: conn.execute("SELECT reason, device_id FROM quarantine").fetchall()
    )
    assert reasons == [("too_old", "ox-1")]
    assert conn.execute("SELECT value FROM readings").fetchall() == [(94.0,)]


def test_a_device_moved_to_a_new_patient_cannot_backdate_into_the_previous_patients_record(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    first = seed_patient_with_device(conn, device_id="ox-1", name="First")
    second = seed_patient_with_device(conn, device_id="ox-2", name="Second")
    now = datetime.now(UTC)
    conn.execute("UPDATE device_assignments SET valid_to = %s WHERE device_id = 'ox-1'", (now,))
    do_assign_device(conn, device_id="ox-1", patient_id=second, valid_from=now)
    for age in (timedelta(hours=1), timedelta(days=29)):
        publish("ox-1", reading_message(93, at=now - age))
    publish("ox-1", reading_message(95, at=now + timedelta(seconds=1)))
    eventually(lambda: count(conn, "SELECT count(*) FROM quarantine") == 2)
    eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 1)
    reasons = conn.execute("SELECT reason FROM quarantine").fetchall()
    assert reasons == [("device_reassigned",)] * 2
    assert count(conn, "SELECT count(*) FROM readings WHERE patient_id = %s", first) == 0
    assert count(conn, "SELECT count(*) FROM readings WHERE patient_id = %s", second) == 1


def test_a_msg_id_sent_again_with_another_measured_at_is_stored_once_and_quarantined_once(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    now = datetime.now(UTC)
    body = reading_message(93, at=now - timedelta(minutes=5))
    publish("ox-1", body)
    eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 1)
    publish("ox-1", {**body, "measured_at": (now - timedelta(minutes=1)).isoformat()})
    publish("ox-1", body)
    reasons = eventually(
        lambda: conn.execute("SELECT reason, msg_id::text FROM quarantine").fetchall()
    )
    assert reasons == [("conflicting_duplicate", body["msg_id"])]
    stored = conn.execute("SELECT measured_at FROM readings").fetchall()
    assert stored == [(now - timedelta(minutes=5),)]


def test_a_payload_over_the_size_limit_is_quarantined_and_others_keep_flowing(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    seed_patient_with_device(conn, device_id="ox-2", name="Other")
    big = reading_message(93, at=datetime.now(UTC))
    big["padding"] = "x" * (TEST_LIMITS.max_payload_bytes + 1)
    publish("ox-1", big)
    publish("ox-2", reading_message(94, at=datetime.now(UTC)))

    eventually(lambda: count(conn, "SELECT count(*) FROM readings WHERE device_id = 'ox-2'") == 1)
    [(reason, size)] = eventually(
        lambda: conn.execute("SELECT reason, length(payload) FROM quarantine").fetchall()
    )
    assert reason == "payload_too_large"
    assert size <= 1024, "only a sample of an oversized payload is kept"


def test_a_message_with_too_many_readings_is_quarantined(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    body = reading_message(93, at=datetime.now(UTC))
    body["readings"] = body["readings"] * (TEST_LIMITS.max_readings + 1)
    publish("ox-1", body)
    reasons = eventually(lambda: conn.execute("SELECT reason FROM quarantine").fetchall())
    assert reasons == [("too_many_readings",)]
    assert count(conn, "SELECT count(*) FROM readings") == 0


def test_a_flooding_device_is_rate_limited_while_another_device_flows(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn, device_id="flood")
    seed_patient_with_device(conn, device_id="calm", name="Calm")
    now = datetime.now(UTC)
    flood = 3 * TEST_LIMITS.device_burst
    for i in range(flood):
        publish(
            "flood", reading_message(93, at=now - timedelta(seconds=10) + timedelta(milliseconds=i))
        )
    for minutes in range(5):
        publish("calm", reading_message(95, at=now - timedelta(minutes=minutes)))

    eventually(lambda: count(conn, "SELECT count(*) FROM readings WHERE device_id = 'calm'") == 5)
    limited = eventually(
        lambda: (
            count(conn, "SELECT count(*) FROM quarantine WHERE reason = 'rate_limited'")
            + count(conn, "SELECT count(*) FROM readings WHERE device_id = 'flood'")
            == flood
            and count(conn, "SELECT count(*) FROM quarantine WHERE reason = 'rate_limited'")
        )
    )
    assert limited >= flood - TEST_LIMITS.device_burst - 5
    assert count(conn, "SELECT count(*) FROM quarantine WHERE device_id = 'calm'") == 0


def test_a_gateway_replaying_days_of_readings_at_once_is_not_rate_limited(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    now = datetime.now(UTC)
    replay = 2 * TEST_LIMITS.device_burst
    for i in range(replay):
        publish("ox-1", reading_message(93, at=now - timedelta(hours=replay - i)))
    eventually(lambda: count(conn, "SELECT count(*) FROM readings") == replay)
    assert count(conn, "SELECT count(*) FROM quarantine") == 0


def test_a_status_report_marks_the_device_online_with_its_battery_and_firmware(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    publish(
        "ox-1", {"battery": 71, "firmware": "2.4.1", "signal": -67, "backlog": 3}, kind="status"
    )
    status = eventually(lambda: status_of(conn, device_id="ox-1"))
    assert (
        status.online,
        status.battery_pct,
        status.firmware,
        status.signal_dbm,
        status.backlog,
    ) == (
        True,
        71,
        "2.4.1",
        -67,
        3,
    )


def test_a_status_report_from_an_unknown_device_or_with_bad_fields_is_quarantined(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    publish("ghost", {"battery": 50}, kind="status")
    publish("ox-1", {"battery": 250}, kind="status")
    reasons = eventually(
        lambda: (
            sorted(conn.execute("SELECT reason FROM quarantine").fetchall())
            if count(conn, "SELECT count(*) FROM quarantine") == 2
            else None
        )
    )
    assert reasons == [("invalid_field",), ("unknown_device",)]


def test_the_last_will_of_a_gateway_that_vanishes_marks_its_device_offline(
    conn: psycopg.Connection, ingest: MqttIngest, mqtt_server_url: str, topic_prefix: str
) -> None:
    seed_patient_with_device(conn)
    address = BrokerAddress.parse(mqtt_server_url)
    gateway = address.client(client_id=f"gw-{uuid.uuid4().hex[:8]}", persistent=False)
    status_topic = f"{topic_prefix}/devices/ox-1/status"
    gateway.will_set(status_topic, json.dumps({"online": False}), qos=1)
    gateway.connect(address.host, address.port, keepalive=5)
    gateway.loop_start()
    gateway.publish(
        status_topic, json.dumps({"online": True, "battery": 90}), qos=1
    ).wait_for_publish(5)
    eventually(lambda: (s := status_of(conn, device_id="ox-1")) is not None and s.online)

    gateway.loop_stop()
    sock = gateway.socket()
    assert sock is not None
    sock.close()  # gone without a goodbye: the broker publishes the will

    def offline() -> DeviceStatus | None:
        status = status_of(conn, device_id="ox-1")
        return status if status is not None and not status.online else None

    status = eventually(offline, timeout=20)
    assert status.battery_pct == 90, "the offline will keeps what the device said before"


FIXTURES = Path(__file__).parent / "fixtures" / "morning"


def test_senml_and_fhir_topics_store_the_same_readings_as_native(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    for device in ("native-gw", "senml-gw", "fhir-gw"):
        seed_patient_with_device(conn, device_id=device, name=device)
    publish("native-gw", (FIXTURES / "native.json").read_bytes())
    publish("senml-gw", (FIXTURES / "senml.json").read_bytes(), kind="senml")
    publish("fhir-gw", (FIXTURES / "fhir-bundle.json").read_bytes(), kind="fhir")

    def readings_of(device: str) -> list[tuple[str, float, datetime]]:
        rows = conn.execute(
            "SELECT code, round(value::numeric, 1)::float8, measured_at FROM readings"
            " WHERE device_id = %s ORDER BY code",
            (device,),
        ).fetchall()
        return [tuple(row) for row in rows]

    native = eventually(lambda: len(readings_of("native-gw")) == 5 and readings_of("native-gw"))
    eventually(lambda: readings_of("senml-gw") == native and readings_of("fhir-gw") == native)
    assert count(conn, "SELECT count(*) FROM quarantine") == 0


def ingest_with(
    pool: ConnectionPool,
    broker_url: str,
    topic_prefix: str,
    *,
    after_store: Sequence[AfterStore],
    keepalive_seconds: int = 30,
    queue_size: int = 1000,
) -> MqttIngest:
    """A started worker whose transactions run `after_store`, e.g. to hold the writer."""
    worker = make_ingest(
        pool,
        broker_url,
        topic_prefix,
        after_store=after_store,
        keepalive_seconds=keepalive_seconds,
        queue_size=queue_size,
    )
    worker.start()
    assert worker.wait_connected(10)
    return worker


def test_a_writer_stuck_longer_than_the_keepalive_does_not_lose_the_broker(
    conn: psycopg.Connection,
    pool: ConnectionPool,
    mqtt_server_url: str,
    topic_prefix: str,
    publish: Publish,
) -> None:
    seed_patient_with_device(conn)
    stuck = threading.Event()

    def slow_first_commit(_: psycopg.Connection, __: Sequence[Reading]) -> None:
        if not stuck.is_set():
            stuck.set()
            time.sleep(4)  # the broker drops a client silent for 1.5 keepalives (1.5 s)

    disconnects = metrics.RECONNECTS._value.get()
    worker = ingest_with(
        pool,
        mqtt_server_url,
        topic_prefix,
        after_store=[slow_first_commit],
        keepalive_seconds=1,
        queue_size=10,
    )
    try:
        start = datetime.now(UTC) - timedelta(hours=1)
        for i in range(60):
            publish("ox-1", reading_message(93, at=start + timedelta(minutes=i)))
        eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 60)
        assert stuck.is_set()
        assert worker.connected
        assert metrics.RECONNECTS._value.get() == disconnects
    finally:
        worker.stop()


def test_a_rule_that_raises_becomes_a_technical_alert_and_the_readings_are_stored(
    conn: psycopg.Connection,
    ingest: MqttIngest,
    publish: Publish,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patient = seed_patient_with_device(conn)
    now = datetime.now(UTC)
    plan_with_limits(conn, patient, Limits(SPO2, low=90), now=now)
    fault = Fault()
    monkeypatch.setattr(threshold, "classify", fault)

    for minutes in (3, 2, 1):
        publish("ox-1", reading_message(85, at=now - timedelta(minutes=minutes)))

    eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 3)
    alert = eventually(
        lambda: conn.execute(
            "SELECT rule_id, severity, category, details ->> 'rule', details ->> 'error'"
            " FROM alerts WHERE patient_id = %s",
            (patient,),
        ).fetchall()
    )
    assert alert == [
        ("rule_failed:threshold", "red", "technical", "threshold", "ValueError('injected fault')")
    ]
    assert fault.raised >= 3
    assert count(conn, "SELECT count(*) FROM quarantine") == 0
    assert all(pulse.trouble() is None for pulse in ingest.pulses)


def test_a_batch_that_raises_outside_the_rules_stores_all_but_the_culprit(
    conn: psycopg.Connection,
    pool: ConnectionPool,
    mqtt_server_url: str,
    topic_prefix: str,
    publish: Publish,
) -> None:
    """A bug in code run on a batch (here a hook) that only one message triggers: the batch is
    split, the others are stored, the culprit is kept in quarantine; the writers live on."""
    seed_patient_with_device(conn, device_id="ox-1")
    seed_patient_with_device(conn, device_id="ox-2", name="Other")
    culprit = 66.0

    def buggy(_: psycopg.Connection, stored: Sequence[Reading]) -> None:
        if any(r.value == culprit for r in stored):
            raise ValueError("injected fault")

    worker = make_ingest(pool, mqtt_server_url, topic_prefix, after_store=[buggy])
    worker.start()
    try:
        assert worker.wait_connected(10)
        now = datetime.now(UTC)
        for minutes in range(10, 0, -1):
            value = culprit if minutes == 5 else 90 + minutes
            publish("ox-1", reading_message(value, at=now - timedelta(minutes=minutes)))
            publish("ox-2", reading_message(95, at=now - timedelta(minutes=minutes)))
        eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 19)
        quarantined = eventually(
            lambda: conn.execute("SELECT device_id, reason, detail FROM quarantine").fetchall()
        )
        assert quarantined == [("ox-1", "storage_error", "injected fault")]
        assert count(conn, "SELECT count(*) FROM readings WHERE value = %s", culprit) == 0
        publish("ox-2", reading_message(96, at=now))
        eventually(lambda: count(conn, "SELECT count(*) FROM readings") == 20)
        assert all(pulse.trouble() is None for pulse in worker.pulses)
    finally:
        worker.stop()
