"""Settings come from HEIMVAKT_* variables; default secrets are refused outside demo mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings


def test_with_nothing_set_the_platform_runs_embedded_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "HEIMVAKT_DATABASE_URL",
        "HEIMVAKT_MQTT_URL",
        "HEIMVAKT_HTTP_HOST",
        "HEIMVAKT_HTTP_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url is None
    assert settings.mqtt_url is None
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8000)


def test_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMVAKT_MQTT_URL", "mqtts://ingest:s3cr3t-long@broker.example:8883")
    monkeypatch.setenv("HEIMVAKT_HTTP_PORT", "9000")
    settings = Settings()
    assert settings.mqtt_url == "mqtts://ingest:s3cr3t-long@broker.example:8883"
    assert settings.http_port == 9000


@pytest.mark.parametrize("password", ["change-me", "heimvakt", "postgres", "password"])
def test_a_default_password_is_refused_outside_demo_mode(password: str) -> None:
    with pytest.raises(ValidationError, match="HEIMVAKT_DATABASE_URL uses a default password"):
        Settings(database_url=f"postgresql://heimvakt:{password}@db/heimvakt")
    with pytest.raises(ValidationError, match="HEIMVAKT_MQTT_URL uses a default password"):
        Settings(mqtt_url=f"mqtt://ingest:{password}@broker:1883")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://heimvakt:change%2Dme@db/heimvakt",  # percent-encoded
        "postgresql://heimvakt@db/heimvakt?password=change-me",  # libpq's query parameter
        "postgresql://heimvakt:%43hange-Me@db/heimvakt",
        "host=db user=heimvakt password=change-me",  # libpq key=value
        "postgresql://heimvakt:heimvakt-demo@db/heimvakt",
    ],
)
def test_a_default_password_is_refused_however_the_address_is_written(url: str) -> None:
    with pytest.raises(ValidationError, match="HEIMVAKT_DATABASE_URL uses a default password"):
        Settings(database_url=url)


def test_a_default_password_in_a_broker_or_mail_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="HEIMVAKT_MQTT_URL uses a default password"):
        Settings(mqtt_url="mqtt://ingest:s3cr3t-long@broker:1883?password=change%2Dme")
    with pytest.raises(ValidationError, match="HEIMVAKT_SMTP_URL uses a default password"):
        Settings(smtp_url="smtp://heimvakt:change%2Dme@smtp.example.org:587")


def test_demo_mode_accepts_the_example_passwords() -> None:
    settings = Settings(demo=True, database_url="postgresql://heimvakt:change-me@db/heimvakt")
    assert settings.demo


def test_a_url_without_a_password_is_not_a_default_secret() -> None:
    assert Settings(database_url="postgresql://postgres@127.0.0.1/heimvakt").database_url
