"""Local accounts of the built-in issuer: the password policy, argon2id hashes and the
throttled log-in. Apart from core/auth.py because only demo and embedded installations log
people in with passwords; HelseID and ID-porten never reach this module."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from core.settings import KNOWN_DEFAULT_SECRETS

_HASHER = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
MIN_PASSWORD_SCORE = 3
"""zxcvbn's score (0 to 4) a password needs: 3 stands for about 10^10 guesses, out of reach
online and slow offline against argon2id. It sees through repeats, sequences, keyboard walks,
common passwords and words of this product: "1234567890" and "passwordpassword" score 0."""
_SCORED_CHARS = 100
"""zxcvbn's time grows with length; a passphrase this long is judged by its start."""
_PRODUCT_WORDS = ("heimvakt", "demo", "helse", "passord", "sykepleier")
_DUMMY_HASH = _HASHER.hash("a password nobody has, to spend the same time on unknown users")


def password_problem(password: str, *, username: str = "") -> str | None:
    """Why `password` may not be used, or None: too short, a published default (an example in
    our docs, the demo's password), or too easy to guess."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if password.strip().lower() in KNOWN_DEFAULT_SECRETS:
        return "this password is a published default; choose your own"
    words = [username, *_PRODUCT_WORDS, *KNOWN_DEFAULT_SECRETS]
    strength = zxcvbn(password[:_SCORED_CHARS], user_inputs=words)
    if strength["score"] < MIN_PASSWORD_SCORE:
        return "this password is too easy to guess; a few unrelated words make a good one"
    return None


def hash_password(password: str, *, username: str = "", demo: bool = False) -> str:
    """An argon2id hash (memory-hard, so a stolen table is slow to crack) of a password the
    policy (`password_problem`) accepts; `ValueError` says why not. Demo accounts, whose
    password is printed at every demo start, need only its length."""
    problem = password_problem(password, username=username)
    if demo and len(password) >= MIN_PASSWORD_LENGTH:
        problem = None
    if problem is not None:
        raise ValueError(problem)
    return _HASHER.hash(password)


def do_create_local_account(
    conn: psycopg.Connection, *, username: str, password: str, demo: bool = False
) -> UUID:
    """A password log-in for the local issuer; returns the subject its tokens will carry."""
    row = conn.execute(
        "INSERT INTO local_accounts (username, password_hash) VALUES (%s, %s) RETURNING subject",
        (username, hash_password(password, username=username, demo=demo)),
    ).fetchone()
    assert row is not None
    subject: UUID = row[0]
    return subject


def do_set_local_password(conn: psycopg.Connection, *, username: str, password: str) -> bool:
    """Replace an account's password (the operator's reset); False if there is no such user.
    Every open session of the account ends: whoever knew the old password is logged out."""
    row = conn.execute(
        "UPDATE local_accounts SET password_hash = %s WHERE username = %s RETURNING subject",
        (hash_password(password, username=username), username),
    ).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM local_sessions WHERE subject = %s", (str(row[0]),))
    return True


def authenticate_local(conn: psycopg.Connection, *, username: str, password: str) -> UUID | None:
    """The account's subject if the password is right. An unknown user costs the same time as
    a wrong password, so the answer's timing does not tell which user names exist."""
    row = conn.execute(
        "SELECT subject, password_hash FROM local_accounts WHERE username = %s", (username,)
    ).fetchone()
    try:
        _HASHER.verify(_DUMMY_HASH if row is None else row[1], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _HASHER.check_needs_rehash(row[1]):
        conn.execute(
            "UPDATE local_accounts SET password_hash = %s WHERE username = %s",
            (_HASHER.hash(password), username),
        )
    subject: UUID = row[0]
    return subject


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """How many failed log-ins an account and a client address get before they must wait.

    Past the limit each failure blocks the key for twice as long as the one before, up to
    `longest_block`; while blocked, a log-in is refused before its password is checked, the
    right one too. A key with no failure for `quiet` starts again from zero; `quiet` is longer
    than `longest_block`, so waiting out a block does not reset the count. An account is
    counted by the user name as typed (unknown names too: nothing tells them apart).
    """

    account_failures: int = 5
    address_failures: int = 20
    first_block: timedelta = timedelta(seconds=30)
    longest_block: timedelta = timedelta(minutes=15)
    quiet: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.quiet <= self.longest_block:
            raise ValueError("quiet must be longer than longest_block")

    def block_after(self, failures: int, limit: int) -> timedelta | None:
        """How long the key is blocked after its `failures`-th failure in a row."""
        if failures < limit:
            return None
        doublings = min(failures - limit, 32)
        factor: int = 2**doublings  # typeshed types int ** int as Any: a negative power is a float
        return min(self.longest_block, self.first_block * factor)


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    subject: UUID | None
    """The account's subject when the password was right."""
    retry_after: int | None = None
    """Seconds to wait, when the account or address is blocked (the password was not checked)."""


def do_log_in_local(
    conn: psycopg.Connection,
    *,
    username: str,
    password: str,
    address: str,
    now: datetime,
    throttle: LoginThrottle,
) -> LoginAttempt:
    """A password log-in through the throttle, which every process shares through the
    database. A right password clears the account's count; the address's count stays, so one
    valid account cannot buy an address more guesses at others."""
    blocked = conn.execute(
        "SELECT max(blocked_until) FROM login_failures"
        " WHERE ((scope = 'account' AND key = %s) OR (scope = 'address' AND key = %s))"
        " AND blocked_until > %s",
        (username, address, now),
    ).fetchone()
    if blocked is not None and blocked[0] is not None:
        return LoginAttempt(None, retry_after=math.ceil((blocked[0] - now).total_seconds()))
    subject = authenticate_local(conn, username=username, password=password)
    if subject is not None:
        conn.execute("DELETE FROM login_failures WHERE scope = 'account' AND key = %s", (username,))
        return LoginAttempt(subject)
    conn.execute("DELETE FROM login_failures WHERE last_failure_at < %s", (now - throttle.quiet,))
    for scope, key, limit in (
        ("account", username, throttle.account_failures),
        ("address", address, throttle.address_failures),
    ):
        row = conn.execute(
            """
            INSERT INTO login_failures AS f (scope, key, failures, last_failure_at)
            VALUES (%(scope)s, %(key)s, 1, %(now)s)
            ON CONFLICT (scope, key) DO UPDATE SET
                failures = f.failures + 1, last_failure_at = %(now)s
            RETURNING failures
            """,
            {"scope": scope, "key": key, "now": now},
        ).fetchone()
        assert row is not None
        block = throttle.block_after(row[0], limit)
        if block is not None:
            conn.execute(
                "UPDATE login_failures SET blocked_until = %s WHERE scope = %s AND key = %s",
                (now + block, scope, key),
            )
    return LoginAttempt(None)
