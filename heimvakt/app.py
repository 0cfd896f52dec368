"""The app factory: API, health, metrics and the Dash dashboard on one ASGI app and one port."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence

import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from psycopg_pool import ConnectionPool, PoolTimeout

from alerts.routes import install_alert_problems
from alerts.routes import router as alerts_router
from alerts.settings_routes import TargetPolicy, bind_target_policy
from care.national_ids import bind_national_ids
from care.routes import router as care_router
from care.routes.problems import install_care_problems
from core.api import ApiContext, bind_api_context
from core.auth import LocalIssuer, TokenVerifier
from core.clock import Clock
from core.links import DASHBOARD_PATH
from core.loops import Pulse
from core.problems import install_problem_handlers, problem
from core.settings import HTTP_MAX_BODY_BYTES
from core.timescale_jobs import JobCollector
from dashboard.app import create_dashboard
from devices.routes import router as devices_router
from fhir_facade.routes import bind_fhir
from fhir_facade.routes import public_router as fhir_public_router
from fhir_facade.routes import router as fhir_router
from fhir_facade.transaction import FhirIngest
from heimvakt.auth import (
    SESSION_COOKIE,
    BearerAuthenticator,
    CrossSiteGuard,
    local_issuer_router,
    principal_from_token,
)
from heimvakt.oidc_login import NO_OIDC, OidcLogIns, oidc_router
from heimvakt.web import (
    DOCS_ASSETS,
    BodyLimit,
    SecurityHeaders,
    content_security_policy,
    docs_assets,
    docs_router,
)
from ingest.http import ingest_router
from ingest.limits import Limits, RateLimiter
from ingest.review import bind_review_hooks
from ingest.review import router as review_router
from ingest.store import AfterStore
from quality.routes import router as quality_router

log = logging.getLogger(__name__)


def create_app(
    *,
    pool: ConnectionPool,
    clock: Clock,
    broker_connected: Callable[[], bool],
    after_store: Sequence[AfterStore],
    limits: Limits,
    verifier: TokenVerifier,
    public_url: str,
    local_issuer: LocalIssuer | None = None,
    secure_cookie: bool = True,
    loops: Iterable[Pulse] = (),
    demo_outbox: bool = False,
    max_body_bytes: int = HTTP_MAX_BODY_BYTES,
    metrics_token: str | None = None,
    allow_private_targets: bool = False,
    oidc: OidcLogIns = NO_OIDC,
) -> FastAPI:
    """The one ASGI app; `after_store` are the rules every stored reading goes through.

    Every person's request is authenticated by `verifier`; `local_issuer`, in demo and
    embedded mode only, adds password log-in that issues tokens `verifier` trusts. `loops`
    are the background loops of this process that readiness watches. Request bodies over
    `max_body_bytes` are refused on every route; `/metrics` needs `metrics_token` as a bearer
    token, or without one answers loopback clients only. Notification targets on loopback or
    private addresses are refused unless `allow_private_targets`. `oidc`: log-in through
    HelseID and ID-porten, and the keys for patients' national ids.
    """
    watched = tuple(loops)
    app = FastAPI(
        title="Heimvakt",
        version="0.1.0",
        redirect_slashes=False,
        # Served from the installation by heimvakt.web instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_problem_handlers(app)
    install_care_problems(app)
    install_alert_problems(app)
    authenticate = BearerAuthenticator(pool=pool, clock=clock, verifier=verifier)
    bind_api_context(app, ApiContext(pool=pool, clock=clock, authenticate=authenticate))
    bind_target_policy(app, TargetPolicy(allow_private_addresses=allow_private_targets))
    bind_review_hooks(app, after_store)
    bind_national_ids(app, oidc.national_ids)
    app.include_router(care_router)
    app.include_router(alerts_router)
    app.include_router(quality_router)
    # One rate per device, whichever route it sends to.
    device_rate = RateLimiter(rate=limits.device_rate, burst=limits.device_burst)
    bind_fhir(
        app,
        public_url=public_url,
        ingest=FhirIngest(after_store=tuple(after_store), limits=limits, limiter=device_rate),
    )
    app.include_router(fhir_public_router)
    app.include_router(fhir_router)
    app.include_router(devices_router)
    if local_issuer is not None:
        app.include_router(
            local_issuer_router(
                pool=pool,
                clock=clock,
                issuer=local_issuer,
                verifier=verifier,
                secure_cookie=secure_cookie,
                dashboard_path=DASHBOARD_PATH,
            )
        )
    app.include_router(
        oidc_router(
            pool=pool,
            clock=clock,
            log_ins=oidc,
            verifier=verifier,
            session_cookie=SESSION_COOKIE,
            secure_cookie=secure_cookie,
            dashboard_path=DASHBOARD_PATH,
            public_url=public_url,
        )
    )
    app.include_router(
        ingest_router(
            pool=pool, clock=clock, after_store=after_store, limits=limits, limiter=device_rate
        )
    )
    app.include_router(review_router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(DASHBOARD_PATH)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is alive (it answers); says nothing about its dependencies."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=None)
    def readyz() -> dict[str, str] | Response:
        """Ready to take traffic: the database answers, the broker connection is up, and every
        background loop (ingest writers, sweeper, dispatcher) is alive and on time.

        Anyone may ask, so the answer names what failed and nothing more: the database's
        own error (host names, user names, versions) goes to the log.
        """
        try:
            with pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout):
            log.warning("not ready: the database does not answer", exc_info=True)
            return problem(503, "the database does not answer", title="Not ready")
        if not broker_connected():
            return problem(503, "not connected to the MQTT broker", title="Not ready")
        troubles = [trouble for loop in watched if (trouble := loop.trouble()) is not None]
        if troubles:
            return problem(503, "; ".join(troubles), title="Not ready")
        return {"status": "ready"}

    database_metrics = CollectorRegistry()
    database_metrics.register(JobCollector(pool))

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics (docs/deploy.md): they reveal load and error rates, so they are
        for the operator's scraper only."""
        if not _may_read_metrics(request, metrics_token):
            return problem(
                401,
                "metrics need the configured bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return Response(
            generate_latest() + generate_latest(database_metrics), media_type=CONTENT_TYPE_LATEST
        )

    app.include_router(docs_router(openapi_url=app.openapi_url or "", title=app.title))
    app.mount(DOCS_ASSETS, docs_assets(), name="docs-assets")

    dashboard = create_dashboard(
        app,
        pool=pool,
        clock=clock,
        principal_of=lambda token: principal_from_token(
            token, pool=pool, clock=clock, verifier=verifier
        ),
        session_cookie=SESSION_COOKIE,
        url_base=DASHBOARD_PATH,
        demo_outbox=demo_outbox,
        log_in_buttons=oidc.buttons(),
        password_log_in=local_issuer is not None,
    )
    # One check for every state change a session cookie could authorise: API, dashboard
    # callbacks, log-in and log-out.
    app.add_middleware(CrossSiteGuard, public_url=public_url, session_cookie=SESSION_COOKIE)
    # Added last, so outermost: every answer, the dashboard's and the 413 included, gets the
    # headers, and no component reads a body past the limit.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(
        SecurityHeaders,
        csp=content_security_policy(dashboard.csp_hashes(), log_out_origins=oidc.issuer_origins()),
        hsts=public_url.startswith("https://"),
    )
    return app


def _may_read_metrics(request: Request, token: str | None) -> bool:
    if token is None:
        return request.client is not None and _is_loopback(request.client.host)
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
