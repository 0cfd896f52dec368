"""Responsibility for a patient over time, and the hand-over that moves it between units.

A unit proposes; the receiving unit accepts or declines. Until acceptance the sender stays
responsible, so there is never a moment when nobody is. Alert routing asks
`responsible_unit(at=...)` and always gets the unit in charge at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.people import current


class HandoverStateError(Exception):
    """The hand-over cannot take this step from where it is."""


@dataclass(frozen=True, slots=True)
class Handover:
    id: UUID
    patient_id: UUID
    from_organisation_id: UUID
    from_organisation_name: str
    to_organisation_id: UUID
    to_organisation_name: str
    note: str
    care_plan_version: int | None
    proposed_by: UUID
    proposed_by_name: str
    proposed_at: datetime
    state: Literal["proposed", "accepted", "declined", "withdrawn"]
    decided_by: UUID | None
    decided_by_name: str | None
    decided_at: datetime | None
    decision_note: str | None


@dataclass(frozen=True, slots=True)
class ResponsibilityPeriod:
    organisation_id: UUID
    organisation_name: str
    role: Literal["responsible", "backup"]
    valid_from: datetime
    valid_to: datetime | None


_HANDOVER = """
    SELECT h.id, h.patient_id, h.from_organisation_id, f.name AS from_organisation_name,
           h.to_organisation_id, t.name AS to_organisation_name, h.note, h.care_plan_version,
           h.proposed_by, p.display_name AS proposed_by_name, h.proposed_at, h.state,
           h.decided_by, d.display_name AS decided_by_name, h.decided_at, h.decision_note
      FROM handovers h
      JOIN organisations f ON f.id = h.from_organisation_id
      JOIN organisations t ON t.id = h.to_organisation_id
      JOIN staff p ON p.id = h.proposed_by
      LEFT JOIN staff d ON d.id = h.decided_by
"""


def _unit(conn: psycopg.Connection, *, patient_id: UUID, role: str, at: datetime) -> UUID | None:
    row = conn.execute(
        f"SELECT r.organisation_id FROM patient_responsibility r"
        f" WHERE r.patient_id = %(patient)s AND r.role = %(role)s AND {current('r')}"
        f" ORDER BY r.valid_from DESC LIMIT 1",
        {"patient": patient_id, "role": role, "now": at},
    ).fetchone()
    return None if row is None else row[0]


def responsible_unit(conn: psycopg.Connection, *, patient_id: UUID, at: datetime) -> UUID | None:
    return _unit(conn, patient_id=patient_id, role="responsible", at=at)


def backup_unit(conn: psycopg.Connection, *, patient_id: UUID, at: datetime) -> UUID | None:
    return _unit(conn, patient_id=patient_id, role="backup", at=at)


def responsibility_history(
    conn: psycopg.Connection, *, patient_id: UUID
) -> list[ResponsibilityPeriod]:
    with conn.cursor(row_factory=class_row(ResponsibilityPeriod)) as cur:
        return cur.execute(
            """
            SELECT r.organisation_id, o.name AS organisation_name, r.role, r.valid_from,
                   r.valid_to
              FROM patient_responsibility r JOIN organisations o ON o.id = r.organisation_id
             WHERE r.patient_id = %s
             ORDER BY r.valid_from, r.role
            """,
            (patient_id,),
        ).fetchall()


def get_handover(conn: psycopg.Connection, *, handover_id: UUID) -> Handover | None:
    with conn.cursor(row_factory=class_row(Handover)) as cur:
        return cur.execute(f"{_HANDOVER} WHERE h.id = %s", (handover_id,)).fetchone()


def handovers_for_patient(conn: psycopg.Connection, *, patient_id: UUID) -> list[Handover]:
    """The full history, newest first."""
    with conn.cursor(row_factory=class_row(Handover)) as cur:
        return cur.execute(
            f"{_HANDOVER} WHERE h.patient_id = %s ORDER BY h.proposed_at DESC", (patient_id,)
        ).fetchall()


def pending_handovers_to(conn: psycopg.Connection, *, organisation_id: UUID) -> list[Handover]:
    with conn.cursor(row_factory=class_row(Handover)) as cur:
        return cur.execute(
            f"{_HANDOVER} WHERE h.to_organisation_id = %s AND h.state = 'proposed'"
            " ORDER BY h.proposed_at",
            (organisation_id,),
        ).fetchall()


def do_propose_handover(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    to_organisation_id: UUID,
    proposed_by: UUID,
    note: str,
    now: datetime,
    care_plan_version: int | None = None,
) -> Handover:
    """Propose to hand the patient to another unit; the responsible unit now is the sender."""
    with conn.transaction():
        conn.execute("SELECT 1 FROM patients WHERE id = %s FOR UPDATE", (patient_id,))
        sender = responsible_unit(conn, patient_id=patient_id, at=now)
        if sender is None:
            raise HandoverStateError("the patient has no responsible unit to hand over from")
        if sender == to_organisation_id:
            raise HandoverStateError("that unit is responsible already")
        if (
            conn.execute(
                "SELECT 1 FROM organisations WHERE id = %s", (to_organisation_id,)
            ).fetchone()
            is None
        ):
            raise HandoverStateError("no such receiving unit")
        if conn.execute(
            "SELECT 1 FROM handovers WHERE patient_id = %s AND state = 'proposed'", (patient_id,)
        ).fetchone():
            raise HandoverStateError("a hand-over of this patient is waiting for an answer")
        row = conn.execute(
            """
            INSERT INTO handovers (patient_id, from_organisation_id, to_organisation_id, note,
                                   care_plan_version, proposed_by, proposed_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
            """,
            (patient_id, sender, to_organisation_id, note, care_plan_version, proposed_by, now),
        ).fetchone()
    assert row is not None
    created = get_handover(conn, handover_id=row[0])
    assert created is not None
    return created


def _decide(
    conn: psycopg.Connection,
    *,
    handover_id: UUID,
    state: str,
    decided_by: UUID,
    now: datetime,
    note: str | None,
) -> Handover:
    """Lock the proposal, check it is still open, and record the decision."""
    row = conn.execute(
        "SELECT state FROM handovers WHERE id = %s FOR UPDATE", (handover_id,)
    ).fetchone()
    if row is None:
        raise HandoverStateError("no such hand-over")
    if row[0] != "proposed":
        raise HandoverStateError(f"the hand-over is {row[0]} already")
    conn.execute(
        "UPDATE handovers SET state = %s, decided_by = %s, decided_at = %s, decision_note = %s"
        " WHERE id = %s",
        (state, decided_by, now, note, handover_id),
    )
    decided = get_handover(conn, handover_id=handover_id)
    assert decided is not None
    return decided


def do_accept_handover(
    conn: psycopg.Connection,
    *,
    handover_id: UUID,
    decided_by: UUID,
    now: datetime,
    note: str | None = None,
    sender_becomes_backup: bool = False,
) -> Handover:
    """The receiver takes over at `now`: the sender's period ends, the receiver's begins."""
    with conn.transaction():
        accepted = _decide(
            conn,
            handover_id=handover_id,
            state="accepted",
            decided_by=decided_by,
            now=now,
            note=note,
        )
        patient = accepted.patient_id
        if responsible_unit(conn, patient_id=patient, at=now) != accepted.from_organisation_id:
            raise HandoverStateError("the responsible unit changed since the proposal")
        _move(conn, patient_id=patient, role="responsible", to=accepted.to_organisation_id, now=now)
        if sender_becomes_backup:
            _move(
                conn, patient_id=patient, role="backup", to=accepted.from_organisation_id, now=now
            )
    return accepted


def do_decline_handover(
    conn: psycopg.Connection, *, handover_id: UUID, decided_by: UUID, now: datetime, note: str
) -> Handover:
    """The sender stays responsible; the receiver says why."""
    if not note or not note.strip():
        raise HandoverStateError("declining a hand-over needs a note")
    with conn.transaction():
        return _decide(
            conn,
            handover_id=handover_id,
            state="declined",
            decided_by=decided_by,
            now=now,
            note=note,
        )


def do_withdraw_handover(
    conn: psycopg.Connection, *, handover_id: UUID, decided_by: UUID, now: datetime
) -> Handover:
    with conn.transaction():
        return _decide(
            conn,
            handover_id=handover_id,
            state="withdrawn",
            decided_by=decided_by,
            now=now,
            note=None,
        )


def do_set_backup_unit(
    conn: psycopg.Connection, *, patient_id: UUID, organisation_id: UUID | None, now: datetime
) -> None:
    """Name the back-up unit from `now` (None: no back-up from now)."""
    with conn.transaction():
        _move(conn, patient_id=patient_id, role="backup", to=organisation_id, now=now)


def _move(
    conn: psycopg.Connection, *, patient_id: UUID, role: str, to: UUID | None, now: datetime
) -> None:
    """End the current period of `role` at `now` and, unless `to` is None, start one for `to`."""
    conn.execute(
        f"UPDATE patient_responsibility r SET valid_to = %(now)s"
        f" WHERE r.patient_id = %(patient)s AND r.role = %(role)s AND {current('r')}",
        {"patient": patient_id, "role": role, "now": now},
    )
    if to is not None:
        conn.execute(
            "INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from)"
            " VALUES (%s, %s, %s, %s)",
            (patient_id, to, role, now),
        )
