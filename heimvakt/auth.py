"""Turns a request's credentials into the `Principal` every check in care/access.py works on.

One path for every person, whoever issued their token: the JWT is verified (core/auth.py) and
its (issuer, subject) looked up among enrolled identities (care/people.py); a built-in issuer's
token also needs its session to be open (log-out ends it). A device token (``hv_…``) becomes a
device principal, which the shared-care routes refuse; only the ingest route accepts it, for
its own device. The API reads a bearer token; the dashboard reads the same kind of token from
its session cookie and calls `principal_from_token` too.

Also here: the built-in issuer's log-in and log-out routes, with their throttle and a bound on
password checks, and `CrossSiteGuard`, which refuses a browser's cross-site state change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import anyio
import psycopg
from fastapi import APIRouter, Form, Request, Response, Security
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from care.access import NotAuthenticatedError
from care.people import principal_for
from care.proxies import InvitationError, do_accept_invitation, invitation_open
from core.api import BEARER
from core.auth import (
    ANONYMOUS,
    LocalIssuer,
    Principal,
    TokenRejectedError,
    TokenVerifier,
    session_is_open,
    smart_scopes,
)
from core.clock import Clock
from core.i18n import negotiate
from core.local_accounts import (
    LoginAttempt,
    LoginThrottle,
    do_create_local_account,
    do_log_in_local,
)
from core.oidc import SESSION_MARK, oidc_session
from core.problems import problem, problem_response
from devices.tokens import TOKEN_MARK, device_of_token

MAX_TOKEN_CHARS: Final = 8192


def principal_from_token(
    token: str | None, *, pool: ConnectionPool, clock: Clock, verifier: TokenVerifier
) -> Principal:
    """Anonymous without a token; `NotAuthenticatedError` for a token that does not hold."""
    if not token:
        return ANONYMOUS
    if len(token) > MAX_TOKEN_CHARS:
        raise NotAuthenticatedError
    now = clock.now()
    if token.startswith(TOKEN_MARK):
        with pool.connection() as conn:
            device = device_of_token(conn, token=token)
        if device is None:
            raise NotAuthenticatedError
        return Principal(kind="device", id=device, name=device, role="device")
    if token.startswith(SESSION_MARK):
        with pool.connection() as conn:
            session = oidc_session(conn, session=token, now=now)
            principal = (
                None
                if session is None
                else principal_for(
                    conn,
                    issuer=session.issuer,
                    subject=session.subject,
                    kind=session.kind,
                    hpr_number=None,
                    now=now,
                )
            )
        if principal is None:
            raise NotAuthenticatedError  # logged out, expired, or no longer enrolled
        return principal
    try:
        verified = verifier.verify(token, now=now)
    except TokenRejectedError as error:
        raise NotAuthenticatedError from error
    with pool.connection() as conn:
        if verified.session is not None and not session_is_open(conn, session=verified.session):
            raise NotAuthenticatedError  # logged out, or its password was reset
        principal = principal_for(
            conn,
            issuer=verified.issuer,
            subject=verified.subject,
            kind=verified.kind,
            hpr_number=verified.hpr_number,
            now=now,
        )
    if principal is None:
        raise NotAuthenticatedError
    return replace(principal, smart_scopes=smart_scopes(verified.claims))


_PRINCIPAL_KEY: Final = "heimvakt.principal"


class BearerAuthenticator:
    """Who sends an API request, from its bearer token: resolved once per request.

    The API's routes resolve it before FastAPI reads the request body (care.guard's
    `GuardedRoute`), so an anonymous caller is refused with 401 whatever the body holds; the
    routes' `Principal` dependency (this object) then finds the same principal.
    """

    def __init__(self, *, pool: ConnectionPool, clock: Clock, verifier: TokenVerifier) -> None:
        self._pool = pool
        self._clock = clock
        self._verifier = verifier

    async def resolve(self, request: Request) -> Principal:
        """The caller; `NotAuthenticatedError` for a token that does not hold."""
        known: Principal | None = request.scope.get(_PRINCIPAL_KEY)
        if known is None:
            credentials = await BEARER(request)
            token = None if credentials is None else credentials.credentials
            known = await anyio.to_thread.run_sync(
                lambda: principal_from_token(
                    token, pool=self._pool, clock=self._clock, verifier=self._verifier
                )
            )
            request.scope[_PRINCIPAL_KEY] = known
        return known

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Principal:
        """The FastAPI dependency every shared-care route declares (the parameter documents
        the bearer scheme in the OpenAPI document)."""
        return await self.resolve(request)


SESSION_COOKIE: Final = "heimvakt_session"


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  # the OAuth 2.0 token type, not a secret
    expires_in: int = Field(description="Seconds")


PASSWORD_CHECKS: Final = max(1, (os.cpu_count() or 2) // 2)
"""Log-ins whose password is checked at once, per process. An argon2id check takes a CPU (and
64 MiB) for about 0.2 s; without a bound a flood of log-ins takes every CPU and worker thread
from the people already logged in. Log-ins wait for a slot without holding a thread."""
WAITING_LOG_INS: Final = 16
"""Log-ins that may wait for a slot; the next one is refused at once (503, Retry-After)."""
BUSY_RETRY_SECONDS: Final = 2

LOGIN_PATH: Final = "/auth/login"
LOGOUT_PATH: Final = "/auth/logout"
ACCEPT_INVITATION_PATH: Final = "/auth/invitations/accept"


def client_address(request: Request) -> str:
    """The caller's address as the server sees it; behind a reverse proxy, uvicorn takes it
    from X-Forwarded-For when the proxy is in FORWARDED_ALLOW_IPS (docs/deploy.md)."""
    return request.client.host if request.client is not None else "unknown"


def local_issuer_router(
    *,
    pool: ConnectionPool,
    clock: Clock,
    issuer: LocalIssuer,
    verifier: TokenVerifier,
    secure_cookie: bool,
    dashboard_path: str,
) -> APIRouter:
    """Password log-in for demo and embedded mode, issuing the same kind of JWT as HelseID.

    ``POST /auth/token`` answers API clients (OAuth 2.0 password grant form); ``POST
    /auth/login`` answers the dashboard's form with an HttpOnly, SameSite=Strict session
    cookie holding the token (``POST /auth/logout``, in heimvakt/oidc_login.py, ends it).
    The JWKS lets anyone verify the tokens, as an OIDC issuer would. Both log-ins go through
    the throttle (`LoginThrottle`) and the bound on password checks.
    """
    router = APIRouter(tags=["authentication"])
    lifetime = int(issuer.token_lifetime.total_seconds())
    throttle = LoginThrottle()
    checks = anyio.CapacityLimiter(PASSWORD_CHECKS)

    def check(
        username: str, password: str, address: str
    ) -> tuple[LoginAttempt, str | None, str | None]:
        """A token only for an account that speaks for someone now: a staff member whose last
        employment has ended is refused like a wrong password. With it, the language a
        patient's record names as theirs (None for staff)."""
        with pool.connection() as conn:
            attempt = do_log_in_local(
                conn,
                username=username,
                password=password,
                address=address,
                now=clock.now(),
                throttle=throttle,
            )
            principal = (
                None
                if attempt.subject is None
                else principal_for(
                    conn,
                    issuer=issuer.config.issuer,
                    subject=str(attempt.subject),
                    kind=issuer.config.kind,
                    hpr_number=None,
                    now=clock.now(),
                )
            )
            if principal is None:
                return attempt, None, None
            language = None
            if principal.kind == "patient":
                row = conn.execute(
                    "SELECT preferred_language FROM patients WHERE id = %s", (principal.uuid,)
                ).fetchone()
                language = None if row is None else row[0]
        return attempt, issuer.issue(subject=str(attempt.subject)), language

    async def log_in(
        request: Request, username: str, password: str
    ) -> Response | tuple[str, str | None]:
        """The new token and the user's own language (if their record names one), or the
        answer that refuses the log-in (401, 429 or 503)."""
        if checks.statistics().tasks_waiting >= WAITING_LOG_INS:
            return problem(
                503,
                "too many log-ins at once; try again shortly",
                headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
            )
        attempt, token, language = await anyio.to_thread.run_sync(
            check, username, password, client_address(request), limiter=checks
        )
        if attempt.retry_after is not None:
            return problem(
                429,
                "too many failed log-ins; try again later",
                headers={"Retry-After": str(attempt.retry_after)},
            )
        if token is None:
            return problem(401, "wrong user name or password")
        return token, language

    @router.post(
        "/auth/token",
        response_model=TokenOut,
        responses={
            401: problem_response("Wrong user name or password"),
            422: problem_response("The form is not valid"),
            429: problem_response("Too many failed log-ins; see Retry-After"),
            503: problem_response("Too many log-ins at once; see Retry-After"),
        },
    )
    async def token(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        grant_type: Annotated[Literal["password"], Form()] = "password",
    ) -> Any:
        issued = await log_in(request, username, password)
        if isinstance(issued, Response):
            return issued
        return TokenOut(access_token=issued[0], expires_in=lifetime)

    @router.post(LOGIN_PATH, include_in_schema=False)
    async def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        lang: Literal["nb", "nn", "en"] | None = None,
    ) -> Response:
        """`lang`: the language the user chose on the log-in page; without it, a patient's
        dashboard speaks the language of their record, anyone else's the default."""
        issued = await log_in(request, username, password)
        if isinstance(issued, Response):
            # The form's page says why; the refusal's Retry-After rides along.
            reason = "1" if issued.status_code == 401 else "wait"
            chosen = "" if lang is None else f"&lang={lang}"
            return RedirectResponse(
                f"{dashboard_path}login?failed={reason}{chosen}",
                status_code=303,
                headers={k: v for k, v in issued.headers.items() if k == "retry-after"},
            )
        token, own_language = issued
        return signed_in(token, lang or negotiate(own_language))

    def signed_in(token: str, language: str) -> Response:
        """To the dashboard, with the session cookie holding the new token."""
        response = RedirectResponse(f"{dashboard_path}?lang={language}", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=lifetime,
            httponly=True,
            secure=secure_cookie,
            samesite="strict",
            path="/",
        )
        return response

    router.include_router(
        _invitation_router(
            pool=pool,
            clock=clock,
            issuer=issuer,
            checks=checks,
            signed_in=signed_in,
            dashboard_path=dashboard_path,
        )
    )

    @router.get("/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        return issuer.jwks()

    return router


def _invitation_router(
    *,
    pool: ConnectionPool,
    clock: Clock,
    issuer: LocalIssuer,
    checks: anyio.CapacityLimiter,
    signed_in: Callable[[str, str], Response],
    dashboard_path: str,
) -> APIRouter:
    """A relative accepts a patient's invitation (care/proxies.py) and logs in with the
    account they choose; its password is checked and hashed within the same bound on
    password work as the log-ins (`checks`)."""
    router = APIRouter(tags=["authentication"])

    def accept(code: str, username: str, password: str) -> str:
        """A new account for the relative, tied to the invitation's consent, and its first
        token; `_RefusedInvitation` says which part was refused (nothing is kept then)."""
        try:
            with pool.connection() as conn, conn.transaction():
                if not invitation_open(conn, code=code, now=clock.now()):
                    raise InvitationError("no such invitation")
                try:
                    subject = do_create_local_account(conn, username=username, password=password)
                except ValueError as error:
                    raise _RefusedInvitation("password") from error
                do_accept_invitation(
                    conn,
                    code=code,
                    issuer=issuer.config.issuer,
                    subject=str(subject),
                    now=clock.now(),
                )
        except InvitationError as error:
            raise _RefusedInvitation("invitation") from error
        except (psycopg.errors.UniqueViolation, psycopg.errors.CheckViolation) as error:
            raise _RefusedInvitation("username") from error
        return issuer.issue(subject=str(subject))

    @router.post(ACCEPT_INVITATION_PATH, include_in_schema=False)
    async def accept_invitation(
        code: Annotated[str, Form(max_length=64)],
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        lang: Literal["nb", "nn", "en"] = "nb",
    ) -> Response:
        """A relative accepts a patient's invitation (care/proxies.py) with the code they
        were given, choosing the user name and password they will log in with; logged in
        at once. Refused: back to the log-in page, which says which part to change."""
        if checks.statistics().tasks_waiting >= WAITING_LOG_INS:
            return problem(
                503,
                "too many log-ins at once; try again shortly",
                headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
            )
        try:
            token = await anyio.to_thread.run_sync(accept, code, username, password, limiter=checks)
        except _RefusedInvitation as refused:
            return RedirectResponse(
                f"{dashboard_path}login?invitation={refused.part}&lang={lang}", status_code=303
            )
        return signed_in(token, lang)

    return router


class _RefusedInvitation(Exception):
    """An invitation not accepted; `part` names what to change: the invitation code, the user
    name (taken or not allowed) or the password (too easy)."""

    def __init__(self, part: Literal["invitation", "username", "password"]) -> None:
        super().__init__(part)
        self.part = part


_STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAME_SITE_FETCHES: Final = frozenset({"same-origin", "none"})


class CrossSiteGuard:
    """Refuses (403, problem+json) a state change a browser makes from another site with this
    site's session: every unsafe request that carries the session cookie (API, dashboard
    callbacks, log-out), and the log-in and log-out forms, which a page elsewhere could
    otherwise post to log a victim's browser in as someone else.

    The browser's own word decides: ``Sec-Fetch-Site`` must be ``same-origin`` (or ``none``:
    the user's own action); without it, ``Origin`` must be this site as configured
    (HEIMVAKT_PUBLIC_URL) or as addressed (Host). A request with neither header comes from no
    browser of this decade (a script, a device) and cannot carry a victim's cookie unasked.
    SameSite=Strict already keeps the cookie off other sites' requests; this also covers a
    sibling subdomain (same-site, not same-origin) and the log-in form, which has no cookie.
    """

    def __init__(self, app: ASGIApp, *, public_url: str, session_cookie: str) -> None:
        self.app = app
        parts = urlsplit(public_url)
        self.public_origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.session_cookie = session_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _STATE_CHANGING:
            connection = HTTPConnection(scope)
            guarded = (
                scope["path"] in (LOGIN_PATH, LOGOUT_PATH, ACCEPT_INVITATION_PATH)
                or self.session_cookie in connection.cookies
            )
            if guarded and self._cross_site(connection):
                response = problem(
                    403,
                    "a request from another site may not change anything here",
                    title="Cross-site request refused",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _cross_site(self, connection: HTTPConnection) -> bool:
        fetch_site = connection.headers.get("sec-fetch-site")
        if fetch_site is not None:
            return fetch_site.lower() not in _SAME_SITE_FETCHES
        origin = connection.headers.get("origin")
        if origin is None:
            return False
        own_origin = f"{connection.url.scheme}://{connection.headers.get('host', '')}"
        return origin.lower() not in {self.public_origin, own_origin.lower()}
