"""The dashboard's OpenID Connect client: log-in through HelseID (staff) and ID-porten (patients).

The authorization code flow as HelseID's security profile asks for it, for every configured
issuer the same way: discovery; PKCE (S256); ``state`` and ``nonce`` kept on the server and good
for one callback; the authorization request pushed to the issuer first (PAR) when it offers
that; the client authenticated with ``private_key_jwt`` (an assertion of at most 60 s with a
fresh ``jti``), signed by a key pair each installation makes for itself; the token request
bound with a DPoP proof where the issuer requires it (answering a server ``nonce``); and the ID
token checked by the same `TokenVerifier` as every other token, plus its ``nonce``, ``azp`` and
``acr``. Authlib signs the client assertions and the PKCE challenge; joserfc the DPoP proofs.
Those two carry the wall clock's time, not the platform clock's: the issuer checks them
against its own clock.

Matching the person and opening a session is heimvakt/oidc_login.py's job: this module only
says what the issuer proved, or why the log-in is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal
from urllib.parse import urlencode

import httpx
import psycopg
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey
from psycopg_pool import ConnectionPool

from core.auth import (
    IssuerConfig,
    TokenRejectedError,
    TokenVerifier,
    VerifiedToken,
    current_sealed_key,
    derive_key,
)
from core.clock import Clock
from core.settings import OidcIssuerSetting, OidcLogInSetting

LOG_IN_PERIOD: Final = timedelta(minutes=10)
"""How long a started log-in may take at the issuer before its state is forgotten."""
ASSERTION_SECONDS: Final = 60
"""HelseID accepts client assertions that live at most 60 s."""
HTTP_TIMEOUT_SECONDS: Final = 10.0
_REQUIRED_METADATA: Final = ("authorization_endpoint", "token_endpoint", "jwks_uri")


class Refusal(StrEnum):
    """Why a log-in was refused: the log-in page explains each, the access log records it."""

    STATE = "state"
    """No log-in under way with this state: replayed, expired, or never started here."""
    ISSUER = "issuer"
    """The issuer said no, or could not be reached, or would not give tokens for the code."""
    INVALID = "invalid"
    """The ID token does not hold: signature, issuer, audience (another client's), times."""
    NONCE = "nonce"
    ACR = "acr"
    """A lower level of assurance than the one required."""
    UNKNOWN = "unknown"
    """A proven person who is not registered here."""


class LogInRefusedError(Exception):
    def __init__(self, refusal: Refusal, detail: str = "", *, language: str | None = None) -> None:
        super().__init__(f"{refusal}: {detail}" if detail else str(refusal))
        self.refusal = refusal
        self.language = language
        """The language the log-in started in, once its state is known."""


@dataclass(frozen=True, slots=True)
class LogInIssuer:
    """One issuer the dashboard logs people in through."""

    issuer: str
    kind: Literal["staff", "patient"]
    required_acr: tuple[str, ...]
    algorithms: tuple[str, ...]
    hpr_claim: str
    log_in: OidcLogInSetting

    @classmethod
    def from_setting(cls, item: OidcIssuerSetting) -> LogInIssuer | None:
        if item.log_in is None:
            return None
        return cls(
            issuer=item.issuer,
            kind=item.kind,
            required_acr=tuple(item.required_acr),
            algorithms=tuple(item.algorithms),
            hpr_claim=item.hpr_claim,
            log_in=item.log_in,
        )


@dataclass(frozen=True, slots=True)
class Started:
    """A log-in under way: the address to send the browser to."""

    location: str


@dataclass(frozen=True, slots=True)
class Finished:
    """What the issuer proved about the person, and the language the log-in started in."""

    token: VerifiedToken
    language: str | None


class ClientKeys:
    """The installation's own key pair towards the issuers (ES256), made at first use and kept
    in `oidc_client_keys` sealed under a key derived from the installation key, as the
    built-in issuer keeps its signing keys: a database dump cannot authenticate as Heimvakt."""

    def __init__(self, pool: ConnectionPool, *, installation_key: bytes, clock: Clock) -> None:
        self._pool = pool
        self._sealer = AESGCM(derive_key(installation_key, purpose="heimvakt oidc client keys"))
        self._clock = clock
        self._current: tuple[str, ec.EllipticCurvePrivateKey] | None = None
        self._lock = threading.Lock()

    def current(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The kid and key in use; one installation agrees on one (advisory lock)."""
        with self._lock:
            if self._current is not None:
                return self._current
        with self._pool.connection() as conn, conn.transaction():
            kid, key = current_sealed_key(
                conn, table="oidc_client_keys", sealer=self._sealer, now=self._clock.now()
            )
        with self._lock:
            self._current = (kid, key)
        return kid, key

    def jwks(self) -> dict[str, Any]:
        """The public key in use, as the issuers fetch it (RFC 7517)."""
        kid, key = self.current()
        public = ECKey.import_key(key.public_key()).as_dict(private=False)
        return {"keys": [{**public, "kid": kid, "use": "sig", "alg": "ES256"}]}

    def signing_key(self) -> tuple[str, ECKey]:
        kid, key = self.current()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return kid, ECKey.import_key(pem)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class OidcClient:
    """The log-in flow with one issuer."""

    def __init__(
        self,
        issuer: LogInIssuer,
        *,
        pool: ConnectionPool,
        clock: Clock,
        keys: ClientKeys,
        redirect_uri: str,
    ) -> None:
        self.issuer = issuer
        self._pool = pool
        self._clock = clock
        self._keys = keys
        self.redirect_uri = redirect_uri
        self._metadata: dict[str, Any] | None = None
        self._verifier: TokenVerifier | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.issuer.log_in.name

    def metadata(self) -> Mapping[str, Any]:
        """The issuer's discovery document, fetched once; its `issuer` must be the one
        configured (OpenID Connect Discovery 1.0, section 4.3)."""
        with self._lock:
            if self._metadata is not None:
                return self._metadata
        url = f"{self.issuer.issuer.rstrip('/')}/.well-known/openid-configuration"
        try:
            answer = httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise LogInRefusedError(Refusal.ISSUER, "discovery failed") from error
        if not isinstance(document, dict) or document.get("issuer") != self.issuer.issuer:
            raise LogInRefusedError(Refusal.ISSUER, "discovery names another issuer")
        if not all(isinstance(document.get(key), str) for key in _REQUIRED_METADATA):
            raise LogInRefusedError(Refusal.ISSUER, "discovery lacks an endpoint")
        config = IssuerConfig(
            issuer=self.issuer.issuer,
            audience=self.issuer.log_in.client_id,
            jwks_url=str(document["jwks_uri"]),
            kind=self.issuer.kind,
            algorithms=self.issuer.algorithms,
            hpr_claim=self.issuer.hpr_claim,
        )
        with self._lock:
            self._metadata = document
            self._verifier = TokenVerifier([config], local=None)
        return document

    def start(self, *, language: str | None) -> Started:
        """A new log-in: its state, nonce and PKCE verifier stored here, the request pushed to
        the issuer when it takes pushed requests; the address to send the browser to."""
        metadata = self.metadata()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        now = self._clock.now()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM oidc_log_ins WHERE expires_at < %s", (now,))
            conn.execute(
                "INSERT INTO oidc_log_ins (state_hash, issuer_name, nonce, code_verifier,"
                " language, expires_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (_digest(state), self.name, nonce, verifier, language, now + LOG_IN_PERIOD),
            )
        log_in = self.issuer.log_in
        request = {
            "client_id": log_in.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": log_in.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            **({"acr_values": log_in.acr_values} if log_in.acr_values else {}),
        }
        authorize = str(metadata["authorization_endpoint"])
        pushed = metadata.get("pushed_authorization_request_endpoint")
        if pushed is None:
            return Started(f"{authorize}?{urlencode(request)}")
        answer = self._post(str(pushed), request)
        request_uri = answer.get("request_uri")
        if not isinstance(request_uri, str):
            raise LogInRefusedError(Refusal.ISSUER, "the pushed request was not taken")
        query = urlencode({"client_id": log_in.client_id, "request_uri": request_uri})
        return Started(f"{authorize}?{query}")

    def finish(self, *, code: str, state: str, issuer: str | None) -> Finished:
        """The callback: the state used up (whatever follows), the code exchanged, the ID
        token checked; `LogInRefusedError` says why not."""
        now = self._clock.now()
        with self._pool.connection() as conn:
            row = conn.execute(
                "DELETE FROM oidc_log_ins WHERE state_hash = %s AND issuer_name = %s"
                " AND expires_at >= %s RETURNING nonce, code_verifier, language",
                (_digest(state), self.name, now),
            ).fetchone()
        if row is None:
            raise LogInRefusedError(Refusal.STATE)
        nonce, verifier, language = row
        try:
            verified = self._checked_tokens(
                code, nonce=nonce, verifier=verifier, issuer=issuer, now=now
            )
        except LogInRefusedError as error:
            error.language = language
            raise
        return Finished(token=verified, language=language)

    def _checked_tokens(
        self, code: str, *, nonce: str, verifier: str, issuer: str | None, now: datetime
    ) -> VerifiedToken:
        """The code exchanged and the ID token checked."""
        if issuer is not None and issuer != self.issuer.issuer:
            raise LogInRefusedError(Refusal.ISSUER, "the answer names another issuer (mix-up)")
        metadata = self.metadata()
        tokens = self._post(
            str(metadata["token_endpoint"]),
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            },
            dpop=self.issuer.log_in.dpop,
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise LogInRefusedError(Refusal.ISSUER, "no ID token")
        assert self._verifier is not None
        try:
            verified = self._verifier.verify(id_token, now=now)
        except TokenRejectedError as error:
            raise LogInRefusedError(Refusal.INVALID, str(error)) from error
        claims = verified.claims
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise LogInRefusedError(Refusal.NONCE)
        if claims.get("azp", self.issuer.log_in.client_id) != self.issuer.log_in.client_id:
            raise LogInRefusedError(Refusal.INVALID, "the token was issued to another client")
        if self.issuer.required_acr and claims.get("acr") not in self.issuer.required_acr:
            raise LogInRefusedError(Refusal.ACR)
        return verified

    def end_session_url(self, *, post_log_out: str) -> str | None:
        """Where the browser ends its session at the issuer (RP-initiated log-out), if the
        issuer offers it."""
        endpoint = self.metadata().get("end_session_endpoint")
        if endpoint is None:
            return None
        query = urlencode(
            {"client_id": self.issuer.log_in.client_id, "post_logout_redirect_uri": post_log_out}
        )
        return f"{endpoint}?{query}"

    def _post(self, url: str, form: Mapping[str, str], *, dpop: bool = False) -> dict[str, Any]:
        """A form post authenticated with a fresh client assertion; with `dpop`, bound by a
        proof, sent again once with the server's nonce when the issuer asks for one."""
        dpop_key = ECKey.generate_key("P-256") if dpop else None
        server_nonce: str | None = None
        for _attempt in range(2):
            headers = {"Accept": "application/json"}
            if dpop_key is not None:
                headers["DPoP"] = _dpop_proof(dpop_key, url=url, nonce=server_nonce)
            body = {**form, **self._client_assertion()}
            try:
                answer = httpx.post(url, data=body, headers=headers, timeout=HTTP_TIMEOUT_SECONDS)
                content = answer.json()
            except (httpx.HTTPError, ValueError) as error:
                raise LogInRefusedError(Refusal.ISSUER, "the issuer did not answer") from error
            nonce = answer.headers.get("DPoP-Nonce")
            if (
                dpop_key is not None
                and server_nonce is None
                and nonce
                and isinstance(content, dict)
                and content.get("error") == "use_dpop_nonce"
            ):
                server_nonce = nonce
                continue
            if answer.is_success and isinstance(content, dict):
                return content
            said = content if isinstance(content, dict) else {}
            raise LogInRefusedError(
                Refusal.ISSUER,
                f"the issuer refused: {said.get('error')} ({said.get('error_description')})",
            )
        raise LogInRefusedError(Refusal.ISSUER, "the issuer kept asking for a DPoP nonce")

    def _client_assertion(self) -> dict[str, str]:
        kid, key = self._keys.signing_key()
        assertion = private_key_jwt_sign(
            key,
            client_id=self.issuer.log_in.client_id,
            # The issuer identifier as audience, which HelseID and ID-porten both take.
            token_endpoint=self.issuer.issuer,
            alg="ES256",
            header={"kid": kid, "typ": "JWT"},
            expires_in=ASSERTION_SECONDS,
        )
        return {
            "client_id": self.issuer.log_in.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion.decode() if isinstance(assertion, bytes) else assertion,
        }


def _dpop_proof(key: ECKey, *, url: str, nonce: str | None) -> str:
    """A DPoP proof (RFC 9449) for one POST to `url`."""
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": url,
        "iat": int(time.time()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jose_jwt.encode(header, claims, key)


def log_in_clients(
    issuers: list[OidcIssuerSetting],
    *,
    pool: ConnectionPool,
    clock: Clock,
    keys: ClientKeys,
    redirect_base: str,
) -> dict[str, OidcClient]:
    """The configured issuers that log people in, by their name in the log-in address; each
    comes back to ``<redirect_base>/<name>/callback``."""
    clients = {}
    for item in issuers:
        issuer = LogInIssuer.from_setting(item)
        if issuer is not None:
            clients[issuer.log_in.name] = OidcClient(
                issuer,
                pool=pool,
                clock=clock,
                keys=keys,
                redirect_uri=f"{redirect_base}/{issuer.log_in.name}/callback",
            )
    return clients


SESSION_MARK: Final = "hs_"
"""Begins a HelseID or ID-porten log-in's session cookie, telling it from a built-in token."""


@dataclass(frozen=True, slots=True)
class OidcSession:
    issuer: str
    subject: str
    kind: Literal["staff", "patient"]
    issuer_name: str


def do_open_oidc_session(
    conn: psycopg.Connection,
    *,
    issuer: str,
    subject: str,
    kind: str,
    issuer_name: str,
    now: datetime,
    lifetime: timedelta,
) -> str:
    """A new session; its key, which only the cookie holds (the table has its SHA-256).
    Sessions past their end are cleared on the way (an indexed delete)."""
    session = SESSION_MARK + secrets.token_urlsafe(32)
    conn.execute("DELETE FROM oidc_sessions WHERE expires_at < %s", (now,))
    conn.execute(
        "INSERT INTO oidc_sessions (id_hash, issuer, subject, kind, issuer_name, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (_digest(session), issuer, subject, kind, issuer_name, now + lifetime),
    )
    return session


def oidc_session(conn: psycopg.Connection, *, session: str, now: datetime) -> OidcSession | None:
    """The open session `session` names, or None: one primary-key lookup per request."""
    if not session.startswith(SESSION_MARK):
        return None
    row = conn.execute(
        "SELECT issuer, subject, kind, issuer_name FROM oidc_sessions"
        " WHERE id_hash = %s AND expires_at > %s",
        (_digest(session), now),
    ).fetchone()
    return None if row is None else OidcSession(*row)


def do_end_oidc_session(conn: psycopg.Connection, *, session: str) -> None:
    conn.execute("DELETE FROM oidc_sessions WHERE id_hash = %s", (_digest(session),))
