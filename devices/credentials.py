"""A device's broker password: made here, shown once, kept only as Mosquitto 2's hash.

The registry stores what `mosquitto_passwd` would write (PBKDF2 with SHA-512, a 12-byte salt,
``$7$<iterations>$<salt>$<hash>``), so the broker's configuration is exported from the
registry without a password ever being stored or passing through the broker's files in clear.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Final

ITERATIONS: Final = 101
"""Mosquitto 2's own default for $7$ hashes."""
_SALT_BYTES: Final = 12
_PASSWORD_BYTES: Final = 24


def new_password() -> str:
    """192 random bits, URL-safe: a device types nothing, so length costs nothing."""
    return secrets.token_urlsafe(_PASSWORD_BYTES)


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
