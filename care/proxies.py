"""Relatives (*pårørende*) as the patient's proxies: the invitation, its acceptance, the
consent's scope and end, and its withdrawal.

A relative reaches nothing but through a consent: the patient invites them (or a nurse does,
recording how the patient consented), with a scope (see the patient's own view, receive their
reminders, fill in questionnaires for them) and an end date. The invitation is a one-time code
handed to the relative outside Heimvakt; accepting it ties the consent to the relative's log-in.
care.access checks the consent on every request, so an expiry or a withdrawal takes effect on
the relative's very next request; a withdrawal also ends the relative's open sessions when it
leaves them no valid consent (core/auth.py: a built-in issuer's session).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.people import consent_valid, do_link_identity
from core.auth import Principal

INVITATION_CODE_BYTES: Final = 16
"""128 random bits: the code is the invitation's only secret, guessed by no one."""


@dataclass(frozen=True, slots=True)
class ProxyScope:
    """What a consent lets the relative do."""

    see_own_view: bool
    receive_reminders: bool
    answer_questionnaires: bool


@dataclass(frozen=True, slots=True)
class ProxyConsent:
    id: UUID
    patient_id: UUID
    relative_id: UUID
    relative_name: str
    see_own_view: bool
    receive_reminders: bool
    answer_questionnaires: bool
    valid_from: datetime
    valid_to: datetime
    invited_by_kind: str
    consent_note: str | None
    accepted_at: datetime | None
    withdrawn_at: datetime | None


@dataclass(frozen=True, slots=True)
class Invitation:
    consent: ProxyConsent
    code: str
    """Shown once to whoever invited; only its hash is kept."""


class InvitationError(ValueError):
    """An invitation that cannot be accepted: unknown, already used, withdrawn or ended."""


_CONSENT_COLUMNS: Final = """
    c.id, c.patient_id, c.relative_id, r.display_name AS relative_name, c.see_own_view,
    c.receive_reminders, c.answer_questionnaires, c.valid_from, c.valid_to, c.invited_by_kind,
    c.consent_note, c.accepted_at, c.withdrawn_at
"""


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def do_invite_relative(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    display_name: str,
    email: str | None,
    scope: ProxyScope,
    valid_to: datetime,
    inviter: Principal,
    consent_note: str | None,
    now: datetime,
) -> Invitation:
    """A new relative and their consent, waiting for acceptance with the returned code. A
    staff member invites only with a note of how the patient consented."""
    if valid_to <= now:
        raise ValueError("the consent must end in the future")
    if inviter.kind != "patient" and not (consent_note or "").strip():
        raise ValueError("record how the patient gave their consent")
    row = conn.execute(
        "INSERT INTO relatives (display_name, email, created_at) VALUES (%s, %s, %s) RETURNING id",
        (display_name, email, now),
    ).fetchone()
    assert row is not None
    code = secrets.token_urlsafe(INVITATION_CODE_BYTES)
    consent = conn.execute(
        """
        INSERT INTO proxy_consents (patient_id, relative_id, see_own_view, receive_reminders,
                                    answer_questionnaires, valid_from, valid_to, invited_by_kind,
                                    invited_by_id, consent_note, invitation_hash)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
        """,
        (
            patient_id,
            row[0],
            scope.see_own_view,
            scope.receive_reminders,
            scope.answer_questionnaires,
            now,
            valid_to,
            "patient" if inviter.kind == "patient" else "staff",
            inviter.uuid,
            consent_note,
            _hash(code),
        ),
    ).fetchone()
    assert consent is not None
    found = get_consent(conn, patient_id=patient_id, consent_id=consent[0])
    assert found is not None
    return Invitation(consent=found, code=code)


def invitation_open(conn: psycopg.Connection, *, code: str, now: datetime) -> bool:
    """Whether `code` names an invitation that can still be accepted: checked before any
    password work is spent on it."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM proxy_consents WHERE invitation_hash = %s"
        " AND withdrawn_at IS NULL AND valid_to > %s)",
        (_hash(code), now),
    ).fetchone()
    return bool(row and row[0])


def do_accept_invitation(
    conn: psycopg.Connection, *, code: str, issuer: str, subject: str, now: datetime
) -> ProxyConsent:
    """Tie the invitation's consent to the log-in (issuer, subject), which from now on speaks
    for the relative. The code works once, and only while the consent could still grant."""
    with conn.cursor(row_factory=class_row(ProxyConsent)) as cur:
        consent = cur.execute(
            f"""
            UPDATE proxy_consents c SET accepted_at = %(now)s, invitation_hash = NULL
              FROM relatives r
             WHERE r.id = c.relative_id AND c.invitation_hash = %(hash)s
               AND c.withdrawn_at IS NULL AND c.valid_to > %(now)s
            RETURNING {_CONSENT_COLUMNS}
            """,
            {"hash": _hash(code), "now": now},
        ).fetchone()
    if consent is None:
        raise InvitationError("the invitation is not valid (used, withdrawn or ended)")
    do_link_identity(conn, issuer=issuer, subject=subject, relative_id=consent.relative_id)
    return consent


def get_consent(
    conn: psycopg.Connection, *, patient_id: UUID, consent_id: UUID
) -> ProxyConsent | None:
    with conn.cursor(row_factory=class_row(ProxyConsent)) as cur:
        return cur.execute(
            f"SELECT {_CONSENT_COLUMNS} FROM proxy_consents c"
            " JOIN relatives r ON r.id = c.relative_id"
            " WHERE c.id = %s AND c.patient_id = %s",
            (consent_id, patient_id),
        ).fetchone()


def consents_of_patient(conn: psycopg.Connection, *, patient_id: UUID) -> list[ProxyConsent]:
    """Every consent the patient gave, newest first, ended and withdrawn ones too."""
    with conn.cursor(row_factory=class_row(ProxyConsent)) as cur:
        return cur.execute(
            f"SELECT {_CONSENT_COLUMNS} FROM proxy_consents c"
            " JOIN relatives r ON r.id = c.relative_id"
            " WHERE c.patient_id = %s ORDER BY c.valid_from DESC, c.id",
            (patient_id,),
        ).fetchall()


def do_withdraw_consent(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    consent_id: UUID,
    withdrawn_by: Principal,
    now: datetime,
) -> ProxyConsent | None:
    """Withdraw at once; None if there is no such consent of the patient or it was withdrawn
    already. A relative left with no valid consent is logged out everywhere too."""
    row = conn.execute(
        "UPDATE proxy_consents SET withdrawn_at = %s, withdrawn_by_kind = %s"
        " WHERE id = %s AND patient_id = %s AND withdrawn_at IS NULL RETURNING relative_id",
        (now, "patient" if withdrawn_by.kind == "patient" else "staff", consent_id, patient_id),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        f"""
        DELETE FROM local_sessions s USING identities i
         WHERE i.relative_id = %(relative)s AND s.subject = i.subject
           AND NOT EXISTS (SELECT 1 FROM proxy_consents c
                            WHERE c.relative_id = %(relative)s AND {consent_valid("c")})
        """,
        {"relative": row[0], "now": now},
    )
    return get_consent(conn, patient_id=patient_id, consent_id=consent_id)


@dataclass(frozen=True, slots=True)
class ProxiedPatient:
    id: UUID
    display_name: str


def proxied_patients(
    conn: psycopg.Connection, *, relative_id: UUID, now: datetime
) -> list[ProxiedPatient]:
    """The patients whose own view the relative may see now."""
    with conn.cursor(row_factory=class_row(ProxiedPatient)) as cur:
        return cur.execute(
            f"SELECT DISTINCT p.id, p.display_name FROM proxy_consents c"
            f" JOIN patients p ON p.id = c.patient_id"
            f" WHERE c.relative_id = %(relative)s AND c.see_own_view AND {consent_valid('c')}"
            f" ORDER BY p.display_name, p.id",
            {"relative": relative_id, "now": now},
        ).fetchall()


@dataclass(frozen=True, slots=True)
class ReminderRelative:
    """A relative who receives the patient's reminders, by e-mail."""

    id: UUID
    display_name: str
    email: str
    language: str
    """The patient's language: the reminder is about the patient's page."""


def reminder_relatives(
    conn: psycopg.Connection, *, patient_ids: Collection[UUID], now: datetime
) -> dict[UUID, list[ReminderRelative]]:
    """For each patient, the relatives who receive their reminders now: a consent valid now
    whose scope includes them, and an e-mail address to send them to."""
    found: dict[UUID, list[ReminderRelative]] = defaultdict(list)
    for row in conn.execute(
        f"SELECT DISTINCT c.patient_id, r.id, r.display_name, r.email, p.preferred_language"
        f" FROM proxy_consents c JOIN relatives r ON r.id = c.relative_id"
        f" JOIN patients p ON p.id = c.patient_id"
        f" WHERE c.patient_id = ANY(%(patients)s) AND c.receive_reminders"
        f" AND r.email IS NOT NULL AND {consent_valid('c')}"
        f" ORDER BY c.patient_id, r.display_name, r.id",
        {"patients": list(patient_ids), "now": now},
    ):
        found[row[0]].append(ReminderRelative(*row[1:]))
    return dict(found)
