"""The whole app (``heimvakt.app.create_app``) serving in a benchmark's own process, with the
built-in issuer, and a token for the staff member the benchmark acts as."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from care.people import do_link_identity
from core.auth import LocalIssuer, TokenVerifier
from core.clock import Clock
from core.settings import Settings
from heimvakt.app import create_app
from heimvakt.worker import ingest_limits

ISSUER = "http://bench/auth"


def served_app(
    pool: ConnectionPool,
    clock: Clock,
    *,
    staff_id: UUID,
    subject: str = "bench",
    issuer_key: bytes | None = None,
) -> tuple[FastAPI, str]:
    """The app, with no rules after storing, and a bearer token (or session cookie) for
    `staff_id`, who logs in as `subject` (one app per subject and database). Apps serving
    one database from several processes need the same `issuer_key`."""
    issuer = LocalIssuer(
        pool,
        issuer=ISSUER,
        audience="heimvakt",
        clock=clock,
        token_lifetime=timedelta(hours=8),
        issuer_key=issuer_key or AESGCM.generate_key(bit_length=256),
    )
    issuer.ensure_signing_key()
    with pool.connection() as conn:
        do_link_identity(conn, issuer=ISSUER, subject=subject, staff_id=staff_id)
    app = create_app(
        pool=pool,
        clock=clock,
        broker_connected=lambda: True,
        after_store=[],
        limits=ingest_limits(Settings()),
        verifier=TokenVerifier([], local=issuer),
        public_url="http://testserver",
        local_issuer=issuer,
        secure_cookie=False,
    )
    return app, issuer.issue(subject=subject)
