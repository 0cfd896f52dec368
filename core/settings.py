"""Runtime settings, read once from the environment (prefix ``HEIMVAKT_``) by the composition root.

Nothing reads settings at import time: the composition root builds one `Settings` and passes
it (or the parts a component needs) down, so tests can run several configurations in one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HTTP_MAX_BODY_BYTES = 1_048_576
"""The default bound on one request body: the API's largest body (a care plan) is a few KiB."""

# Passwords that appear in examples and templates, and the demo's log-in password (printed at
# every demo start). A production deployment that still uses one of them is refused: a shipped
# default secret is how ThingsBoard's CVE-2023-26462 happened.
KNOWN_DEFAULT_SECRETS = frozenset(
    {"", "change-me", "changeme", "heimvakt", "heimvakt-demo", "postgres", "password", "secret"}
)
_PASSWORD_PARAMETERS = frozenset({"password", "pass", "passwd", "pwd"})


def passwords_in(url: str) -> list[str]:
    """Every password a service address carries, decoded: in the user part, in a query
    parameter (``?password=``, as libpq reads it), or in a libpq ``key=value`` string.
    Percent-encoding hides nothing: ``change%2Dme`` is ``change-me``."""
    parts = urlsplit(url)
    found = [] if parts.password is None else [unquote(parts.password)]
    found += [
        value for name, value in parse_qsl(parts.query) if name.lower() in _PASSWORD_PARAMETERS
    ]
    try:
        libpq = psycopg.conninfo.conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        libpq = None  # not a libpq address (an MQTT or SMTP one)
    if libpq is not None:
        found.append(str(libpq))
    return found


SigningAlgorithm = Literal["RS256", "PS256", "ES256", "RS384", "PS384", "ES384"]


def _default_algorithms() -> list[SigningAlgorithm]:
    return ["RS256", "PS256", "ES256"]


class OidcLogInSetting(BaseModel):
    """How the dashboard logs people in through one issuer (authorization code flow with
    PKCE, PAR and private_key_jwt; docs/security.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9-]{1,32}$", description="In the log-in address.")
    label: str = Field(min_length=1, max_length=60, description="On the log-in button.")
    client_id: str
    scope: str = "openid"
    acr_values: str | None = Field(
        default=None, description="Requested; the ID token's acr must be in required_acr."
    )
    dpop: bool = Field(default=False, description="DPoP-bound tokens (HelseID requires them).")
    pid_claim: str = "pid"
    """The claim with the national identity number (ID-porten's ``pid``)."""


class OidcIssuerSetting(BaseModel):
    """One trusted issuer, as configured in HEIMVAKT_OIDC_ISSUERS (a JSON list)."""

    model_config = ConfigDict(extra="forbid")

    issuer: str
    audience: str
    jwks_url: str
    kind: Literal["staff", "patient"]
    required_acr: list[str] = Field(default_factory=list)
    algorithms: list[SigningAlgorithm] = Field(default_factory=_default_algorithms)
    hpr_claim: str = "helseid://claims/hpr/hpr_number"
    log_in: OidcLogInSetting | None = Field(
        default=None, description="Dashboard log-in through this issuer; unset: API tokens only."
    )


class Settings(BaseSettings):
    """Everything an operator can set. Defaults give a working single-machine demo."""

    model_config = SettingsConfigDict(env_prefix="HEIMVAKT_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL/TimescaleDB URL; unset: an embedded PostgreSQL under data_dir.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt://user:pass@host:1883, or mqtts:// for TLS; unset: an embedded broker.",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path(".heimvakt")
    demo: bool = False

    mqtt_topic_prefix: str = Field(
        default="heimvakt/v1", description="Topic root; tests give each run its own."
    )
    mqtt_client_id: str | None = Field(
        default=None,
        min_length=1,
        description="The ingest's client id: stable, so the broker keeps its persistent session "
        "over restarts, and unguessable (heimvakt-ingest-$(openssl rand -hex 8)). Required with "
        "HEIMVAKT_MQTT_URL; unset with the embedded broker: a random one per start.",
    )
    ingest_batch_size: int = Field(default=1000, ge=1)
    ingest_flush_seconds: float = Field(default=0.02, gt=0)
    ingest_queue_size: int = Field(default=10_000, ge=1)
    ingest_writers: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Writer threads per worker: while one waits for PostgreSQL the next batch "
        "is stored (core/turns.py keeps each patient's batches in order).",
    )
    ingest_max_future_seconds: float = Field(
        default=300.0, ge=0, description="How far a device clock may run ahead of ours."
    )
    ingest_max_age_days: float = Field(
        default=30.0,
        gt=0,
        description="How long ago a reading may have been measured; older ones are quarantined "
        "(a replay, or a device clock gone wrong). Also how long a msg_id is remembered.",
    )
    ingest_shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Share the device topics among every worker in this group ($share/<group>/).",
    )
    ingest_receive_maximum: int = Field(
        default=4000,
        ge=1,
        le=65535,
        description="MQTT 5 Receive Maximum: unacknowledged in flight; keep it >= 2 batches.",
    )
    ingest_max_payload_bytes: int = Field(default=65_536, ge=256)
    ingest_max_readings: int = Field(default=100, ge=1)
    ingest_device_rate: float = Field(
        default=2.0, gt=0, description="Messages per second of measured time, per device."
    )
    ingest_device_burst: int = Field(default=120, ge=1)
    db_pool_size: int = Field(default=8, ge=1)
    demo_device_password: str | None = Field(
        default=None,
        description="Broker password of every simulated device in demo mode, each logging in "
        "with its device id; unset: none (the embedded broker takes any login).",
    )

    http_max_body_bytes: int = Field(
        default=HTTP_MAX_BODY_BYTES,
        ge=65_536,
        description="Larger request bodies are refused with 413, on every route (API, "
        "dashboard callbacks, log-in).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Prometheus must send for GET /metrics; unset: /metrics "
        "answers clients on the loopback address only.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address users reach; links and the local issuer's id are built from "
        "it, never from a request's Host header.",
    )
    oidc_issuers: list[OidcIssuerSetting] = Field(
        default_factory=list, description="HelseID, ID-porten: see docs/security.md."
    )
    local_issuer: bool | None = Field(
        default=None,
        description="Password log-in with a built-in issuer; unset: on in demo and embedded mode.",
    )
    issuer_key_file: Path | None = Field(
        default=None,
        description="The key that seals the built-in issuer's signing key in the database (kept "
        "out of it, so a dump cannot sign tokens); unset: <data_dir>/issuer.key, made at first "
        "start. Every app process of one installation needs the same file.",
    )
    auth_audience: str = "heimvakt"
    token_lifetime_minutes: int = Field(default=480, ge=5, le=24 * 60)
    readings_retention_days: int | None = Field(
        default=None, ge=30, description="Delete readings older than this; unset: keep them."
    )

    def issuer_key_path(self) -> Path:
        return self.issuer_key_file or self.data_dir / "issuer.key"

    def local_issuer_enabled(self) -> bool:
        if self.local_issuer is not None:
            return self.local_issuer
        return self.demo or self.database_url is None

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.demo:
            return self
        for name, url in (
            ("HEIMVAKT_DATABASE_URL", self.database_url),
            ("HEIMVAKT_MQTT_URL", self.mqtt_url),
            ("HEIMVAKT_SMTP_URL", self.smtp_url),
        ):
            if url is None:
                continue
            if any(p.strip().lower() in KNOWN_DEFAULT_SECRETS for p in passwords_in(url)):
                raise ValueError(
                    f"{name} uses a default password; set a real secret or run in demo mode"
                )
        token = self.metrics_token
        if token is not None and token.get_secret_value().lower() in KNOWN_DEFAULT_SECRETS:
            raise ValueError("HEIMVAKT_METRICS_TOKEN is a default secret; set a real one")
        return self

    # Notifications (alerts/dispatch.py): the outbox dispatcher's channels and retries.
    smtp_url: str | None = Field(
        default=None,
        description="smtp://user:pass@host:587 (STARTTLS when offered; ?starttls=required to "
        "insist) or smtps://host:465; unset: e-mail notifications wait in the outbox.",
    )
    smtp_sender: str = "heimvakt@localhost"
    webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key that signs webhooks; required for webhooks."
    )
    webhook_allow_private_addresses: bool = Field(
        default=False,
        description="Allow notification targets (webhooks, Apprise URLs that name a host) on "
        "loopback/private addresses and unencrypted (tests, closed networks); off: encrypted, "
        "to public addresses only (SSRF), checked at subscription and at send time.",
    )
    notification_max_attempts: int = Field(default=12, ge=1)
    notification_timeout_seconds: float = Field(default=10.0, gt=0)
