"""The reads behind the FHIR facade, in plain SQL, each filtered by the caller's compartment.

Every query takes care.access's `visible_patients_filter` for the caller and applies it in
SQL, so a patient outside the caller's care is never fetched, and so never returned, whether
asked for directly, pulled in by ``_include`` or ``$everything``, or reached through a paging
link. A device's current patient is shown only when that patient is visible too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from care.national_ids import NationalIds
from care.service import PATIENT_COLUMNS
from fhir_facade.resources import (
    BP_COMPONENTS,
    BP_PANEL,
    DeviceRow,
    ObservationKey,
    ObservationRow,
    PatientRow,
    reading_codes,
)

Visible = tuple[str, dict[str, Any]]
"""care.access.visible_patients_filter's condition on ``p.id`` and its parameters."""


def patients(
    conn: psycopg.Connection,
    *,
    visible: Visible,
    now: datetime,
    national_ids: NationalIds | None = None,
    ids: Sequence[UUID] | None = None,
    national_id: str | None = None,
    after: UUID | None = None,
    limit: int = 10_000,
) -> list[PatientRow]:
    """Visible patients by id (keyset: those after `after`), optionally only `ids`, or the one
    with `national_id` (found by its keyed hash). Their national ids are opened with
    `national_ids`; without the keys none is found or shown."""
    if national_id is not None and national_ids is None:
        return []
    condition, parameters = visible
    rows = conn.execute(
        f"""
        SELECT {PATIENT_COLUMNS}, p.national_id_sealed, p.phone FROM patients p
         WHERE ({condition})
           AND (%(ids)s::uuid[] IS NULL OR p.id = ANY (%(ids)s::uuid[]))
           AND (%(hash)s::bytea IS NULL OR p.national_id_hash = %(hash)s)
           AND (%(after)s::uuid IS NULL OR p.id > %(after)s)
         ORDER BY p.id LIMIT %(limit)s
        """,
        {
            **parameters,
            "now": now,
            "ids": None if ids is None else list(ids),
            "hash": None
            if national_id is None or national_ids is None
            else national_ids.digest(national_id),
            "after": after,
            "limit": limit,
        },
    ).fetchall()

    def opened(patient_id: UUID, sealed: bytes | None) -> str | None:
        if sealed is None or national_ids is None:
            return None
        return national_ids.open(bytes(sealed), patient_id=patient_id)

    return [
        PatientRow(
            id=row[0],
            display_name=row[1],
            birth_date=row[2],
            conditions=row[3],
            preferred_language=row[4],
            responsible_unit=row[5],
            national_id=opened(row[0], row[6]),
            phone=row[7],
        )
        for row in rows
    ]


def devices(
    conn: psycopg.Connection,
    *,
    visible: Visible,
    now: datetime,
    device_ids: Sequence[str] | None = None,
    device_hash: str | None = None,
    patient_id: UUID | None = None,
) -> list[tuple[DeviceRow, list[UUID]]]:
    """Devices ever assigned to a visible patient, each with those patients (oldest first);
    `DeviceRow.patient_id` is its patient now, when visible. Narrowed to `device_ids`, to the
    device whose hash is `device_hash`, or to the devices ever assigned to `patient_id`."""
    condition, parameters = visible
    rows = conn.execute(
        f"""
        SELECT d.id, d.kind, d.vendor, d.model,
               (SELECT a.patient_id FROM device_assignments a JOIN patients p ON p.id = a.patient_id
                 WHERE a.device_id = d.id AND a.valid_from <= %(now)s
                   AND (a.valid_to IS NULL OR a.valid_to > %(now)s) AND ({condition})),
               seen.patients
          FROM devices d
          CROSS JOIN LATERAL (
              SELECT array_agg(a.patient_id ORDER BY a.valid_from) AS patients
                FROM device_assignments a JOIN patients p ON p.id = a.patient_id
               WHERE a.device_id = d.id AND ({condition})
          ) seen
         WHERE seen.patients IS NOT NULL
           AND (%(ids)s::text[] IS NULL OR d.id = ANY (%(ids)s::text[]))
           AND (%(hash)s::text IS NULL OR md5(d.id) = %(hash)s)
           AND (%(patient)s::uuid IS NULL OR %(patient)s = ANY (seen.patients))
         ORDER BY d.id
        """,
        {
            **parameters,
            "now": now,
            "ids": None if device_ids is None else list(device_ids),
            "hash": device_hash,
            "patient": patient_id,
        },
    ).fetchall()
    return [
        (DeviceRow(id=r[0], kind=r[1], vendor=r[2], model=r[3], patient_id=r[4]), list(r[5]))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page of Observations ends: the last one's (measured_at, device, code)."""

    measured_at: datetime
    device_id: str
    code: str


@dataclass(frozen=True, slots=True)
class ObservationFilter:
    """What an Observation search asks for, in stored terms; None means no filter."""

    patient_id: UUID | None = None
    codes: frozenset[str] | None = None
    """Observation codes (85354-9 for blood pressure)."""
    measured: list[tuple[str, datetime]] = field(default_factory=list)
    """(operator, moment) pairs on measured_at: ``>=``, ``>``, ``<=``, ``<``."""
    received: list[tuple[str, datetime]] = field(default_factory=list)
    """The same on received_at (``_lastUpdated``)."""
    received_by: datetime | None = None
    """The search's snapshot: only readings received by then, so that new readings arriving
    while a client pages cannot move the pages under it."""


_OPERATORS = frozenset({">=", ">", "<=", "<"})


def observations(
    conn: psycopg.Connection,
    *,
    visible: Visible,
    search: ObservationFilter,
    newest_first: bool,
    after: Position | None,
    limit: int,
) -> list[ObservationRow]:
    """One page of Observations, ordered by (measured_at, device, code) and continuing after
    `after` (keyset paging: a page never skips or repeats a row of the snapshot)."""
    condition, parameters = visible
    values: dict[str, Any] = {**parameters, "limit": limit}
    where = [f"r.patient_id IN (SELECT p.id FROM patients p WHERE {condition})"]
    if search.patient_id is not None:
        where.append("r.patient_id = %(patient)s")
        values["patient"] = search.patient_id
    if search.codes is not None:
        where.append("r.code = ANY (%(codes)s)")
        values["codes"] = sorted({c for code in search.codes for c in reading_codes(code)})
    for column, bounds in (("measured_at", search.measured), ("received_at", search.received)):
        for index, (operator, moment) in enumerate(bounds):
            assert operator in _OPERATORS, operator
            name = f"{column}_{index}"
            where.append(f"r.{column} {operator} %({name})s")
            values[name] = moment
    if search.received_by is not None:
        where.append("r.received_at <= %(received_by)s")
        values["received_by"] = search.received_by
    direction = "DESC" if newest_first else "ASC"
    keyset = ""
    if after is not None:
        beyond = "<" if newest_first else ">"
        keyset = f"WHERE (measured_at, device_id, code) {beyond} (%(m)s, %(d)s, %(c)s)"
        values.update(m=after.measured_at, d=after.device_id, c=after.code)
    # An Observation is one or two rows (a blood-pressure pair), next to each other in this
    # order: 2 * (limit + 1) rows hold the first limit + 1 Observations, and all of the first
    # `limit`, so the database sorts a bounded top of the rows instead of grouping them all.
    values.update(rows=2 * (limit + 1), groups=limit + 1)
    order = f"measured_at {direction}, device_id {direction}, code {direction}"
    rows = conn.execute(
        f"""
        WITH r AS (
            SELECT * FROM (
                SELECT r.patient_id, r.device_id, r.measured_at, r.received_at,
                       r.code AS reading_code, r.value, r.unit,
                       CASE WHEN r.code IN ('{BP_COMPONENTS[0]}', '{BP_COMPONENTS[1]}')
                            THEN '{BP_PANEL}' ELSE r.code END AS code
                  FROM readings r
                 WHERE {" AND ".join(where)}
            ) candidates {keyset}
             ORDER BY {order}
             LIMIT %(rows)s
        )
        SELECT patient_id, device_id, code, measured_at, max(received_at),
               array_agg(reading_code), array_agg(value), array_agg(unit)
          FROM r
         GROUP BY measured_at, device_id, code, patient_id
         ORDER BY {order}
         LIMIT %(groups)s
        """,
        values,
    ).fetchall()
    return [_observation_row(row) for row in rows[:limit]]


def observation(conn: psycopg.Connection, *, key: ObservationKey) -> ObservationRow | None:
    """The Observation an id names, whoever's it is: the caller checks the patient."""
    row = conn.execute(
        """
        SELECT r.patient_id, r.device_id, %(code)s, r.measured_at, max(r.received_at),
               array_agg(r.code), array_agg(r.value), array_agg(r.unit)
          FROM devices d JOIN readings r ON r.device_id = d.id
         WHERE md5(d.id) = %(hash)s AND r.code = ANY (%(codes)s) AND r.measured_at = %(at)s
         GROUP BY r.patient_id, r.device_id, r.measured_at
        """,
        {
            "hash": key.device_hash,
            "code": key.code,
            "codes": list(reading_codes(key.code)),
            "at": key.measured_at,
        },
    ).fetchone()
    return None if row is None else _observation_row(row)


def _observation_row(row: tuple[Any, ...]) -> ObservationRow:
    patient_id, device_id, code, measured_at, received_at, codes, numbers, units = row
    return ObservationRow(
        patient_id=patient_id,
        device_id=device_id,
        code=code,
        measured_at=measured_at,
        received_at=received_at,
        values={c: (v, u) for c, v, u in zip(codes, numbers, units, strict=True)},
    )


def count_observations(conn: psycopg.Connection, *, patient_ids: Sequence[UUID]) -> int:
    """How many Observations the patients' readings make (a blood-pressure pair is one)."""
    row = conn.execute(
        f"""
        SELECT count(*) FROM (
            SELECT DISTINCT device_id, measured_at,
                   CASE WHEN code IN ('{BP_COMPONENTS[0]}', '{BP_COMPONENTS[1]}')
                        THEN '{BP_PANEL}' ELSE code END
              FROM readings WHERE patient_id = ANY (%s)
        ) o
        """,
        (list(patient_ids),),
    ).fetchone()
    assert row is not None
    return int(row[0])
