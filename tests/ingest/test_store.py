"""Storing a batch: attribution by assignment, dedupe, and one transaction for all it causes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.readings import Reading
from devices.service import do_assign_device, do_register_device
from devices.status import status_of
from ingest.decoding import Candidate
from ingest.store import store_batch
from tests.support import seed_patient_with_device

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def candidate(device_id: str = "ox-1", *, minutes_ago: float = 1, value: float = 93) -> Candidate:
    return Candidate(
        device_id=device_id,
        msg_id=uuid.uuid4(),
        measured_at=NOW - timedelta(minutes=minutes_ago),
        code="59408-5",
        value=value,
        unit="%",
        received_at=NOW,
    )


def test_readings_are_attributed_to_the_patient_the_device_was_assigned_to_at_the_time(
    conn: psycopg.Connection,
) -> None:
    first = seed_patient_with_device(conn, device_id="ox-1", name="First")
    do_register_device(conn, device_id="ox-2", kind="pulse_oximeter")
    conn.execute("UPDATE device_assignments SET valid_to = %s", (NOW - timedelta(hours=1),))
    second = seed_patient_with_device(conn, device_id="ox-3", name="Second")
    do_assign_device(conn, device_id="ox-1", patient_id=second, valid_from=NOW - timedelta(hours=1))

    outcome = store_batch(
        conn,
        channel="mqtt",
        candidates=[candidate(minutes_ago=120), candidate(minutes_ago=10)],
        quarantined=[],
    )
    assert sorted((r.patient_id, r.measured_at) for r in outcome.stored) == sorted(
        [(first, NOW - timedelta(minutes=120)), (second, NOW - timedelta(minutes=10))]
    )


def test_a_replayed_reading_is_a_duplicate_not_a_second_row(conn: psycopg.Connection) -> None:
    seed_patient_with_device(conn)
    reading = candidate()
    first = store_batch(conn, channel="mqtt", candidates=[reading, reading], quarantined=[])
    again = store_batch(conn, channel="mqtt", candidates=[reading], quarantined=[])
    assert (first.stored_count, first.duplicates) == (1, 1)
    assert (again.stored_count, again.duplicates) == (0, 1)
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)


def test_unknown_and_unassigned_devices_are_quarantined_with_their_reason(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn)
    do_register_device(conn, device_id="spare", kind="scale")
    outcome = store_batch(
        conn,
        channel="http",
        candidates=[candidate("ghost"), candidate("spare"), candidate("ox-1")],
        quarantined=[],
    )
    assert outcome.stored_count == 1
    assert outcome.quarantined == {"unknown_device": 1, "device_not_assigned": 1}
    rows = conn.execute(
        "SELECT device_id, reason, channel FROM quarantine ORDER BY device_id"
    ).fetchall()
    assert rows == [("ghost", "unknown_device", "http"), ("spare", "device_not_assigned", "http")]


def test_a_failing_after_store_hook_rolls_back_the_whole_batch(conn: psycopg.Connection) -> None:
    seed_patient_with_device(conn)
    seen: list[Reading] = []

    def failing_rule(hook_conn: psycopg.Connection, stored: Sequence[Reading]) -> None:
        seen.extend(stored)
        raise psycopg.errors.RaiseException("rule failed")

    with pytest.raises(psycopg.errors.RaiseException):
        store_batch(
            conn,
            channel="mqtt",
            candidates=[candidate()],
            quarantined=[],
            after_store=[failing_rule],
        )
    assert len(seen) == 1
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)


def test_every_message_from_a_registered_device_moves_its_last_seen_time(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn)
    reading = candidate()
    store_batch(conn, channel="mqtt", candidates=[reading], quarantined=[])
    assert status_of(conn, device_id="ox-1").last_seen_at == NOW  # type: ignore[union-attr]
    later = replace(reading, received_at=NOW + timedelta(hours=1))
    store_batch(conn, channel="mqtt", candidates=[later], quarantined=[])
    assert status_of(conn, device_id="ox-1").last_seen_at == NOW + timedelta(hours=1)  # type: ignore[union-attr]
    store_batch(conn, channel="mqtt", candidates=[candidate("ghost")], quarantined=[])
    assert status_of(conn, device_id="ghost") is None
