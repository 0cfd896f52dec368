"""The device registry: a device measures for one patient at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devices.service import AssignmentConflictError, devices_for_patient, do_assign_device
from tests.support import LONG_AGO, seed_patient_with_device

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_an_overlapping_assignment_is_refused(conn: psycopg.Connection) -> None:
    first = seed_patient_with_device(conn, device_id="ox-1")
    with pytest.raises(AssignmentConflictError):
        do_assign_device(conn, device_id="ox-1", patient_id=first, valid_from=NOW)


def test_a_device_can_move_to_another_patient_after_its_assignment_ends(
    conn: psycopg.Connection,
) -> None:
    first = seed_patient_with_device(conn, device_id="ox-1", name="First")
    second = seed_patient_with_device(conn, device_id="ox-2", name="Second")
    conn.execute("UPDATE device_assignments SET valid_to = %s WHERE device_id = 'ox-1'", (NOW,))
    do_assign_device(conn, device_id="ox-1", patient_id=second, valid_from=NOW)

    assert [
        d.id for d in devices_for_patient(conn, patient_id=first, at=NOW - timedelta(days=1))
    ] == ["ox-1"]
    assert [d.id for d in devices_for_patient(conn, patient_id=second, at=NOW)] == ["ox-1", "ox-2"]


def test_assigning_an_unknown_device_is_refused(conn: psycopg.Connection) -> None:
    patient = seed_patient_with_device(conn)
    with pytest.raises(LookupError):
        do_assign_device(conn, device_id="nope", patient_id=patient, valid_from=LONG_AGO)
