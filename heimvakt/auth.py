"""Turns a request's credentials into the `Principal` every check in care/access.py works on.

One path for every person, whoever issued their token: the JWT is verified (core/auth.py) and
its (issuer, subject) looked up among enrolled identities (care/people.py). A device token
(``hv_…``) becomes a device principal, which the shared-care routes refuse; only the ingest
route accepts it, for its own device. The API reads a bearer token; the dashboard reads the
same kind of token from its session cookie and calls `principal_from_token` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Form, Response, Security
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from care.access import NotAuthenticatedError
from care.people import principal_for
from core.auth import (
    ANONYMOUS,
    LocalIssuer,
    Principal,
    TokenRejectedError,
    TokenVerifier,
    authenticate_local,
)
from core.clock import Clock
from core.problems import problem, problem_response
from devices.tokens import TOKEN_MARK, device_of_token

MAX_TOKEN_CHARS: Final = 8192

_BEARER = HTTPBearer(
    auto_error=False,  # the access check answers: 401 problem+json with a challenge
    scheme_name="OIDC",
    description="An OpenID Connect access token: HelseID (staff), ID-porten (patients), or the "
    "built-in issuer's (POST /auth/token) in demo and embedded mode.",
)


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
    try:
        verified = verifier.verify(token, now=now)
    except TokenRejectedError as error:
        raise NotAuthenticatedError from error
    with pool.connection() as conn:
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
    return principal


def bearer_authenticator(
    *, pool: ConnectionPool, clock: Clock, verifier: TokenVerifier
) -> Callable[..., Principal]:
    """The FastAPI dependency every shared-care route declares."""

    def authenticate(
        credentials: HTTPAuthorizationCredentials | None = Security(_BEARER),  # noqa: B008
    ) -> Principal:
        token = None if credentials is None else credentials.credentials
        return principal_from_token(token, pool=pool, clock=clock, verifier=verifier)

    return authenticate


SESSION_COOKIE: Final = "heimvakt_session"


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  # the OAuth 2.0 token type, not a secret
    expires_in: int = Field(description="Seconds")


def local_issuer_router(
    *, pool: ConnectionPool, issuer: LocalIssuer, secure_cookie: bool, dashboard_path: str
) -> APIRouter:
    """Password log-in for demo and embedded mode, issuing the same kind of JWT as HelseID.

    ``POST /auth/token`` answers API clients (OAuth 2.0 password grant form); ``POST
    /auth/login`` answers the dashboard's form with an HttpOnly, SameSite=Strict session
    cookie holding the token. The JWKS lets anyone verify the tokens, as an OIDC issuer would.
    """
    router = APIRouter(tags=["authentication"])
    lifetime = int(issuer.token_lifetime.total_seconds())

    def log_in(username: str, password: str) -> str | None:
        with pool.connection() as conn:
            subject = authenticate_local(conn, username=username, password=password)
        return None if subject is None else issuer.issue(subject=str(subject))

    @router.post(
        "/auth/token",
        response_model=TokenOut,
        responses={
            401: problem_response("Wrong user name or password"),
            422: problem_response("The form is not valid"),
        },
    )
    def token(
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        grant_type: Annotated[Literal["password"], Form()] = "password",
    ) -> Any:
        issued = log_in(username, password)
        if issued is None:
            return problem(401, "wrong user name or password")
        return TokenOut(access_token=issued, expires_in=lifetime)

    @router.post("/auth/login", include_in_schema=False)
    def login(
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        lang: Literal["nb", "nn", "en"] = "nb",
    ) -> Response:
        issued = log_in(username, password)
        if issued is None:
            return RedirectResponse(f"{dashboard_path}login?failed=1&lang={lang}", status_code=303)
        response = RedirectResponse(f"{dashboard_path}?lang={lang}", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            issued,
            max_age=lifetime,
            httponly=True,
            secure=secure_cookie,
            samesite="strict",
            path="/",
        )
        return response

    @router.post("/auth/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse(f"{dashboard_path}login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=secure_cookie, httponly=True)
        return response

    @router.get("/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        return issuer.jwks()

    return router
