"""Dashboard log-in through HelseID and ID-porten: the routes, who the person is, the session.

core/oidc.py runs the protocol and says what the issuer proved. Here that proof becomes a
person: an enrolled (issuer, subject) identity first; else, for staff, the one staff member
with the token's HPR number, and for patients, the patient whose national id (``pid``) was
registered here; such a match enrols the identity for the next time and is logged, so the
patient sees it. Nobody unknown is given an account: they get a page that says they are not
registered here, and the refusal is logged. Every refusal (a replayed state, a wrong nonce,
another client's ID token, too low an ``acr``) goes back to the log-in page with its reason
and leaves an access-log row. A successful log-in opens a server-side session whose random
key is the session cookie (core/oidc.py's `oidc_sessions`); log-out ends it here and sends
the browser to end its session at the issuer.

Nothing here writes the national id anywhere but the HMAC lookup: not in a log line, an
address, an access-log row or an answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode, urlsplit
from uuid import UUID

import psycopg
from fastapi import APIRouter, Query, Request, Response, Security
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials
from psycopg_pool import ConnectionPool

from care.access import Action, Interface, Reason, do_log_access
from care.national_ids import NationalIds, patient_with_national_id
from care.people import do_link_identity, principal_for
from core.api import BEARER
from core.auth import Principal, TokenRejectedError, TokenVerifier, VerifiedToken, do_end_session
from core.clock import Clock
from core.oidc import (
    ClientKeys,
    LogInRefusedError,
    OidcClient,
    Refusal,
    do_end_oidc_session,
    do_open_oidc_session,
    oidc_session,
)
from core.problems import problem, problem_response
from heimvakt.auth import LOGOUT_PATH

log = logging.getLogger(__name__)

OIDC_PATH: Final = "/auth/oidc"
MAX_PARAMETER_CHARS: Final = 2048


@dataclass(frozen=True, slots=True)
class OidcLogIns:
    """What the app needs to log people in through the configured issuers."""

    clients: dict[str, OidcClient]
    keys: ClientKeys | None
    national_ids: NationalIds | None
    session_lifetime: timedelta

    def issuer_origins(self) -> list[str]:
        """Where log-out sends the browser on to (scheme, host and port of each issuer)."""
        origins = {urlsplit(c.issuer.issuer) for c in self.clients.values()}
        return sorted(f"{o.scheme}://{o.netloc}" for o in origins)

    def buttons(self) -> list[tuple[str, str]]:
        """(address, label) of each issuer's log-in, for the log-in page."""
        return [
            (f"{OIDC_PATH}/{name}/login", client.issuer.log_in.label)
            for name, client in self.clients.items()
        ]


NO_OIDC: Final = OidcLogIns(
    clients={}, keys=None, national_ids=None, session_lifetime=timedelta(hours=8)
)


def _refused_principal(token: VerifiedToken | None) -> Principal:
    """The access log's actor for a refused log-in: the proven identity if there is one (its
    issuer and pseudonymous subject, the HPR number HelseID gave), never the national id."""
    if token is None:
        return Principal(kind="anonymous", id="", name="unknown", role="anonymous")
    return Principal(
        kind="anonymous",
        id=f"{token.issuer}#{token.subject}",
        name="unknown",
        role="anonymous",
        hpr_number=token.hpr_number,
    )


class _NobodyNowError(Exception):
    """A match that speaks for nobody now (a staff member with no current employment): its
    enrolment is undone."""


def _find_person(
    conn: psycopg.Connection,
    client: OidcClient,
    token: VerifiedToken,
    *,
    keys: NationalIds | None,
    now: datetime,
) -> tuple[Principal, Reason] | None:
    """The enrolled identity's person; else one matched by HPR number or national id, whose
    identity is enrolled now; else None. An enrolled identity is never matched again: if it
    speaks for nobody now (employment ended), the log-in is refused."""

    def enrolled() -> Principal | None:
        return principal_for(
            conn,
            issuer=token.issuer,
            subject=token.subject,
            kind=token.kind,
            hpr_number=token.hpr_number,
            now=now,
        )

    principal = enrolled()
    if principal is not None:
        return principal, Reason.LOG_IN
    known = conn.execute(
        "SELECT 1 FROM identities WHERE issuer = %s AND subject = %s",
        (token.issuer, token.subject),
    ).fetchone()
    match = None if known is not None else _match(conn, client, token, keys=keys)
    if match is None:
        return None
    try:
        with conn.transaction():
            do_link_identity(conn, issuer=token.issuer, subject=token.subject, **match)
            principal = enrolled()
            if principal is None:
                raise _NobodyNowError
    except _NobodyNowError:
        return None
    return principal, Reason.IDENTIFIED


def _match(
    conn: psycopg.Connection, client: OidcClient, token: VerifiedToken, *, keys: NationalIds | None
) -> dict[str, UUID] | None:
    """The one staff member with the token's HPR number, or the patient with its national id,
    as `do_link_identity`'s argument; None for nobody, or for an HPR number two share (an
    administrator enrols those)."""
    if token.kind == "staff" and token.hpr_number:
        rows = conn.execute(
            "SELECT id FROM staff WHERE hpr_number = %s", (token.hpr_number,)
        ).fetchall()
        return {"staff_id": rows[0][0]} if len(rows) == 1 else None
    national_id = token.claims.get(client.issuer.log_in.pid_claim)
    if token.kind != "patient" or keys is None or not isinstance(national_id, str):
        return None
    patient_id = patient_with_national_id(conn, national_id=national_id, keys=keys)
    return None if patient_id is None else {"patient_id": patient_id}


def _open_session(
    pool: ConnectionPool,
    client: OidcClient,
    token: VerifiedToken,
    *,
    log_ins: OidcLogIns,
    now: datetime,
) -> str | None:
    """A session for the person `token` proves, logged with how they were found; None for
    someone not registered here."""
    with pool.connection() as conn, conn.transaction():
        found = _find_person(conn, client, token, keys=log_ins.national_ids, now=now)
        if found is None:
            return None
        principal, reason = found
        do_log_access(
            conn,
            principal=principal,
            patient_ids=[principal.uuid] if principal.kind == "patient" else [],
            resource=f"log-in: {client.name}",
            action=Action.CREATE,
            interface=Interface.DASHBOARD,
            reason=reason,
            now=now,
        )
        return do_open_oidc_session(
            conn,
            issuer=token.issuer,
            subject=token.subject,
            kind=client.issuer.kind,
            issuer_name=client.name,
            now=now,
            lifetime=log_ins.session_lifetime,
        )


def _end_session(
    conn: psycopg.Connection,
    token: str,
    *,
    log_ins: OidcLogIns,
    verifier: TokenVerifier,
    now: datetime,
    post_log_out: str,
) -> str | None:
    """Ends the session `token` (a cookie's or a bearer's) holds, of whichever kind; where the
    browser goes next to end it at the issuer too, if anywhere."""
    found = oidc_session(conn, session=token, now=now)
    if found is not None:
        do_end_oidc_session(conn, session=token)
        client = log_ins.clients.get(found.issuer_name)
        return None if client is None else client.end_session_url(post_log_out=post_log_out)
    try:
        verified = verifier.verify(token, now=now)
    except TokenRejectedError:
        return None  # nothing to end
    if verified.session is not None:
        do_end_session(conn, session=verified.session)
    return None


def oidc_router(
    *,
    pool: ConnectionPool,
    clock: Clock,
    log_ins: OidcLogIns,
    verifier: TokenVerifier,
    session_cookie: str,
    secure_cookie: bool,
    dashboard_path: str,
    public_url: str,
) -> APIRouter:
    """The log-in through each configured issuer, the client's public key set, and the one
    log-out for every kind of session (the built-in issuer's too)."""
    router = APIRouter(tags=["authentication"])
    login_page = f"{dashboard_path}login"

    def client_named(name: str) -> OidcClient | None:
        return log_ins.clients.get(name)

    def refuse(refusal: Refusal, *, token: VerifiedToken | None, language: str | None) -> Response:
        """Back to the log-in page, which says why; the refusal in the access log (fail
        closed)."""
        with pool.connection() as conn, conn.transaction():
            do_log_access(
                conn,
                principal=_refused_principal(token),
                patient_ids=[],
                resource=f"log-in refused: {refusal}",
                action=Action.CREATE,
                interface=Interface.DASHBOARD,
                reason=Reason.LOG_IN,
                now=clock.now(),
            )
        query = {"refused": str(refusal), **({"lang": language} if language else {})}
        return RedirectResponse(f"{login_page}?{urlencode(query)}", status_code=303)

    @router.get(f"{OIDC_PATH}/jwks.json", summary="The log-in client's public keys")
    def client_jwks() -> dict[str, Any]:
        """The key HelseID and ID-porten check Heimvakt's client assertions with."""
        return {"keys": []} if log_ins.keys is None else log_ins.keys.jwks()

    @router.get(
        f"{OIDC_PATH}/{{issuer_name}}/login",
        responses={404: problem_response("No log-in is configured under this name")},
        summary="Start a log-in through HelseID or ID-porten",
        response_class=RedirectResponse,
        status_code=303,
    )
    def start(issuer_name: str, lang: Literal["nb", "nn", "en"] | None = None) -> Response:
        client = client_named(issuer_name)
        if client is None:
            return problem(404, "no log-in is configured under this name")
        try:
            started = client.start(language=lang)
        except LogInRefusedError as error:
            log.warning("log-in could not start at %s: %s", client.name, error)
            return refuse(error.refusal, token=None, language=lang)
        return RedirectResponse(started.location, status_code=303)

    @router.get(
        f"{OIDC_PATH}/{{issuer_name}}/callback",
        responses={404: problem_response("No log-in is configured under this name")},
        summary="The issuer's answer to a log-in",
        response_class=RedirectResponse,
        status_code=303,
    )
    def callback(
        issuer_name: str,
        state: Annotated[str, Query(max_length=MAX_PARAMETER_CHARS)] = "",
        code: Annotated[str, Query(max_length=MAX_PARAMETER_CHARS)] = "",
        iss: Annotated[str | None, Query(max_length=MAX_PARAMETER_CHARS)] = None,
        error: Annotated[str | None, Query(max_length=MAX_PARAMETER_CHARS)] = None,
    ) -> Response:
        client = client_named(issuer_name)
        if client is None:
            return problem(404, "no log-in is configured under this name")
        if error is not None or not code:
            log.warning("log-in refused by %s: %s", client.name, error or "no code")
            return refuse(Refusal.ISSUER, token=None, language=None)
        try:
            finished = client.finish(code=code, state=state, issuer=iss)
        except LogInRefusedError as refused:
            log.warning("log-in refused at %s: %s", client.name, refused)
            return refuse(refused.refusal, token=None, language=refused.language)
        session = _open_session(pool, client, finished.token, log_ins=log_ins, now=clock.now())
        if session is None:
            log.warning("log-in at %s by someone not registered here", client.name)
            return refuse(Refusal.UNKNOWN, token=finished.token, language=finished.language)
        target = dashboard_path + (f"?lang={finished.language}" if finished.language else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            session_cookie,
            session,
            max_age=int(log_ins.session_lifetime.total_seconds()),
            httponly=True,
            secure=secure_cookie,
            samesite="strict",
            path="/",
        )
        return response

    @router.post(LOGOUT_PATH, include_in_schema=False)
    def logout(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER),  # noqa: B008
    ) -> Response:
        """Ends the session on the server, so its cookie or token stops working everywhere at
        once (a copy of it too), clears the cookie, and for a HelseID or ID-porten session
        sends the browser on to end its session at the issuer too."""
        token = request.cookies.get(session_cookie) or (
            None if credentials is None else credentials.credentials
        )
        next_page = login_page
        if token:
            with pool.connection() as conn:
                next_page = (
                    _end_session(
                        conn,
                        token,
                        log_ins=log_ins,
                        verifier=verifier,
                        now=clock.now(),
                        post_log_out=f"{public_url.rstrip('/')}{login_page}",
                    )
                    or login_page
                )
        response = RedirectResponse(next_page, status_code=303)
        response.delete_cookie(session_cookie, path="/", secure=secure_cookie, httponly=True)
        return response

    return router
