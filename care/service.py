"""State changes (``do_*``) and queries for organisations and patients. A patient's limits
belong to their care plan (care/careplan.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import available_timezones

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from care.models import Condition, Organisation, OrganisationKind, Patient

PATIENT_COLUMNS = """
    p.id, p.display_name, p.birth_date, p.conditions, p.preferred_language,
    (SELECT o.name FROM patient_responsibility r JOIN organisations o ON o.id = r.organisation_id
      WHERE r.patient_id = p.id AND r.role = 'responsible'
        AND r.valid_from <= %(now)s AND (r.valid_to IS NULL OR r.valid_to > %(now)s)
      ORDER BY r.valid_from DESC LIMIT 1) AS responsible_unit
"""
"""A `Patient`'s columns, of a `patients` row aliased ``p`` (``%(now)s``: the moment whose
responsible unit is named); the FHIR facade's patient query adds its own after them."""


def do_create_organisation(
    conn: psycopg.Connection,
    *,
    name: str,
    kind: OrganisationKind,
    org_number: str | None = None,
    timezone: str = "Europe/Oslo",
    opening_hours: list[dict[str, Any]] | None = None,
) -> UUID:
    if timezone not in available_timezones():
        raise ValueError(f"unknown time zone {timezone!r}")
    row = conn.execute(
        "INSERT INTO organisations (name, kind, org_number, timezone, opening_hours)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (name, kind, org_number, timezone, Jsonb(opening_hours or [])),
    ).fetchone()
    assert row is not None
    return row[0]


_ORGANISATION_COLUMNS = "id, name, kind, org_number, timezone, opening_hours"


def list_organisations(
    conn: psycopg.Connection, *, limit: int = 1000, offset: int = 0
) -> list[Organisation]:
    with conn.cursor(row_factory=class_row(Organisation)) as cur:
        return cur.execute(
            f"SELECT {_ORGANISATION_COLUMNS} FROM organisations ORDER BY name, id"
            " LIMIT %s OFFSET %s",
            (limit, offset),
        ).fetchall()


def get_organisation(conn: psycopg.Connection, *, organisation_id: UUID) -> Organisation | None:
    with conn.cursor(row_factory=class_row(Organisation)) as cur:
        return cur.execute(
            f"SELECT {_ORGANISATION_COLUMNS} FROM organisations WHERE id = %s", (organisation_id,)
        ).fetchone()


def do_create_patient(
    conn: psycopg.Connection,
    *,
    display_name: str,
    conditions: list[Condition],
    responsible_unit: UUID,
    since: datetime,
    birth_date: date | None = None,
    preferred_language: str = "nb",
    phone: str | None = None,
    email: str | None = None,
) -> UUID:
    """Create a patient with a responsible unit from `since` on: nobody is ever unowned."""
    row = conn.execute(
        """
        INSERT INTO patients
            (display_name, birth_date, conditions, preferred_language, phone, email)
        VALUES (%s, %s, %s, %s, %s, %s) RETURNING id
        """,
        (display_name, birth_date, [str(c) for c in conditions], preferred_language, phone, email),
    ).fetchone()
    assert row is not None
    conn.execute(
        """
        INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from)
        VALUES (%s, %s, 'responsible', %s)
        """,
        (row[0], responsible_unit, since),
    )
    return row[0]


def list_patients(
    conn: psycopg.Connection,
    *,
    now: datetime,
    visible: tuple[str, dict[str, Any]] = ("true", {}),
    limit: int = 10_000,
    offset: int = 0,
) -> list[Patient]:
    """Patients by name; `visible` is care.access's filter for the caller."""
    condition, parameters = visible
    with conn.cursor(row_factory=class_row(Patient)) as cur:
        return cur.execute(
            f"SELECT {PATIENT_COLUMNS} FROM patients p WHERE {condition}"
            " ORDER BY p.display_name, p.id LIMIT %(limit)s OFFSET %(offset)s",
            {"now": now, "limit": limit, "offset": offset, **parameters},
        ).fetchall()


def do_update_patient(
    conn: psycopg.Connection, *, patient_id: UUID, changes: dict[str, Any]
) -> bool:
    """Change the named columns (display_name, preferred_language, phone, email)."""
    allowed = {"display_name", "preferred_language", "phone", "email"}
    if not changes:
        return True
    if not changes.keys() <= allowed:
        raise ValueError(f"cannot change {sorted(changes.keys() - allowed)}")
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in changes
    )
    cursor = conn.execute(
        sql.SQL("UPDATE patients SET {} WHERE id = %(patient_id)s").format(assignments),
        {**changes, "patient_id": patient_id},
    )
    return cursor.rowcount == 1


def get_patient(conn: psycopg.Connection, *, patient_id: UUID, now: datetime) -> Patient | None:
    with conn.cursor(row_factory=class_row(Patient)) as cur:
        return cur.execute(
            f"SELECT {PATIENT_COLUMNS} FROM patients p WHERE p.id = %(id)s",
            {"now": now, "id": patient_id},
        ).fetchone()
