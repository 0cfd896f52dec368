"""Runtime settings, read once from the environment (prefix ``HEIMVAKT_``) by the composition root.

Nothing reads settings at import time: the composition root builds one `Settings` and passes
it (or the parts a component needs) down, so tests can run several configurations in one process.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Passwords that appear in examples and templates. A production deployment that still uses
# one of them is refused: a shipped default secret is how ThingsBoard's CVE-2023-26462 happened.
KNOWN_DEFAULT_SECRETS = frozenset(
    {"", "change-me", "changeme", "heimvakt", "postgres", "password", "secret"}
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
    mqtt_client_id: str = Field(
        default="heimvakt-ingest",
        description="Stable, so the broker keeps the ingest's persistent session over restarts.",
    )
    ingest_batch_size: int = Field(default=1000, ge=1)
    ingest_flush_seconds: float = Field(default=0.02, gt=0)
    ingest_queue_size: int = Field(default=10_000, ge=1)
    ingest_max_future_seconds: float = Field(
        default=300.0, ge=0, description="How far a device clock may run ahead of ours."
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

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.demo:
            return self
        for name, url in (
            ("HEIMVAKT_DATABASE_URL", self.database_url),
            ("HEIMVAKT_MQTT_URL", self.mqtt_url),
        ):
            if url is None:
                continue
            password = urlsplit(url).password
            if password is not None and password.lower() in KNOWN_DEFAULT_SECRETS:
                raise ValueError(
                    f"{name} uses a default password; set a real secret or run in demo mode"
                )
        return self
