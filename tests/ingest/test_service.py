"""The ingest worker end to end: real broker in, real database out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from care.service import do_set_threshold
from ingest.service import MqttIngest
from tests.ingest.conftest import Publish
from tests.support import eventually, seed_patient_with_device


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
        "SELECT count(DISTINCT msg_id), min(patient_id::text), max(patient_id::text) FROM readings"
    ).fetchone()
    assert stored == (40, str(patient), str(patient))


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
    assert count(conn, "SELECT count(*) FROM readings WHERE msg_id = %s", body["msg_id"]) == 1


def test_a_reading_beyond_the_threshold_opens_one_alert_and_a_second_updates_it(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    patient = seed_patient_with_device(conn)
    do_set_threshold(
        conn, patient_id=patient, code="spo2", low=90, high=None, now=datetime.now(UTC)
    )
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
    reasons = eventually(
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
    stored = conn.execute("SELECT msg_id::text, value FROM readings").fetchall()
    assert stored == [(good["msg_id"], 93.0)]


def test_a_reading_from_before_the_device_was_assigned_is_quarantined(
    conn: psycopg.Connection, ingest: MqttIngest, publish: Publish
) -> None:
    seed_patient_with_device(conn)
    publish("ox-1", reading_message(93, at=datetime(2019, 6, 1, tzinfo=UTC)))
    reasons = eventually(
        lambda: conn.execute("SELECT reason, device_id FROM quarantine").fetchall()
    )
    assert reasons == [("device_not_assigned", "ox-1")]
    assert count(conn, "SELECT count(*) FROM readings") == 0
