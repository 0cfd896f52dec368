"""Responsibility for a patient over time, and the hand-over that moves it between units.

A unit proposes; the receiving unit accepts or declines. Until acceptance the sender stays
responsible, so there is never a moment when nobody is. Alert routing asks
`responsible_unit(at=...)` and always gets the unit in charge at that moment.

Responsibility is kept as periods in `patient_responsibility`; a change closes the open period
at the moment of change and opens the next one from that same moment, so the periods of a role
never overlap and never leave a gap. Periods are never deleted: the history is the audit trail.

Every state change serialises on the patient row (``FOR NO KEY UPDATE``: it blocks other
changes to this patient's responsibility but not the inserts of rows that merely reference the
patient, such as readings). Decisions lock the hand-over row as well, after the patient row,
so that of two decisions on one proposal exactly one finds it still open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.people import current

Role = Literal["responsible", "backup"]
State = Literal["proposed", "accepted", "declined", "withdrawn"]


class HandoverStateError(Exception):
    """The hand-over (or the change of responsibility) cannot take this step from where it is.

    The API answers 409 with the message, so messages are written for the clinician.
    """


@dataclass(frozen=True, slots=True)
class Handover:
    """One proposal and its answer; the names are joined in so a history reads without look-ups."""

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
    state: State
    decided_by: UUID | None
    decided_by_name: str | None
    decided_at: datetime | None
    decision_note: str | None


@dataclass(frozen=True, slots=True)
class ResponsibilityPeriod:
    """A unit's role for the patient from `valid_from` up to, not including, `valid_to`."""

    organisation_id: UUID
    organisation_name: str
    role: Role
    valid_from: datetime
    valid_to: datetime | None


# --- Who is in charge --------------------------------------------------------------------------


def _unit(conn: psycopg.Connection, *, patient_id: UUID, role: Role, at: datetime) -> UUID | None:
    """One probe of the primary key (patient_id, role, valid_from): the alert router's hot path."""
    row = conn.execute(
        f"""
        SELECT r.organisation_id FROM patient_responsibility r
         WHERE r.patient_id = %(patient)s AND r.role = %(role)s AND {current("r")}
         ORDER BY r.valid_from DESC LIMIT 1
        """,
        {"patient": patient_id, "role": role, "now": at},
    ).fetchone()
    return None if row is None else row[0]


def responsible_units(
    conn: psycopg.Connection, *, patient_ids: list[UUID], at: datetime
) -> dict[UUID, UUID]:
    """The unit in charge of each patient at `at` (patients with none are left out): one
    statement for a whole batch of alerts."""
    rows = conn.execute(
        f"""
        SELECT DISTINCT ON (r.patient_id) r.patient_id, r.organisation_id
          FROM patient_responsibility r
         WHERE r.patient_id = ANY(%(patients)b) AND r.role = 'responsible' AND {current("r")}
         ORDER BY r.patient_id, r.valid_from DESC
        """,
        {"patients": patient_ids, "now": at},
    )
    return dict(rows.fetchall())


def responsible_unit(conn: psycopg.Connection, *, patient_id: UUID, at: datetime) -> UUID | None:
    """The unit in charge at `at`; alerts raised at that moment go to it."""
    return _unit(conn, patient_id=patient_id, role="responsible", at=at)


def backup_unit(conn: psycopg.Connection, *, patient_id: UUID, at: datetime) -> UUID | None:
    """The unit that takes alerts at `at` when the responsible unit is closed or does not answer."""
    return _unit(conn, patient_id=patient_id, role="backup", at=at)


def responsibility_history(
    conn: psycopg.Connection, *, patient_id: UUID
) -> list[ResponsibilityPeriod]:
    """Every period of either role, oldest first: who was in charge when an alert was raised."""
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


# --- Reading hand-overs ------------------------------------------------------------------------

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


def get_handover(conn: psycopg.Connection, *, handover_id: UUID) -> Handover | None:
    with conn.cursor(row_factory=class_row(Handover)) as cur:
        return cur.execute(f"{_HANDOVER} WHERE h.id = %s", (handover_id,)).fetchone()


def handovers_for_patient(conn: psycopg.Connection, *, patient_id: UUID) -> list[Handover]:
    """The full history, newest first, including declined and withdrawn proposals."""
    with conn.cursor(row_factory=class_row(Handover)) as cur:
        return cur.execute(
            f"{_HANDOVER} WHERE h.patient_id = %s ORDER BY h.proposed_at DESC, h.id DESC",
            (patient_id,),
        ).fetchall()


def pending_handovers_to(conn: psycopg.Connection, *, organisation_id: UUID) -> list[Handover]:
    """The receiving unit's worklist: open proposals to it, the longest-waiting first."""
    with conn.cursor(row_factory=class_row(Handover)) as cur:
        return cur.execute(
            f"{_HANDOVER} WHERE h.to_organisation_id = %s AND h.state = 'proposed'"
            " ORDER BY h.proposed_at, h.id",
            (organisation_id,),
        ).fetchall()


def pending_handovers(conn: psycopg.Connection, *, patient_ids: list[UUID]) -> list[Handover]:
    """The open proposal of each of these patients that has one (at most one each): what a
    worklist shows beside the unit in charge."""
    with conn.cursor(row_factory=class_row(Handover)) as cur:
        return cur.execute(
            f"{_HANDOVER} WHERE h.patient_id = ANY(%s) AND h.state = 'proposed'",
            (patient_ids,),
        ).fetchall()


# --- Changing hands ----------------------------------------------------------------------------


def _lock_patient(conn: psycopg.Connection, *, patient_id: UUID) -> None:
    """Serialise every change of this patient's responsibility; see the module docstring."""
    if (
        conn.execute(
            "SELECT 1 FROM patients WHERE id = %s FOR NO KEY UPDATE", (patient_id,)
        ).fetchone()
        is None
    ):
        raise HandoverStateError("no such patient")


def _require_organisation(conn: psycopg.Connection, *, organisation_id: UUID) -> None:
    if conn.execute("SELECT 1 FROM organisations WHERE id = %s", (organisation_id,)).fetchone():
        return
    raise HandoverStateError("no such unit")


def _require_note(note: str | None, *, why: str) -> str:
    """Notes are what the other unit acts on: an empty one says nothing, so it is refused."""
    if note is None or not note.strip():
        raise HandoverStateError(why)
    return note.strip()


def do_propose_handover(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    to_organisation_id: UUID,
    proposed_by: UUID,
    note: str,
    now: datetime,
    care_plan_version: int | None = None,
    from_organisation_id: UUID | None = None,
) -> Handover:
    """Propose to hand the patient to another unit; the sender stays responsible meanwhile.

    The sender is the unit responsible at `now`. A caller that checked the proposer's right to
    speak for a particular unit passes it as `from_organisation_id`, so that a change of hands
    between that check and this transaction is refused instead of proposed in another's name.
    """
    note = _require_note(note, why="a hand-over needs a note for the receiving unit")
    with conn.transaction():
        _lock_patient(conn, patient_id=patient_id)
        sender = responsible_unit(conn, patient_id=patient_id, at=now)
        if sender is None:
            raise HandoverStateError("the patient has no responsible unit to hand over from")
        if from_organisation_id is not None and sender != from_organisation_id:
            raise HandoverStateError("your unit is not responsible for the patient now")
        if sender == to_organisation_id:
            raise HandoverStateError("that unit is responsible already")
        _require_organisation(conn, organisation_id=to_organisation_id)
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


def _lock_open(conn: psycopg.Connection, *, handover_id: UUID, now: datetime) -> Handover:
    """Lock the patient, then the proposal, and return the proposal if it is still open.

    Whoever locks second waits, then reads the state the first one left: so of two decisions
    at once exactly one finds the proposal open.
    """
    row = conn.execute("SELECT patient_id FROM handovers WHERE id = %s", (handover_id,)).fetchone()
    if row is None:
        raise HandoverStateError("no such hand-over")
    _lock_patient(conn, patient_id=row[0])
    conn.execute("SELECT 1 FROM handovers WHERE id = %s FOR UPDATE", (handover_id,))
    locked = get_handover(conn, handover_id=handover_id)
    assert locked is not None
    if locked.state != "proposed":
        raise HandoverStateError(f"the hand-over is {locked.state} already")
    if now < locked.proposed_at:
        raise HandoverStateError("a hand-over cannot be answered before it was proposed")
    return locked


def _record(
    conn: psycopg.Connection,
    *,
    handover_id: UUID,
    state: State,
    decided_by: UUID,
    now: datetime,
    note: str | None,
) -> Handover:
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
    """The receiver takes over at `now`: the sender's period ends, the receiver's begins.

    Refused if the sender's responsibility is not the same unbroken period that held when the
    proposal was made: the proposal (and its note) was written for that situation.
    """
    note = None if note is None or not note.strip() else note.strip()
    with conn.transaction():
        proposal = _lock_open(conn, handover_id=handover_id, now=now)
        patient = proposal.patient_id
        period = conn.execute(
            f"""
            SELECT r.organisation_id, r.valid_from FROM patient_responsibility r
             WHERE r.patient_id = %(patient)s AND r.role = 'responsible' AND {current("r")}
             ORDER BY r.valid_from DESC LIMIT 1
            """,
            {"patient": patient, "now": now},
        ).fetchone()
        if (
            period is None
            or period[0] != proposal.from_organisation_id
            or period[1] > proposal.proposed_at
        ):
            raise HandoverStateError("the responsible unit changed since the proposal")
        _move(conn, patient_id=patient, role="responsible", to=proposal.to_organisation_id, now=now)
        backup = backup_unit(conn, patient_id=patient, at=now)
        if sender_becomes_backup:
            _move(
                conn, patient_id=patient, role="backup", to=proposal.from_organisation_id, now=now
            )
        elif backup == proposal.to_organisation_id:
            # A unit is never its own back-up: escalating to it would reach the same people.
            _move(conn, patient_id=patient, role="backup", to=None, now=now)
        return _record(
            conn,
            handover_id=handover_id,
            state="accepted",
            decided_by=decided_by,
            now=now,
            note=note,
        )


def do_decline_handover(
    conn: psycopg.Connection, *, handover_id: UUID, decided_by: UUID, now: datetime, note: str
) -> Handover:
    """The sender stays responsible; the receiver must say why, so the sender can act on it."""
    note = _require_note(note, why="declining a hand-over needs a note saying why")
    with conn.transaction():
        _lock_open(conn, handover_id=handover_id, now=now)
        return _record(
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
    """The sender takes the proposal back; it stays in the history, and a new one may follow."""
    with conn.transaction():
        _lock_open(conn, handover_id=handover_id, now=now)
        return _record(
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
    """Name the back-up unit from `now` on (None: no back-up from now on).

    Naming the unit that is back-up already changes nothing, so the history is not cluttered
    with periods that differ only in their start.
    """
    with conn.transaction():
        _lock_patient(conn, patient_id=patient_id)
        if organisation_id is not None:
            _require_organisation(conn, organisation_id=organisation_id)
            if responsible_unit(conn, patient_id=patient_id, at=now) == organisation_id:
                raise HandoverStateError("the responsible unit cannot be its own back-up")
        if backup_unit(conn, patient_id=patient_id, at=now) == organisation_id:
            return
        _move(conn, patient_id=patient_id, role="backup", to=organisation_id, now=now)


def _move(
    conn: psycopg.Connection, *, patient_id: UUID, role: Role, to: UUID | None, now: datetime
) -> None:
    """End the current period of `role` at `now` and, unless `to` is None, start one for `to`.

    Refused when a period of the role starts at or after `now`: closing the current one would
    then leave two periods holding the same moment, or one that ends where it begins.
    """
    if conn.execute(
        "SELECT 1 FROM patient_responsibility"
        " WHERE patient_id = %s AND role = %s AND valid_from >= %s LIMIT 1",
        (patient_id, role, now),
    ).fetchone():
        raise HandoverStateError(f"the {role} unit was changed at or after this moment already")
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
