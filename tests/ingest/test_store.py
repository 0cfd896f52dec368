"""Storing a batch: attribution by assignment, dedupe, and one transaction for all it causes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

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


def move_device(conn: psycopg.Connection, device_id: str, *, to: uuid.UUID, at: datetime) -> None:
    """End the device's current assignment at `at` and give it to another patient from then."""
    conn.execute(
        "UPDATE device_assignments SET valid_to = %s WHERE device_id = %s AND valid_to IS NULL",
        (at, device_id),
    )
    do_assign_device(conn, device_id=device_id, patient_id=to, valid_from=at)


def test_readings_are_attributed_to_the_patient_the_device_was_assigned_to_at_the_time(
    conn: psycopg.Connection,
) -> None:
    """A device handed back and not given to anyone yet: a late upload still reaches the patient
    who had it; a reading from after it was handed back has no patient."""
    first = seed_patient_with_device(conn, device_id="ox-1", name="First")
    conn.execute("UPDATE device_assignments SET valid_to = %s", (NOW - timedelta(hours=1),))

    outcome = store_batch(
        conn,
        channel="mqtt",
        messages=[[candidate(minutes_ago=120)], [candidate(minutes_ago=10)]],
        quarantined=[],
    )
    assert [(r.patient_id, r.measured_at) for r in outcome.stored] == [
        (first, NOW - timedelta(minutes=120))
    ]
    assert outcome.quarantined == {"device_not_assigned": 1}


def test_a_device_moved_to_another_patient_cannot_write_into_the_previous_patients_record(
    conn: psycopg.Connection,
) -> None:
    """Backdated readings (an hour, 29 days) from a device now held by someone else go to
    quarantine for a nurse to decide; the new holder's own readings are stored for them."""
    first = seed_patient_with_device(conn, device_id="ox-1", name="First")
    second = seed_patient_with_device(conn, device_id="ox-2", name="Second")
    earlier = candidate(minutes_ago=3 * 60)
    store_batch(conn, channel="mqtt", messages=[[earlier]], quarantined=[])
    move_device(conn, "ox-1", to=second, at=NOW - timedelta(minutes=30))

    backdated = [candidate(minutes_ago=60), candidate(minutes_ago=29 * 24 * 60)]
    outcome = store_batch(
        conn,
        channel="mqtt",
        messages=[[backdated[0]], [backdated[1]], [candidate(minutes_ago=5)], [earlier]],
        quarantined=[],
    )
    assert [(r.patient_id, r.measured_at) for r in outcome.stored] == [
        (second, NOW - timedelta(minutes=5))
    ]
    assert outcome.quarantined == {"device_reassigned": 2}
    assert outcome.duplicates == 1  # the reading stored before the move, redelivered
    assert sorted((r.measured_at, r.reason) for r in outcome.refused) == sorted(
        (c.measured_at, "device_reassigned") for c in backdated
    )
    rows = conn.execute(
        "SELECT device_id, msg_id, reason FROM quarantine ORDER BY msg_id"
    ).fetchall()
    assert rows == sorted(
        [("ox-1", c.msg_id, "device_reassigned") for c in backdated], key=lambda r: r[1]
    )
    old_record = conn.execute(
        "SELECT count(*) FROM readings WHERE patient_id = %s", (first,)
    ).fetchone()
    assert old_record == (1,)


def test_a_device_given_back_to_the_same_patient_still_stores_a_late_upload(
    conn: psycopg.Connection,
) -> None:
    patient = seed_patient_with_device(conn, device_id="ox-1")
    move_device(conn, "ox-1", to=patient, at=NOW - timedelta(minutes=30))
    outcome = store_batch(
        conn, channel="mqtt", messages=[[candidate(minutes_ago=60)]], quarantined=[]
    )
    assert [r.patient_id for r in outcome.stored] == [patient]


def test_a_msg_id_reused_for_other_content_is_a_conflicting_duplicate_and_the_first_wins(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn)
    first = candidate(minutes_ago=10)
    backdated = replace(first, measured_at=NOW - timedelta(hours=5))
    revalued = replace(first, value=88)
    stored = store_batch(conn, channel="mqtt", messages=[[first]], quarantined=[])
    again = store_batch(
        conn,
        channel="mqtt",
        messages=[[backdated], [first], [revalued]],
        quarantined=[],
    )
    assert stored.stored_count == 1
    assert (again.stored_count, again.duplicates) == (0, 1)
    assert again.quarantined == {"conflicting_duplicate": 2}
    assert conn.execute("SELECT measured_at, value FROM readings").fetchall() == [
        (first.measured_at, 93)
    ]
    rows = conn.execute("SELECT msg_id, reason FROM quarantine").fetchall()
    assert rows == [(first.msg_id, "conflicting_duplicate")] * 2


def test_of_two_messages_with_one_msg_id_in_one_batch_the_first_wins(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn)
    first = candidate(minutes_ago=10)
    second = replace(first, measured_at=NOW - timedelta(minutes=20))
    pair = [first, replace(first, code="8867-4", value=70, unit="/min")]
    outcome = store_batch(
        conn,
        channel="mqtt",
        messages=[pair, [second], list(reversed(pair))],
        quarantined=[],
    )
    assert (outcome.stored_count, outcome.duplicates) == (2, 2)
    assert outcome.quarantined == {"conflicting_duplicate": 1}
    assert [r.measured_at for r in outcome.refused] == [second.measured_at]


def test_a_replayed_reading_is_a_duplicate_not_a_second_row(conn: psycopg.Connection) -> None:
    seed_patient_with_device(conn)
    reading = candidate()
    first = store_batch(conn, channel="mqtt", messages=[[reading], [reading]], quarantined=[])
    again = store_batch(conn, channel="mqtt", messages=[[reading]], quarantined=[])
    assert (first.stored_count, first.duplicates) == (1, 1)
    assert (again.stored_count, again.duplicates) == (0, 1)
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)


def test_the_readings_stored_are_counted_per_week_once(conn: psycopg.Connection) -> None:
    seed_patient_with_device(conn)
    sunday = candidate(minutes_ago=1)  # Sunday 22 November, Norwegian time
    messages = [[sunday], [candidate(minutes_ago=2)], [candidate(minutes_ago=7 * 24 * 60)]]
    store_batch(conn, channel="mqtt", messages=messages, quarantined=[])
    store_batch(conn, channel="mqtt", messages=[[sunday]], quarantined=[])  # a replay
    weeks = conn.execute("SELECT week, readings FROM reading_weeks ORDER BY week").fetchall()
    assert weeks == [(date(2026, 11, 9), 1), (date(2026, 11, 16), 2)]


def test_unknown_and_unassigned_devices_are_quarantined_with_their_reason(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn)
    do_register_device(conn, device_id="spare", kind="scale")
    outcome = store_batch(
        conn,
        channel="http",
        messages=[[candidate("ghost")], [candidate("spare")], [candidate("ox-1")]],
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
            messages=[[candidate()]],
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
    store_batch(conn, channel="mqtt", messages=[[reading]], quarantined=[])
    first = status_of(conn, device_id="ox-1")
    assert first is not None
    assert first.last_seen_at == NOW
    later = replace(reading, received_at=NOW + timedelta(hours=1))
    store_batch(conn, channel="mqtt", messages=[[later]], quarantined=[])
    second = status_of(conn, device_id="ox-1")
    assert second is not None
    assert second.last_seen_at == NOW + timedelta(hours=1)
    store_batch(conn, channel="mqtt", messages=[[candidate("ghost")]], quarantined=[])
    assert status_of(conn, device_id="ghost") is None
