"""The engine's kept copies against the database: several workers, rollbacks, plan changes.

Each test plays workers as separate `ReadingState`s on one database, storing readings for the
same patient, and checks that a copy either catches up with what others stored or is loaded
anew, and always holds what a full load from the readings table holds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from alerts.context import HISTORY, load_series
from alerts.state import Advanced, ReadingState
from core.limits import Limits
from ingest.decoding import Candidate
from ingest.store import store_batch
from tests.support import plan_with_limits, seed_patient_with_device

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
SPO2 = "59408-5"


def spo2(minutes: float, value: float = 94) -> Candidate:
    return Candidate(
        device_id="ox-1",
        msg_id=uuid.uuid4(),
        measured_at=NOW + timedelta(minutes=minutes),
        code=SPO2,
        value=value,
        unit="%",
        received_at=NOW + timedelta(minutes=minutes),
    )


def store(conn: psycopg.Connection, state: ReadingState, *readings: Candidate) -> Advanced:
    """One ingest batch: store the readings and advance the worker's state, in one transaction."""
    with conn.transaction():
        outcome = store_batch(
            conn, channel="mqtt", messages=[[r] for r in readings], quarantined=[]
        )
        return state.advance(conn, outcome.stored)


def held(state: Advanced, patient: UUID) -> list[tuple[int, float]]:
    series = state.histories[patient].series[SPO2]
    return list(zip(series.times, series.values, strict=True))


def in_database(conn: psycopg.Connection, patient: UUID) -> list[tuple[int, float]]:
    series = load_series(conn, since={patient: NOW - HISTORY})[patient][SPO2]
    return list(zip(series.times, series.values, strict=True))


@pytest.fixture
def patient(conn: psycopg.Connection) -> UUID:
    return seed_patient_with_device(conn)


def test_a_first_visit_loads_and_later_batches_only_add(
    conn: psycopg.Connection, patient: UUID
) -> None:
    worker = ReadingState()
    first = store(conn, worker, spo2(0))
    second = store(conn, worker, spo2(10))
    assert (first.loaded, second.loaded, second.caught_up) == (1, 0, 0)
    assert held(second, patient) == in_database(conn, patient)


def test_a_worker_catches_up_with_what_another_worker_stored(
    conn: psycopg.Connection, patient: UUID
) -> None:
    one, other = ReadingState(), ReadingState()
    store(conn, one, spo2(0))
    store(conn, other, spo2(10, 90), spo2(20, 91))
    again = store(conn, one, spo2(30))
    assert (again.loaded, again.caught_up) == (0, 1)
    assert held(again, patient) == in_database(conn, patient)
    assert len(held(again, patient)) == 4


def test_a_rolled_back_batch_makes_the_copy_load_again(
    conn: psycopg.Connection, patient: UUID
) -> None:
    worker = ReadingState()
    store(conn, worker, spo2(0))

    def failing_batch() -> None:
        with conn.transaction():
            outcome = store_batch(conn, channel="mqtt", messages=[[spo2(10)]], quarantined=[])
            worker.advance(conn, outcome.stored)  # the copy now holds a reading never committed
            raise RuntimeError("the batch fails after the rules ran")

    with pytest.raises(RuntimeError):
        failing_batch()
    after = store(conn, worker, spo2(20))
    assert after.loaded == 1
    assert held(after, patient) == in_database(conn, patient)
    assert len(held(after, patient)) == 2


def test_a_change_of_limits_makes_the_copy_load_again_with_them(
    conn: psycopg.Connection, patient: UUID
) -> None:
    worker = ReadingState()
    store(conn, worker, spo2(0))
    plan_with_limits(conn, patient, Limits(SPO2, low=92), now=NOW)
    after = store(conn, worker, spo2(10))
    assert after.loaded == 1
    assert after.histories[patient].profile.limits[SPO2].low == 92


def test_a_worker_that_fell_far_behind_loads_again(conn: psycopg.Connection, patient: UUID) -> None:
    one, other = ReadingState(), ReadingState()
    store(conn, one, spo2(0))
    for minute in range(1, 12):  # more batches than the chain of claims remembers
        store(conn, other, spo2(minute))
    again = store(conn, one, spo2(30))
    assert again.loaded == 1
    assert held(again, patient) == in_database(conn, patient)
