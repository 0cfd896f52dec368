"""Authentication: who a request speaks for. Authorization (may they?) is care/access.py.

Every person's token is an OpenID Connect JWT, whoever issued it: HelseID for staff, ID-porten
for patients, or, in demo and embedded mode, the built-in local issuer with password log-in.
One verifier checks them all the same way, so one code path authorises everything.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal
from uuid import UUID

import jwt
import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import sql
from psycopg_pool import ConnectionPool

from core.clock import Clock
from core.settings import Settings


class StaffRole(StrEnum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    COORDINATOR = "coordinator"
    ADMINISTRATOR = "administrator"


PrincipalKind = Literal["anonymous", "staff", "patient", "relative", "device", "system"]
"""``relative``: a patient's relative acting for them with their consent (a proxy);
``system``: an operator's command on the server (``heimvakt export``), which no token gives."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as authorization and the access log see it."""

    kind: PrincipalKind
    id: str
    """Staff, patient or relative UUID as text, the device id, or "" for anonymous."""
    name: str
    role: str
    """A `StaffRole` for staff; "patient", "relative", "device" or "anonymous" otherwise."""
    hpr_number: str | None = None
    organisation_id: UUID | None = None
    organisation_name: str | None = None
    smart_scopes: frozenset[str] | None = None
    """The SMART on FHIR resource scopes its token was granted (``patient/…``, ``user/…``,
    ``system/…`` in its ``scope`` claim), which narrow what the FHIR interface serves it; None
    when the token has none (a HelseID or ID-porten log-in): the person's own rights, as in
    the API and the dashboard."""

    @property
    def uuid(self) -> UUID:
        return UUID(self.id)


_SMART_CONTEXTS: Final = ("patient/", "user/", "system/")


def smart_scopes(claims: Mapping[str, Any]) -> frozenset[str] | None:
    """The SMART resource scopes in a token's ``scope`` claim (space-separated), or None when
    it holds none."""
    scope = claims.get("scope")
    words = scope.split() if isinstance(scope, str) else []
    found = frozenset(w for w in words if w.startswith(_SMART_CONTEXTS))
    return found or None


ANONYMOUS = Principal(kind="anonymous", id="", name="anonymous", role="anonymous")


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """One trusted OpenID Connect issuer: HelseID, ID-porten, or the local one."""

    issuer: str
    audience: str
    jwks_url: str | None
    kind: Literal["staff", "patient", "any"]
    """Whom its tokens may speak for: an ID-porten token never becomes a staff member."""
    required_acr: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    hpr_claim: str = "helseid://claims/hpr/hpr_number"


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a token proved, and nothing more: mapping it to a person is care/identities.py's
    job, keyed by (issuer, subject), because subjects are only unique per issuer."""

    issuer: str
    subject: str
    kind: Literal["staff", "patient", "any"]
    hpr_number: str | None
    claims: Mapping[str, Any]
    session: str | None = None
    """The `jti` of a built-in issuer's token: it holds only while that session is open
    (`session_is_open`); None for other issuers, whose tokens end at their `exp`."""


class TokenRejectedError(Exception):
    """The token does not hold; the message says why, never what the token was."""


LEEWAY = timedelta(seconds=30)
"""Clock skew allowed between the issuer and us."""
JWKS_TIMEOUT_SECONDS = 5.0
"""A stalled issuer must not hold request threads for PyJWKClient's default 30 s."""
_KEY_TYPES: Mapping[str, type[rsa.RSAPublicKey | ec.EllipticCurvePublicKey]] = {
    "RS256": rsa.RSAPublicKey,
    "RS384": rsa.RSAPublicKey,
    "RS512": rsa.RSAPublicKey,
    "PS256": rsa.RSAPublicKey,
    "PS384": rsa.RSAPublicKey,
    "PS512": rsa.RSAPublicKey,
    "ES256": ec.EllipticCurvePublicKey,
    "ES384": ec.EllipticCurvePublicKey,
}
"""Asymmetric algorithms only, each with the key type it needs: a token never chooses HS256
(where a public key would become the shared secret) or "none", whatever an issuer lists."""


class TokenVerifier:
    """Checks every person's token the same way, whoever issued it."""

    def __init__(self, issuers: Sequence[IssuerConfig], *, local: LocalIssuer | None) -> None:
        self._issuers = {config.issuer: config for config in issuers}
        self._local = local
        if local is not None:
            self._issuers[local.config.issuer] = local.config
        self._jwks = {
            config.issuer: jwt.PyJWKClient(
                config.jwks_url, cache_keys=True, lifespan=3600, timeout=JWKS_TIMEOUT_SECONDS
            )
            for config in issuers
            if config.jwks_url is not None
        }

    def verify(self, token: str, *, now: datetime) -> VerifiedToken:
        """The token's verified content, or `TokenRejectedError`.

        The unverified header and `iss` only choose which issuer's rules and keys apply; nothing
        else is trusted before the signature holds. Times are checked against `now`, the
        caller's clock, rather than PyJWT's own, so tests and replays see one time.
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise TokenRejectedError("not a well-formed JWT") from error
        config = self._issuers.get(str(unverified.get("iss")))
        if config is None:
            raise TokenRejectedError("unknown issuer")
        algorithm = header.get("alg")
        if algorithm not in config.algorithms or algorithm not in _KEY_TYPES:
            raise TokenRejectedError(f"algorithm {algorithm!r} is not accepted")
        key = self._key(config, header.get("kid"), token)
        if not isinstance(key, _KEY_TYPES[algorithm]):
            raise TokenRejectedError(f"the signing key does not fit algorithm {algorithm}")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                options={
                    "require": ["exp", "sub", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, TypeError, ValueError) as error:
            raise TokenRejectedError(f"invalid token: {error}") from error
        _check_times(claims, now=now)
        if config.required_acr and claims.get("acr") not in config.required_acr:
            raise TokenRejectedError("insufficient level of assurance (acr)")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRejectedError("no subject")
        hpr = claims.get(config.hpr_claim)
        session = None
        if self._local is not None and config.issuer == self._local.config.issuer:
            session = claims.get("jti")
            if not isinstance(session, str) or not session:
                raise TokenRejectedError("no session id (jti)")
        return VerifiedToken(
            issuer=config.issuer,
            subject=subject,
            kind=config.kind,
            hpr_number=None if hpr is None else str(hpr),
            claims=claims,
            session=session,
        )

    def _key(self, config: IssuerConfig, kid: object, token: str) -> Any:
        """The issuer's public key named by `kid`; the local issuer's come from the database."""
        if self._local is not None and config.issuer == self._local.config.issuer:
            key = self._local.public_key(str(kid))
            if key is None:
                raise TokenRejectedError("unknown signing key")
            return key
        client = self._jwks.get(config.issuer)
        if client is None:
            raise TokenRejectedError("the issuer has no key set configured")
        try:
            return client.get_signing_key_from_jwt(token).key
        except jwt.PyJWTError as error:
            raise TokenRejectedError("unknown signing key") from error


def _check_times(claims: Mapping[str, Any], *, now: datetime) -> None:
    """exp (required), nbf and iat against the caller's `now`, allowing `LEEWAY` of skew."""

    def moment(name: str) -> datetime | None:
        value = claims.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TokenRejectedError(f"{name} is not a number")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, ValueError, OSError) as error:
            raise TokenRejectedError(f"{name} is out of range") from error

    expires = moment("exp")
    if expires is None or expires + LEEWAY <= now:
        raise TokenRejectedError("expired")
    not_before = moment("nbf")
    if not_before is not None and not_before - LEEWAY > now:
        raise TokenRejectedError("not yet valid")
    issued = moment("iat")
    if issued is not None and issued - LEEWAY > now:
        raise TokenRejectedError("issued in the future")


ISSUER_KEY_BYTES: Final = 32
"""AES-256: the key that seals the built-in issuer's signing keys in the database."""


class SigningKeyError(RuntimeError):
    """A signing key in the database cannot be opened with this process's issuer key."""


def load_or_create_issuer_key(path: Path) -> bytes:
    """The issuer key in `path`, made (random, mode 0600) if the file does not exist yet.

    It lives outside the database on purpose: a dump then holds only sealed signing keys. The
    file is written under another name and linked into place, so processes starting together
    on one data directory read one complete key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode())
            file.write("\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            draft.unlink()
    try:
        key = base64.urlsafe_b64decode(path.read_text().strip())
    except (binascii.Error, ValueError) as error:
        raise SigningKeyError(f"{path} does not hold a base64 issuer key") from error
    if len(key) != ISSUER_KEY_BYTES:
        raise SigningKeyError(f"{path} must hold {ISSUER_KEY_BYTES} bytes, base64-encoded")
    return key


def derive_key(installation_key: bytes, *, purpose: str) -> bytes:
    """A 32-byte key for one `purpose`, derived (HKDF-SHA-256) from the installation key, so
    one file to back up serves every secret Heimvakt keeps outside the database, and no two
    purposes share a key."""
    return HKDF(
        algorithm=hashes.SHA256(), length=ISSUER_KEY_BYTES, salt=None, info=purpose.encode()
    ).derive(installation_key)


def seal_private_key(sealer: AESGCM, kid: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The private key, encrypted; the kid is authenticated with it, so a sealed key moved to
    another row does not open."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = os.urandom(12)
    return nonce + sealer.encrypt(nonce, der, kid.encode())


def open_private_key(sealer: AESGCM, kid: str, sealed: bytes) -> ec.EllipticCurvePrivateKey:
    """`seal_private_key` undone; `SigningKeyError` when this process has another key."""
    try:
        der = sealer.decrypt(sealed[:12], sealed[12:], kid.encode())
    except InvalidTag as error:
        raise SigningKeyError(
            f"key {kid} does not open with this issuer key: every process of the"
            " installation needs the same HEIMVAKT_ISSUER_KEY_FILE"
        ) from error
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def current_sealed_key(
    conn: psycopg.Connection, *, table: str, sealer: AESGCM, now: datetime
) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """The key in use from `table` (kid, sealed_private_key, created_at, retired_at), made and
    stored sealed if there is none yet. Call inside a transaction: the advisory lock makes
    concurrent first starts (several workers) agree on one key."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"heimvakt.{table}",))
    row = conn.execute(
        sql.SQL(
            "SELECT kid, sealed_private_key FROM {} WHERE retired_at IS NULL"
            " ORDER BY created_at DESC LIMIT 1"
        ).format(sql.Identifier(table))
    ).fetchone()
    if row is not None:
        return row[0], open_private_key(sealer, row[0], bytes(row[1]))
    kid = secrets.token_urlsafe(12)
    key = ec.generate_private_key(ec.SECP256R1())
    conn.execute(
        sql.SQL("INSERT INTO {} (kid, sealed_private_key, created_at) VALUES (%s, %s, %s)").format(
            sql.Identifier(table)
        ),
        (kid, seal_private_key(sealer, kid, key), now),
    )
    return kid, key


class LocalIssuer:
    """The built-in issuer of demo and embedded mode: password log-in, ES256 tokens.

    Its signing key is generated by each installation at first start and kept in the
    database, so every process of one installation signs and verifies with the same keys, and
    no two installations share one (ThingsBoard's CVE-2023-26462 was a shipped default key).
    The database holds the key sealed with `issuer_key` (AES-256-GCM), which it never sees:
    read access to a dump is not enough to sign a token.

    Every token it signs opens a session (`local_sessions`, keyed by the token's `jti`);
    `TokenVerifier` marks its tokens so that the caller checks the session is still open.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        issuer: str,
        audience: str,
        clock: Clock,
        token_lifetime: timedelta,
        issuer_key: bytes,
    ) -> None:
        if len(issuer_key) != ISSUER_KEY_BYTES:
            raise ValueError(f"the issuer key must be {ISSUER_KEY_BYTES} bytes")
        self._pool = pool
        self._config = IssuerConfig(
            issuer=issuer, audience=audience, jwks_url=None, kind="any", algorithms=("ES256",)
        )
        self._clock = clock
        self.token_lifetime = token_lifetime
        self._sealer = AESGCM(issuer_key)
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> IssuerConfig:
        """How a `TokenVerifier` checks this issuer's tokens: ES256 only, keys from here."""
        return self._config

    def ensure_signing_key(self) -> str:
        """The kid of the key in use, generating one if this installation has none yet.

        The advisory lock makes concurrent first starts (several workers) agree on one key.
        The key is opened once here, so a wrong issuer key file stops the start with a clear
        `SigningKeyError` instead of failing every log-in.
        """
        with self._pool.connection() as conn, conn.transaction():
            kid, key = current_sealed_key(
                conn, table="signing_keys", sealer=self._sealer, now=self._clock.now()
            )
        with self._lock:
            self._keys[kid] = key
        return kid

    def issue(self, *, subject: str, claims: Mapping[str, Any] | None = None) -> str:
        """A signed ES256 token for `subject`, with its session opened; the registered claims
        always win over `claims`, so a caller cannot widen a token's audience, issuer or
        lifetime. Sessions past their end are cleared on the way (an indexed delete)."""
        kid = self.ensure_signing_key()
        key = self._private_key(kid)
        assert key is not None
        now = self._clock.now()
        expires = now + self.token_lifetime
        session = secrets.token_urlsafe(16)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM local_sessions WHERE expires_at < %s", (now - LEEWAY,))
            conn.execute(
                "INSERT INTO local_sessions (jti, subject, expires_at) VALUES (%s, %s, %s)",
                (session, subject, expires + LEEWAY),
            )
        payload = {
            **(claims or {}),
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "sub": subject,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": session,
        }
        return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid})

    def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The verifying key for `kid`, or None if this installation never made that key."""
        key = self._private_key(kid)
        return None if key is None else key.public_key()

    def jwks(self) -> dict[str, Any]:
        """The public keys, retired ones included, as an RFC 7517 key set."""
        with self._pool.connection() as conn:
            kids = [row[0] for row in conn.execute("SELECT kid FROM signing_keys ORDER BY kid")]
        keys = []
        for kid in kids:
            public = self.public_key(kid)
            assert public is not None
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "ES256"})
        return {"keys": keys}

    def _private_key(self, kid: str) -> ec.EllipticCurvePrivateKey | None:
        """Cached after the first load; an unknown kid is looked up again, as another process
        of the installation may have made the key since."""
        with self._lock:
            if kid in self._keys:
                return self._keys[kid]
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT sealed_private_key FROM signing_keys WHERE kid = %s", (kid,)
            ).fetchone()
        if row is None:
            return None
        key = open_private_key(self._sealer, kid, bytes(row[0]))
        with self._lock:
            self._keys[kid] = key
        return key


def session_is_open(conn: psycopg.Connection, *, session: str) -> bool:
    """Whether the built-in issuer's session `session` (a token's `jti`) is still open: one
    primary-key lookup, made for every request such a token authenticates."""
    row = conn.execute("SELECT 1 FROM local_sessions WHERE jti = %s", (session,)).fetchone()
    return row is not None


def do_end_session(conn: psycopg.Connection, *, session: str) -> None:
    """Log-out: the token that carried `session` is refused from now on, everywhere."""
    conn.execute("DELETE FROM local_sessions WHERE jti = %s", (session,))


def issuer_configs(settings: Settings) -> list[IssuerConfig]:
    """The external issuers an operator configured (HEIMVAKT_OIDC_ISSUERS)."""
    return [
        IssuerConfig(
            issuer=item.issuer,
            audience=item.audience,
            jwks_url=item.jwks_url,
            kind=item.kind,
            required_acr=tuple(item.required_acr),
            algorithms=tuple(item.algorithms),
            hpr_claim=item.hpr_claim,
        )
        for item in settings.oidc_issuers
    ]
