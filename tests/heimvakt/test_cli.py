"""The `heimvakt` command: migrate, doctor, and refusing default secrets."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg
import pytest
from typer.testing import CliRunner

from care.people import principal_for
from core.auth import authenticate_local
from core.settings import Settings
from devices.tokens import device_for_token, token_prefix
from heimvakt.cli import app
from heimvakt.worker import ingest_client_id
from tests.support import seed_patient_with_device

runner = CliRunner()


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, database_url: str, mqtt_server_url: str) -> None:
    monkeypatch.setenv("HEIMVAKT_DATABASE_URL", database_url)
    monkeypatch.setenv("HEIMVAKT_MQTT_URL", mqtt_server_url)


@pytest.mark.usefixtures("configured")
def test_migrate_on_an_up_to_date_database_applies_nothing() -> None:
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "applied: nothing" in result.output


@pytest.mark.usefixtures("configured")
def test_doctor_reports_the_mode_and_versions_it_sees() -> None:
    result = runner.invoke(app, ["doctor"])
    assert "PostgreSQL 1" in result.output
    assert "mode timescaledb" in result.output or "mode postgresql" in result.output
    assert "synchronous_commit = on" in result.output
    assert "broker version:" in result.output
    if "problem:" not in result.output:
        assert result.exit_code == 0


def test_doctor_reports_an_unreachable_broker_as_a_problem(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("HEIMVAKT_DATABASE_URL", database_url)
    monkeypatch.setenv("HEIMVAKT_MQTT_URL", "mqtt://127.0.0.1:9")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "problem: cannot reach the MQTT broker" in result.output


def test_doctor_reports_pending_migrations(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = 4")
    monkeypatch.setenv("HEIMVAKT_DATABASE_URL", database_url)
    monkeypatch.delenv("HEIMVAKT_MQTT_URL", raising=False)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "migrations not applied yet" in result.output
    assert "0004_alerts" in result.output


def test_a_default_password_outside_demo_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMVAKT_DATABASE_URL", "postgresql://heimvakt:change-me@db/heimvakt")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 2
    assert "Refusing to start: HEIMVAKT_DATABASE_URL uses a default password" in result.output


@pytest.mark.usefixtures("configured")
def test_a_device_token_is_issued_once_and_can_be_revoked_by_its_prefix(
    conn_for_cli: psycopg.Connection,
) -> None:
    issued = runner.invoke(app, ["device-token", "issue", "ox-1"])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip()
    assert token.startswith("hv_")
    assert device_for_token(conn_for_cli, token=token, device_id="ox-1")

    revoked = runner.invoke(app, ["device-token", "revoke", token_prefix(token)])
    assert revoked.exit_code == 0, revoked.output
    assert not device_for_token(conn_for_cli, token=token, device_id="ox-1")


@pytest.mark.usefixtures("configured")
def test_a_token_for_an_unknown_device_is_refused() -> None:
    result = runner.invoke(app, ["device-token", "issue", "no-such-device"])
    assert result.exit_code == 1
    assert "No such device" in result.output


@pytest.fixture
def conn_for_cli(conn: psycopg.Connection) -> psycopg.Connection:
    seed_patient_with_device(conn, device_id="ox-1")
    return conn


@pytest.mark.usefixtures("configured")
def test_the_first_administrator_can_log_in_with_a_password(
    monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection
) -> None:
    monkeypatch.setenv("HEIMVAKT_ADMIN_PASSWORD", "et-langt-passord")
    result = runner.invoke(app, ["admin", "Anne Admin", "--username", "anne"])
    assert result.exit_code == 0, result.output
    subject = authenticate_local(conn, username="anne", password="et-langt-passord")
    assert subject is not None
    principal = principal_for(
        conn,
        issuer="http://127.0.0.1:8000/auth",
        subject=str(subject),
        kind="any",
        hpr_number=None,
        now=datetime.now(UTC),
    )
    assert principal is not None
    assert (principal.name, principal.role) == ("Anne Admin", "administrator")


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("password", ["heimvakt-demo", "1234567890", "passwordpassword"])
def test_outside_demo_mode_the_first_administrator_gets_no_guessable_password(
    monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection, password: str
) -> None:
    monkeypatch.setenv("HEIMVAKT_ADMIN_PASSWORD", password)
    result = runner.invoke(app, ["admin", "Anne Admin", "--username", "anne"])
    assert result.exit_code == 1
    assert "password" in result.output
    assert conn.execute("SELECT count(*) FROM local_accounts").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM staff").fetchone() == (0,)


@pytest.mark.usefixtures("configured")
def test_an_administrator_can_be_a_helseid_identity_and_half_an_identity_is_refused(
    conn: psycopg.Connection,
) -> None:
    half = runner.invoke(app, ["admin", "Halv", "--issuer", "https://helseid-sts.nhn.no"])
    assert half.exit_code == 2
    result = runner.invoke(
        app, ["admin", "Hege", "--issuer", "https://helseid-sts.nhn.no", "--subject", "abc"]
    )
    assert result.exit_code == 0, result.output
    linked = conn.execute(
        "SELECT s.role FROM identities i JOIN staff s ON s.id = i.staff_id"
        " WHERE i.issuer = 'https://helseid-sts.nhn.no' AND i.subject = 'abc'"
    ).fetchone()
    assert linked == ("administrator",)


@pytest.mark.parametrize(
    "client_id", [None, "heimvakt-ingest", "change-me"], ids=["unset", "old default", "placeholder"]
)
def test_an_ingest_on_a_configured_broker_needs_its_own_unguessable_client_id(
    monkeypatch: pytest.MonkeyPatch, database_url: str, client_id: str | None
) -> None:
    """Whoever connects with the ingest's client id takes its session and queued readings."""
    monkeypatch.setenv("HEIMVAKT_DATABASE_URL", database_url)
    monkeypatch.setenv("HEIMVAKT_MQTT_URL", "mqtt://127.0.0.1:9")
    if client_id is None:
        monkeypatch.delenv("HEIMVAKT_MQTT_CLIENT_ID", raising=False)
    else:
        monkeypatch.setenv("HEIMVAKT_MQTT_CLIENT_ID", client_id)

    for command in (["ingest"], ["ingest", "--workers", "2"], ["up"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert "Refusing to start: set HEIMVAKT_MQTT_CLIENT_ID" in result.output


def test_with_the_embedded_broker_the_ingest_client_id_is_random() -> None:
    ids = {ingest_client_id(Settings(mqtt_url=None, mqtt_client_id=None)) for _ in range(2)}

    assert len(ids) == 2
    assert all(re.fullmatch(r"heimvakt-ingest-[0-9a-f]{16}", i) for i in ids)
