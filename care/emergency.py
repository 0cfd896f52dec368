"""Emergency access ("break the glass"): a clinician outside a patient's care teams reads the
record now, for a few hours, with a reason the patient sees and a coordinator reviews. The
check that honours an open emergency access is the one in care/access.py; this module opens
them and lists them for review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.access import (
    EMERGENCY_ACCESS_OPEN_NOW,
    Action,
    ForbiddenError,
    Interface,
    NotVisibleError,
    Reason,
    do_log_access,
)
from care.people import current
from core.auth import Principal

EMERGENCY_ACCESS_PERIOD: Final = timedelta(hours=4)
"""How long an emergency access lasts; a longer need opens a new one, with a new reason."""


class EmergencyAccessOpenError(ValueError):
    """The caller's emergency access to this patient is still open: answered 409."""


@dataclass(frozen=True, slots=True)
class EmergencyAccess:
    id: UUID
    patient_id: UUID
    staff_id: UUID
    staff_name: str
    organisation_id: UUID
    organisation_name: str
    reason: str
    valid_from: datetime
    valid_to: datetime


_EMERGENCY_COLUMNS: Final = """
    ea.id, ea.patient_id, ea.staff_id, s.display_name AS staff_name, ea.organisation_id,
    o.name AS organisation_name, ea.reason, ea.valid_from, ea.valid_to
"""


def do_open_emergency_access(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    patient_id: UUID,
    reason: str,
    interface: Interface,
    now: datetime,
) -> EmergencyAccess:
    """Break the glass: let a staff member outside the patient's care teams read the record for
    `EMERGENCY_ACCESS_PERIOD`, for the organisation they act for now. The opening is logged in
    the same transaction (reason code `emergency`), as is every read through it; the patient
    sees the reason with those rows. Check the caller's role first (`authorize`)."""
    if principal.kind != "staff" or principal.organisation_id is None:
        raise ForbiddenError
    with conn.transaction():
        # The lock on the person makes two concurrent openings see each other.
        conn.execute("SELECT 1 FROM staff WHERE id = %s FOR UPDATE", (principal.uuid,))
        if conn.execute("SELECT 1 FROM patients WHERE id = %s", (patient_id,)).fetchone() is None:
            raise NotVisibleError
        parameters = {"staff": principal.uuid, "patient": patient_id, "now": now}
        if conn.execute(
            f"SELECT 1 FROM {EMERGENCY_ACCESS_OPEN_NOW} AND ea.patient_id = %(patient)s", parameters
        ).fetchone():
            raise EmergencyAccessOpenError("your emergency access to this patient is still open")
        row = conn.execute(
            """
            INSERT INTO emergency_access
                (patient_id, staff_id, organisation_id, reason, valid_from, valid_to)
            VALUES (%s, %s, %s, %s, %s, %s) RETURNING id
            """,
            (
                patient_id,
                principal.uuid,
                principal.organisation_id,
                reason,
                now,
                now + EMERGENCY_ACCESS_PERIOD,
            ),
        ).fetchone()
        assert row is not None
        do_log_access(
            conn,
            principal=principal,
            patient_ids=[patient_id],
            resource="emergency-access",
            action=Action.CREATE,
            interface=interface,
            reason=Reason.EMERGENCY,
            now=now,
        )
        with conn.cursor(row_factory=class_row(EmergencyAccess)) as cur:
            opened = cur.execute(
                f"SELECT {_EMERGENCY_COLUMNS} FROM emergency_access ea"
                " JOIN staff s ON s.id = ea.staff_id"
                " JOIN organisations o ON o.id = ea.organisation_id WHERE ea.id = %s",
                (row[0],),
            ).fetchone()
    assert opened is not None
    return opened


def emergency_accesses_to_review(
    conn: psycopg.Connection, *, reviewer: UUID, now: datetime, limit: int, offset: int
) -> list[EmergencyAccess]:
    """Emergency accesses for a coordinator to follow up, newest first: those opened for an
    organisation the reviewer works for now, and those to patients such an organisation is
    responsible for now."""
    with conn.cursor(row_factory=class_row(EmergencyAccess)) as cur:
        return cur.execute(
            f"""
            SELECT {_EMERGENCY_COLUMNS}
              FROM emergency_access ea
              JOIN staff s ON s.id = ea.staff_id
              JOIN organisations o ON o.id = ea.organisation_id
             WHERE EXISTS (
                   SELECT 1 FROM staff_memberships e
                    WHERE e.staff_id = %(reviewer)s AND {current("e")}
                      AND (e.organisation_id = ea.organisation_id
                           OR e.organisation_id IN (
                               SELECT r.organisation_id FROM patient_responsibility r
                                WHERE r.patient_id = ea.patient_id AND r.role = 'responsible'
                                  AND {current("r")})))
             ORDER BY ea.valid_from DESC, ea.id
             LIMIT %(limit)s OFFSET %(offset)s
            """,
            {"reviewer": reviewer, "now": now, "limit": limit, "offset": offset},
        ).fetchall()
