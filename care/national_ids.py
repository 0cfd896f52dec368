"""Patients' national identity numbers: sealed at rest, found by a keyed hash, never shown.

ID-porten names a citizen by the national identity number (``pid``); a coordinator registers
a patient's number so that the patient's ID-porten log-in finds their record. The number is
sensitive (it gives birth date and sex, and opens doors elsewhere), so the database holds it
only sealed (AES-256-GCM) and as an HMAC-SHA-256 for lookup, both under keys derived from the
installation key, which the database never holds: a dump reveals no number, and nobody can
test a guessed one against the hashes. Screens show at most `masked`; logs and addresses never
carry it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Final
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, Request

from core.auth import derive_key

_ELEVEN_DIGITS: Final = re.compile(r"^[0-9]{11}$")


class NotANationalIdError(ValueError):
    """Not eleven digits; the message never repeats the input."""


@dataclass(frozen=True, slots=True)
class NationalIds:
    """The installation's keys for national identity numbers."""

    seal_key: bytes
    hash_key: bytes

    @classmethod
    def from_installation_key(cls, key: bytes) -> NationalIds:
        return cls(
            seal_key=derive_key(key, purpose="heimvakt national id seal"),
            hash_key=derive_key(key, purpose="heimvakt national id lookup"),
        )

    def digest(self, national_id: str) -> bytes:
        return hmac.new(self.hash_key, national_id.encode(), hashlib.sha256).digest()

    def seal(self, national_id: str, *, patient_id: UUID) -> bytes:
        """Bound to its patient: a sealed number copied to another row does not open."""
        nonce = os.urandom(12)
        return nonce + AESGCM(self.seal_key).encrypt(nonce, national_id.encode(), patient_id.bytes)

    def open(self, sealed: bytes, *, patient_id: UUID) -> str:
        return AESGCM(self.seal_key).decrypt(sealed[:12], sealed[12:], patient_id.bytes).decode()


def bind_national_ids(app: FastAPI, keys: NationalIds | None) -> None:
    """The app factory's keys for the routes that register or find a number; None: this
    installation stores none."""
    app.state.national_ids = keys


def bound_national_ids(request: Request) -> NationalIds | None:
    keys: NationalIds | None = getattr(request.app.state, "national_ids", None)
    return keys


def masked(national_id: str) -> str:
    """What a screen may show: the last two digits."""
    return "•" * 9 + national_id[-2:]


def do_register_national_id(
    conn: psycopg.Connection, *, patient_id: UUID, national_id: str, keys: NationalIds
) -> None:
    """Store (or replace) a patient's number, sealed with its lookup hash."""
    if not _ELEVEN_DIGITS.match(national_id):
        raise NotANationalIdError("a national identity number is eleven digits")
    conn.execute(
        "UPDATE patients SET national_id_sealed = %s, national_id_hash = %s,"
        " national_id_unsealed = NULL WHERE id = %s",
        (keys.seal(national_id, patient_id=patient_id), keys.digest(national_id), patient_id),
    )


def patient_with_national_id(
    conn: psycopg.Connection, *, national_id: str, keys: NationalIds
) -> UUID | None:
    row = conn.execute(
        "SELECT id FROM patients WHERE national_id_hash = %s", (keys.digest(national_id),)
    ).fetchone()
    return None if row is None else row[0]


def national_id_of(conn: psycopg.Connection, *, patient_id: UUID, keys: NationalIds) -> str | None:
    row = conn.execute(
        "SELECT national_id_sealed FROM patients WHERE id = %s", (patient_id,)
    ).fetchone()
    return (
        None if row is None or row[0] is None else keys.open(bytes(row[0]), patient_id=patient_id)
    )


def do_seal_unsealed_national_ids(conn: psycopg.Connection, *, keys: NationalIds) -> int:
    """Numbers stored in plain text before migration 0026, sealed now; how many."""
    rows = conn.execute(
        "SELECT id, national_id_unsealed FROM patients WHERE national_id_unsealed IS NOT NULL"
        " FOR UPDATE"
    ).fetchall()
    for patient_id, national_id in rows:
        do_register_national_id(conn, patient_id=patient_id, national_id=national_id, keys=keys)
    return len(rows)
