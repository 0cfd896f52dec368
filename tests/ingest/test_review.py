"""A nurse decides about readings measured while a device was the previous patient's."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from alerts.engine import engine_hook
from care import careplan
from care.access import NotVisibleError
from core.clock import ManualClock
from ingest.review import awaiting_review, do_accept, do_reject
from ingest.store import store_batch
from tests.ingest.test_store import NOW, candidate, move_device
from tests.support import seed_patient_with_device

NURSE = uuid.UUID("00000000-0000-4000-8000-00000000a001")


@pytest.fixture
def moved(conn: psycopg.Connection) -> tuple[uuid.UUID, uuid.UUID, int]:
    """Kari held oximeter ox-1 until half an hour ago, Ola holds it now; a reading measured
    an hour ago (a low SpO2) arrives afterwards and waits in quarantine."""
    kari = seed_patient_with_device(conn, device_id="ox-1", name="Kari")
    ola = seed_patient_with_device(conn, device_id="ox-2", name="Ola")
    careplan.do_create_care_plan(conn, patient_id=kari, template="copd", author=None, now=NOW)
    move_device(conn, "ox-1", to=ola, at=NOW - timedelta(minutes=30))
    store_batch(
        conn, channel="mqtt", messages=[[candidate(minutes_ago=60, value=80)]], quarantined=[]
    )
    [entry] = awaiting_review(conn, patient_id=kari)
    return kari, ola, entry.id


def test_the_reading_waits_in_the_record_of_the_patient_who_held_the_device_then(
    conn: psycopg.Connection, moved: tuple[uuid.UUID, uuid.UUID, int]
) -> None:
    kari, ola, entry_id = moved

    [entry] = awaiting_review(conn, patient_id=kari)

    assert (entry.id, entry.device_id, entry.code, entry.value, entry.unit) == (
        entry_id, "ox-1", "59408-5", 80, "%",
    )  # fmt: skip
    assert entry.measured_at == NOW - timedelta(minutes=60)
    assert awaiting_review(conn, patient_id=ola) == []


def test_accepting_stores_it_for_that_patient_and_the_rules_see_it(
    conn: psycopg.Connection, moved: tuple[uuid.UUID, uuid.UUID, int]
) -> None:
    kari, _ola, entry_id = moved
    rules = engine_hook(clock=ManualClock(NOW))

    with conn.transaction():
        stored = do_accept(
            conn, entry_id=entry_id, patient_id=kari, by=NURSE, note="Sen opplasting",
            now=NOW, after_store=[rules],
        )  # fmt: skip

    assert stored
    assert conn.execute(
        "SELECT patient_id, value FROM readings WHERE device_id = 'ox-1'"
    ).fetchall() == [(kari, 80)]
    assert conn.execute(
        "SELECT severity FROM alerts WHERE patient_id = %s AND code = '59408-5'", (kari,)
    ).fetchall() == [("red",)]
    assert conn.execute(
        "SELECT decision, decided_by, decided_at, decision_note FROM quarantine WHERE id = %s",
        (entry_id,),
    ).fetchone() == ("accepted", NURSE, NOW, "Sen opplasting")
    assert awaiting_review(conn, patient_id=kari) == []


def test_rejecting_keeps_it_out_of_the_record_and_says_who_and_why(
    conn: psycopg.Connection, moved: tuple[uuid.UUID, uuid.UUID, int]
) -> None:
    kari, _ola, entry_id = moved

    do_reject(conn, entry_id=entry_id, patient_id=kari, by=NURSE, note="Ny eier", now=NOW)

    assert conn.execute("SELECT count(*) FROM readings WHERE device_id = 'ox-1'").fetchone() == (0,)
    assert conn.execute(
        "SELECT decision, decided_by, decision_note FROM quarantine WHERE id = %s", (entry_id,)
    ).fetchone() == ("rejected", NURSE, "Ny eier")
    assert awaiting_review(conn, patient_id=kari) == []


def test_an_entry_is_decided_once_and_only_through_the_patient_it_belongs_to(
    conn: psycopg.Connection, moved: tuple[uuid.UUID, uuid.UUID, int]
) -> None:
    kari, ola, entry_id = moved

    with pytest.raises(NotVisibleError):
        do_accept(
            conn, entry_id=entry_id, patient_id=ola, by=NURSE, note="Feil pasient", now=NOW,
            after_store=[],
        )  # fmt: skip
    do_reject(conn, entry_id=entry_id, patient_id=kari, by=NURSE, note="Ny eier", now=NOW)
    with pytest.raises(NotVisibleError):
        do_accept(
            conn, entry_id=entry_id, patient_id=kari, by=NURSE, note="Likevel", now=NOW,
            after_store=[],
        )  # fmt: skip
    assert conn.execute("SELECT count(*) FROM readings WHERE device_id = 'ox-1'").fetchone() == (0,)
