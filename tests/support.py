"""Small helpers shared by tests: seeding through the real services, bounded waiting, and an
injected fault."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from care.careplan import do_create_care_plan
from care.models import Condition, OrganisationKind
from care.people import (
    do_add_employment,
    do_add_team_member,
    do_add_team_patient,
    do_create_care_team,
    do_create_staff,
    get_staff,
)
from care.service import do_create_organisation, do_create_patient
from core.auth import Principal, StaffRole
from core.limits import Limits
from devices.service import do_assign_device, do_register_device

T = TypeVar("T")

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
ISSUER_KEY = AESGCM.generate_key(bit_length=256)
"""The key that seals the test issuers' signing keys: one per test run, as one installation
keeps one key file, so every issuer built on a cloned database opens the template's key."""


def scalar(
    conn: psycopg.Connection, query: str, params: Sequence[object] | Mapping[str, object] = ()
) -> Any:
    """The first column of the query's first row; a query that finds no row fails the test."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row: {query}"
    return row[0]


def eventually(probe: Callable[[], T | None], *, timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll until `probe` returns something truthy; fail with its last value after `timeout`.
    What it returns is never None, and the signature says so."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s (last value: {value!r})"
            return value
        time.sleep(every)


def seed_patient_with_device(
    conn: psycopg.Connection, *, device_id: str = "ox-1", name: str = "Test Pasient"
) -> UUID:
    """A patient followed by a municipality, with one device assigned since long ago."""
    unit = do_create_organisation(conn, name="Testkommune", kind=OrganisationKind.MUNICIPAL_SERVICE)
    patient = do_create_patient(
        conn,
        display_name=name,
        conditions=[Condition.COPD],
        responsible_unit=unit,
        since=LONG_AGO,
    )
    do_register_device(conn, device_id=device_id, kind="pulse_oximeter")
    do_assign_device(conn, device_id=device_id, patient_id=patient, valid_from=LONG_AGO)
    return patient


def plan_with_limits(
    conn: psycopg.Connection, patient_id: UUID, *limits: Limits, now: datetime
) -> None:
    """A care plan holding exactly `limits` and no schedule: the limits a test sets, without
    the template's other limits or missing-measurement alerts."""
    do_create_care_plan(
        conn,
        patient_id=patient_id,
        template="copd",
        author=None,
        now=now,
        limits=limits,
        measurements=(),
    )


def care_team_member(
    conn: psycopg.Connection, *, patient_id: UUID, since: datetime, staff_id: UUID | None = None
) -> Principal:
    """A caller in a care team that follows the patient since `since`: someone who may act on
    the patient's alerts. `staff_id` must work somewhere already; without it, a nurse is
    employed by a unit of her own."""
    if staff_id is None:
        unit = do_create_organisation(
            conn, name="Oppfølgingsteamet", kind=OrganisationKind.MUNICIPAL_SERVICE
        )
        staff_id = do_create_staff(conn, display_name="Sykepleier", role=StaffRole.NURSE).id
        do_add_employment(conn, staff_id=staff_id, organisation_id=unit, since=since)
    team = do_create_care_team(conn, name="Oppfølging")
    do_add_team_member(conn, team_id=team.id, staff_id=staff_id, since=since)
    do_add_team_patient(conn, team_id=team.id, patient_id=patient_id, since=since)
    staff = get_staff(conn, staff_id=staff_id)
    assert staff is not None
    return Principal(kind="staff", id=str(staff.id), name=staff.display_name, role=staff.role)


def hours_ago(hours: float, *, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(hours=hours)


class Fault:
    """Raises a ValueError where it is called, while it is on."""

    def __init__(self) -> None:
        self.on = True
        self.raised = 0

    def __call__(self, *_: object, **__: object) -> Any:
        self.raised += 1
        raise ValueError("injected fault")

    def guard(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """`real`, except that it raises while the fault is on."""

        def guarded(*args: object, **kwargs: object) -> Any:
            if self.on:
                return self(*args, **kwargs)
            return real(*args, **kwargs)

        return guarded


def insert_episode(
    conn: psycopg.Connection,
    *,
    patient: UUID,
    severity: str,
    at: datetime,
    unit: UUID | None = None,
) -> int:
    """An episode for an alert a test writes by hand (every alert is part of one)."""
    row = conn.execute(
        "INSERT INTO alert_episodes (patient_id, problem, severity, first_measured_at,"
        " last_measured_at, created_at, updated_at, routed_to)"
        " VALUES (%s, 'clinical', %s, %s, %s, %s, %s, %s) RETURNING id",
        (patient, severity, at, at, at, at, unit),
    ).fetchone()
    assert row is not None
    return row[0]
