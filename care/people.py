"""Staff, their employment, care teams across organisations, and log-in identities.

Access to a patient follows *current* care-team membership (Normen: tjenstlig behov), so every
membership has a validity period; ending one closes the period instead of deleting history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from core.auth import Principal, StaffRole


class MembershipError(ValueError):
    """A membership that cannot be: a duplicate, or one for someone or something unknown."""


@dataclass(frozen=True, slots=True)
class Staff:
    id: UUID
    display_name: str
    role: StaffRole
    hpr_number: str | None
    email: str | None


@dataclass(frozen=True, slots=True)
class Membership:
    """Employment in an organisation, or membership of a care team (then `of_id` is the team)."""

    id: UUID
    staff_id: UUID
    of_id: UUID
    of_name: str
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True, slots=True)
class CareTeam:
    id: UUID
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class TeamPatient:
    id: UUID
    team_id: UUID
    patient_id: UUID
    valid_from: datetime
    valid_to: datetime | None


def current(alias: str) -> str:
    """The validity test every period table shares: the row of `alias` holds ``%(now)s``."""
    return (
        f"{alias}.valid_from <= %(now)s"
        f" AND ({alias}.valid_to IS NULL OR {alias}.valid_to > %(now)s)"
    )


def consent_valid(alias: str) -> str:
    """A relative's consent (`proxy_consents` row `alias`) that grants at ``%(now)s``:
    accepted, begun, not ended and not withdrawn."""
    return (
        f"{alias}.accepted_at IS NOT NULL AND {alias}.withdrawn_at IS NULL"
        f" AND {alias}.valid_from <= %(now)s AND {alias}.valid_to > %(now)s"
    )


def do_create_staff(
    conn: psycopg.Connection,
    *,
    display_name: str,
    role: StaffRole,
    hpr_number: str | None = None,
    email: str | None = None,
) -> Staff:
    with conn.cursor(row_factory=class_row(Staff)) as cur:
        row = cur.execute(
            """
            INSERT INTO staff (display_name, role, hpr_number, email) VALUES (%s, %s, %s, %s)
            RETURNING id, display_name, role, hpr_number, email
            """,
            (display_name, role, hpr_number, email),
        ).fetchone()
    assert row is not None
    return row


def get_staff(conn: psycopg.Connection, *, staff_id: UUID) -> Staff | None:
    with conn.cursor(row_factory=class_row(Staff)) as cur:
        return cur.execute(
            "SELECT id, display_name, role, hpr_number, email FROM staff WHERE id = %s",
            (staff_id,),
        ).fetchone()


def list_staff(conn: psycopg.Connection, *, limit: int, offset: int) -> list[Staff]:
    with conn.cursor(row_factory=class_row(Staff)) as cur:
        return cur.execute(
            "SELECT id, display_name, role, hpr_number, email FROM staff"
            " ORDER BY display_name, id LIMIT %s OFFSET %s",
            (limit, offset),
        ).fetchall()


def do_add_employment(
    conn: psycopg.Connection, *, staff_id: UUID, organisation_id: UUID, since: datetime
) -> Membership:
    return _add(
        conn,
        table="staff_memberships",
        of_column="organisation_id",
        of_table="organisations",
        staff_id=staff_id,
        of_id=organisation_id,
        since=since,
    )


def do_add_team_member(
    conn: psycopg.Connection,
    *,
    team_id: UUID,
    staff_id: UUID,
    since: datetime,
    organisation_id: UUID | None = None,
) -> Membership:
    """Add a member on behalf of `organisation_id`, where they must work at `since` (by
    default their only employer then): the membership grants access only while that
    employment lasts."""
    employers_then = employers(conn, staff_id=staff_id, now=since)
    if organisation_id is None:
        if not employers_then:
            raise MembershipError("the staff member has no current employment")
        if len(employers_then) > 1:
            raise MembershipError("the staff member works for several organisations: name one")
        organisation_id = employers_then[0]
    elif organisation_id not in employers_then:
        raise MembershipError("the staff member does not work for this organisation now")
    return _add(
        conn,
        table="care_team_members",
        of_column="team_id",
        of_table="care_teams",
        staff_id=staff_id,
        of_id=team_id,
        since=since,
        organisation_id=organisation_id,
    )


def _add(
    conn: psycopg.Connection,
    *,
    table: str,
    of_column: str,
    of_table: str,
    staff_id: UUID,
    of_id: UUID,
    since: datetime,
    organisation_id: UUID | None = None,
) -> Membership:
    """`organisation_id`: for a care-team membership, the employer it is held for."""
    with conn.transaction():
        # One current membership per person and organisation or team; the lock on the person
        # makes two concurrent additions see each other.
        if (
            conn.execute("SELECT 1 FROM staff WHERE id = %s FOR UPDATE", (staff_id,)).fetchone()
            is None
        ):
            raise MembershipError("no such staff member")
        if conn.execute(f"SELECT 1 FROM {of_table} WHERE id = %s", (of_id,)).fetchone() is None:
            raise MembershipError(f"no such {of_table.removesuffix('s').replace('_', ' ')}")
        current = conn.execute(
            f"SELECT 1 FROM {table} WHERE staff_id = %(staff)s AND {of_column} = %(of)s"
            f" AND (valid_to IS NULL OR valid_to > %(now)s)",
            {"staff": staff_id, "of": of_id, "now": since},
        ).fetchone()
        if current is not None:
            raise MembershipError("already a member")
        values: dict[str, object] = {"staff_id": staff_id, of_column: of_id, "valid_from": since}
        if organisation_id is not None:
            values["organisation_id"] = organisation_id
        row = conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(map(sql.Placeholder, values)),
            ),
            values,
        ).fetchone()
    assert row is not None
    membership = _membership(conn, table=table, of_column=of_column, of_table=of_table, id=row[0])
    assert membership is not None
    return membership


def _membership(
    conn: psycopg.Connection, *, table: str, of_column: str, of_table: str, id: UUID
) -> Membership | None:
    with conn.cursor(row_factory=class_row(Membership)) as cur:
        return cur.execute(
            f"""
            SELECT m.id, m.staff_id, m.{of_column} AS of_id, o.name AS of_name,
                   m.valid_from, m.valid_to
              FROM {table} m JOIN {of_table} o ON o.id = m.{of_column}
             WHERE m.id = %s
            """,
            (id,),
        ).fetchone()


def get_team_membership(conn: psycopg.Connection, *, membership_id: UUID) -> Membership | None:
    return _membership(
        conn,
        table="care_team_members",
        of_column="team_id",
        of_table="care_teams",
        id=membership_id,
    )


def get_employment(conn: psycopg.Connection, *, membership_id: UUID) -> Membership | None:
    return _membership(
        conn,
        table="staff_memberships",
        of_column="organisation_id",
        of_table="organisations",
        id=membership_id,
    )


def do_end_team_membership(
    conn: psycopg.Connection, *, membership_id: UUID, now: datetime
) -> Membership | None:
    """End a care-team membership now; access through it ends with it. None if it had ended."""
    if not _end(conn, table="care_team_members", membership_id=membership_id, now=now):
        return None
    return get_team_membership(conn, membership_id=membership_id)


def do_end_employment(
    conn: psycopg.Connection, *, membership_id: UUID, now: datetime
) -> Membership | None:
    if not _end(conn, table="staff_memberships", membership_id=membership_id, now=now):
        return None
    return get_employment(conn, membership_id=membership_id)


def _end(conn: psycopg.Connection, *, table: str, membership_id: UUID, now: datetime) -> bool:
    cursor = conn.execute(
        f"UPDATE {table} SET valid_to = %(now)s"
        " WHERE id = %(id)s AND valid_from < %(now)s AND (valid_to IS NULL OR valid_to > %(now)s)",
        {"id": membership_id, "now": now},
    )
    return cursor.rowcount == 1


def memberships_of(conn: psycopg.Connection, *, staff_id: UUID) -> list[Membership]:
    """Employment and team memberships of one person, current and past."""
    with conn.cursor(row_factory=class_row(Membership)) as cur:
        return cur.execute(
            """
            SELECT m.id, m.staff_id, m.organisation_id AS of_id, o.name AS of_name,
                   m.valid_from, m.valid_to
              FROM staff_memberships m JOIN organisations o ON o.id = m.organisation_id
             WHERE m.staff_id = %(staff)s
            UNION ALL
            SELECT m.id, m.staff_id, m.team_id, t.name, m.valid_from, m.valid_to
              FROM care_team_members m JOIN care_teams t ON t.id = m.team_id
             WHERE m.staff_id = %(staff)s
            ORDER BY valid_from
            """,
            {"staff": staff_id},
        ).fetchall()


def employers(conn: psycopg.Connection, *, staff_id: UUID, now: datetime) -> list[UUID]:
    """The organisations a person works for now."""
    rows = conn.execute(
        f"SELECT m.organisation_id FROM staff_memberships m"
        f" WHERE m.staff_id = %(staff)s AND {current('m')} ORDER BY m.valid_from",
        {"staff": staff_id, "now": now},
    ).fetchall()
    return [row[0] for row in rows]


def do_create_care_team(conn: psycopg.Connection, *, name: str, description: str = "") -> CareTeam:
    with conn.cursor(row_factory=class_row(CareTeam)) as cur:
        row = cur.execute(
            "INSERT INTO care_teams (name, description) VALUES (%s, %s)"
            " RETURNING id, name, description",
            (name, description),
        ).fetchone()
    assert row is not None
    return row


def get_care_team(conn: psycopg.Connection, *, team_id: UUID) -> CareTeam | None:
    with conn.cursor(row_factory=class_row(CareTeam)) as cur:
        return cur.execute(
            "SELECT id, name, description FROM care_teams WHERE id = %s", (team_id,)
        ).fetchone()


def list_care_teams(conn: psycopg.Connection, *, limit: int, offset: int) -> list[CareTeam]:
    with conn.cursor(row_factory=class_row(CareTeam)) as cur:
        return cur.execute(
            "SELECT id, name, description FROM care_teams ORDER BY name, id LIMIT %s OFFSET %s",
            (limit, offset),
        ).fetchall()


def team_members(conn: psycopg.Connection, *, team_id: UUID, now: datetime) -> list[Membership]:
    """Current members of a care team."""
    with conn.cursor(row_factory=class_row(Membership)) as cur:
        return cur.execute(
            f"""
            SELECT m.id, m.staff_id, m.team_id AS of_id, t.name AS of_name,
                   m.valid_from, m.valid_to
              FROM care_team_members m JOIN care_teams t ON t.id = m.team_id
             WHERE m.team_id = %(team)s AND {current("m")}
             ORDER BY m.valid_from
            """,
            {"team": team_id, "now": now},
        ).fetchall()


def do_add_team_patient(
    conn: psycopg.Connection, *, team_id: UUID, patient_id: UUID, since: datetime
) -> TeamPatient:
    with conn.transaction():
        if (
            conn.execute(
                "SELECT 1 FROM patients WHERE id = %s FOR UPDATE", (patient_id,)
            ).fetchone()
            is None
        ):
            raise MembershipError("no such patient")
        if get_care_team(conn, team_id=team_id) is None:
            raise MembershipError("no such care team")
        current = conn.execute(
            "SELECT 1 FROM care_team_patients WHERE team_id = %(team)s AND patient_id = %(p)s"
            " AND (valid_to IS NULL OR valid_to > %(now)s)",
            {"team": team_id, "p": patient_id, "now": since},
        ).fetchone()
        if current is not None:
            raise MembershipError("the patient is already followed by this team")
        with conn.cursor(row_factory=class_row(TeamPatient)) as cur:
            row = cur.execute(
                "INSERT INTO care_team_patients (team_id, patient_id, valid_from)"
                " VALUES (%s, %s, %s) RETURNING id, team_id, patient_id, valid_from, valid_to",
                (team_id, patient_id, since),
            ).fetchone()
    assert row is not None
    return row


def do_remove_team_patient(
    conn: psycopg.Connection, *, team_id: UUID, patient_id: UUID, now: datetime
) -> bool:
    cursor = conn.execute(
        f"UPDATE care_team_patients SET valid_to = %(now)s"
        f" WHERE team_id = %(team)s AND patient_id = %(p)s AND {current('care_team_patients')}",
        {"team": team_id, "p": patient_id, "now": now},
    )
    return cursor.rowcount > 0


def teams_of_patient(
    conn: psycopg.Connection, *, patient_id: UUID, now: datetime
) -> list[CareTeam]:
    with conn.cursor(row_factory=class_row(CareTeam)) as cur:
        return cur.execute(
            f"""
            SELECT t.id, t.name, t.description
              FROM care_team_patients tp JOIN care_teams t ON t.id = tp.team_id
             WHERE tp.patient_id = %(p)s AND {current("tp")}
             ORDER BY t.name
            """,
            {"p": patient_id, "now": now},
        ).fetchall()


def do_link_identity(
    conn: psycopg.Connection,
    *,
    issuer: str,
    subject: str,
    staff_id: UUID | None = None,
    patient_id: UUID | None = None,
    relative_id: UUID | None = None,
) -> None:
    """Let tokens from `issuer` with this `sub` speak for a staff member, a patient or a
    relative."""
    if [staff_id, patient_id, relative_id].count(None) != 2:
        raise ValueError("an identity belongs to exactly one staff member, patient or relative")
    conn.execute(
        "INSERT INTO identities (issuer, subject, staff_id, patient_id, relative_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (issuer, subject, staff_id, patient_id, relative_id),
    )


def principal_for(
    conn: psycopg.Connection,
    *,
    issuer: str,
    subject: str,
    kind: str,
    hpr_number: str | None,
    now: datetime,
) -> Principal | None:
    """The person a verified token speaks for, or None if the identity is not enrolled.

    `kind` is what the issuer may speak for ("staff", "patient" or "any"): an ID-porten token
    never becomes a staff member even if someone linked it to one. A staff member speaks only
    while employed somewhere (at `now`): ending the last employment ends every log-in and
    session, whatever tokens are still around. A relative speaks only while they hold a
    consent valid now (any patient's); an issuer for patients (ID-porten) may speak for them.
    """
    row = conn.execute(
        f"""
        SELECT s.id, s.display_name, s.role, s.hpr_number, employer.id, employer.name,
               p.id, p.display_name, r.id, r.display_name,
               EXISTS (SELECT 1 FROM proxy_consents c
                        WHERE c.relative_id = r.id AND {consent_valid("c")})
          FROM identities i
          LEFT JOIN staff s ON s.id = i.staff_id
          LEFT JOIN patients p ON p.id = i.patient_id
          LEFT JOIN relatives r ON r.id = i.relative_id
          LEFT JOIN LATERAL (
                SELECT o.id, o.name
                  FROM staff_memberships m JOIN organisations o ON o.id = m.organisation_id
                 WHERE m.staff_id = s.id AND {current("m")}
                 ORDER BY m.valid_from, o.id LIMIT 1
          ) employer ON true
         WHERE i.issuer = %(issuer)s AND i.subject = %(subject)s
        """,
        {"issuer": issuer, "subject": subject, "now": now},
    ).fetchone()
    if row is None:
        return None
    (staff_id, staff_name, role, staff_hpr, org_id, org_name, patient_id, patient_name) = row[:8]
    relative_id, relative_name, consented = row[8:]
    if staff_id is not None and kind in ("staff", "any"):
        if org_id is None:
            return None
        return Principal(
            kind="staff",
            id=str(staff_id),
            name=staff_name,
            role=role,
            hpr_number=hpr_number or staff_hpr,
            organisation_id=org_id,
            organisation_name=org_name,
        )
    if patient_id is not None and kind in ("patient", "any"):
        return Principal(kind="patient", id=str(patient_id), name=patient_name, role="patient")
    if relative_id is not None and consented and kind in ("patient", "any"):
        return Principal(kind="relative", id=str(relative_id), name=relative_name, role="relative")
    return None
