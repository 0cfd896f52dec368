"""Per-device bearer tokens, for gateways that send readings over HTTP instead of MQTT.

A token is shown once, when it is issued; only its SHA-256 is stored, so a copy of the database
lets nobody send as a device. A device may hold several tokens at once, so a gateway can move to
a new token before the old one is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg.rows import class_row

TOKEN_MARK = "hv_"  # noqa: S105  # a marker every token starts with, not a secret
"""Every token starts with this, so a leaked token is recognisable (secret scanners, logs)."""
_PREFIX_CHARS = 8
"""Random characters kept in clear as the prefix: 48 of the token's 256 bits, leaving 208."""
_RANDOM_BYTES = 32


@dataclass(frozen=True, slots=True)
class DeviceToken:
    """A token as listed: never the token itself."""

    id: UUID
    device_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_prefix(token: str) -> str:
    return token[: len(TOKEN_MARK) + _PREFIX_CHARS]


def do_issue_token(conn: psycopg.Connection, *, device_id: str, now: datetime) -> str:
    """A new token for the device. It is returned this once and cannot be recovered later."""
    token = TOKEN_MARK + secrets.token_urlsafe(_RANDOM_BYTES)
    row = conn.execute(
        """
        INSERT INTO device_tokens (device_id, token_hash, prefix, created_at)
        SELECT id, %(hash)s, %(prefix)s, %(now)s FROM devices
        WHERE id = %(device)s AND revoked_at IS NULL
        RETURNING id
        """,
        {"device": device_id, "hash": token_hash(token), "prefix": token_prefix(token), "now": now},
    ).fetchone()
    if row is None:
        raise LookupError(f"no device {device_id!r}")
    return token


def do_revoke_token(
    conn: psycopg.Connection,
    *,
    now: datetime,
    token_id: UUID | None = None,
    prefix: str | None = None,
) -> bool:
    """Refuse a token from now on; False when no such token was in force.

    A token is named by its id or its prefix, so an operator can revoke one seen in a listing
    or in a gateway's configuration without holding the secret. Revoking twice keeps the first
    time.
    """
    if (token_id is None) == (prefix is None):
        raise ValueError("name the token by exactly one of token_id and prefix")
    row = conn.execute(
        """
        UPDATE device_tokens SET revoked_at = %(now)s
        WHERE (id = %(id)s OR prefix = %(prefix)s) AND revoked_at IS NULL
        RETURNING id
        """,
        {"now": now, "id": token_id, "prefix": prefix},
    ).fetchone()
    return row is not None


def device_for_token(conn: psycopg.Connection, *, token: str, device_id: str) -> bool:
    """Whether `token` is in force for `device_id`: issued for that device and not revoked.

    The token is found by its SHA-256 rather than compared character by character, and that is
    as good as a constant-time comparison: a lookup's timing can only tell something about the
    hash, and a hash that nobody can steer toward a stored one (the tokens carry 256 random bits)
    tells an attacker nothing about any token. Whether the token is unknown, revoked or another
    device's is deliberately not told apart.
    """
    row = conn.execute(
        """
        SELECT 1 FROM device_tokens
        WHERE token_hash = %(hash)s AND device_id = %(device)s AND revoked_at IS NULL
        """,
        {"hash": token_hash(token), "device": device_id},
    ).fetchone()
    return row is not None


def device_of_token(conn: psycopg.Connection, *, token: str) -> str | None:
    """The device a token in force speaks for, if any (see `device_for_token` on timing)."""
    row = conn.execute(
        "SELECT device_id FROM device_tokens WHERE token_hash = %s AND revoked_at IS NULL",
        (token_hash(token),),
    ).fetchone()
    return None if row is None else row[0]


def tokens_for_device(conn: psycopg.Connection, *, device_id: str) -> list[DeviceToken]:
    """The device's tokens, newest first, revoked ones included."""
    with conn.cursor(row_factory=class_row(DeviceToken)) as cur:
        return cur.execute(
            """
            SELECT id, device_id, prefix, created_at, revoked_at FROM device_tokens
            WHERE device_id = %s ORDER BY created_at DESC, id
            """,
            (device_id,),
        ).fetchall()
