"""The `heimvakt` command: migrate, doctor, and refusing default secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import typer
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from care.people import principal_for
from core.local_accounts import authenticate_local
from core.migrate import timescaledb_status
from core.settings import Settings
from devices.tokens import device_for_token, token_prefix
from heimvakt.cli import app
from heimvakt.worker import ingest_client_id
from tests.support import seed_patient_with_device

if TYPE_CHECKING:
    from typer._click.core import Command  # the base of typer's commands; typer names it nowhere

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
    result = runner.invoke(
        app, ["admin", "Anne Admin", "--username", "anne", "--organisation", "Sykehuset"]
    )
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
    result = runner.invoke(
        app, ["admin", "Anne Admin", "--username", "anne", "--organisation", "Sykehuset"]
    )
    assert result.exit_code == 1
    assert "password" in result.output
    assert conn.execute("SELECT count(*) FROM local_accounts").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM staff").fetchone() == (0,)


@pytest.mark.usefixtures("configured")
def test_an_administrator_can_be_a_helseid_identity_and_half_an_identity_is_refused(
    conn: psycopg.Connection,
) -> None:
    half = runner.invoke(
        app, ["admin", "Halv", "--issuer", "https://helseid-sts.nhn.no", "--organisation", "S"]
    )
    assert half.exit_code == 2
    result = runner.invoke(
        app,
        [
            "admin",
            "Hege",
            "--issuer",
            "https://helseid-sts.nhn.no",
            "--subject",
            "abc",
            "--organisation",
            "Sykehuset",
        ],
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


def commands(
    command: Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command and group under `command`, with the words that reach it.

    Typer builds its commands on a copy of click of its own (typer._click), so its classes are
    what to look for: the real click's never match."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))


def test_help_describes_every_option_with_its_default_and_no_type_placeholders() -> None:
    """Issue 17: `--verbose` had no description, `sweep --every` no unit, `up --port` no
    default and no `--host` beside it, and every flag showed a `<bool>` placeholder."""
    root = typer.main.get_command(app)
    for path, command in commands(root):
        result = runner.invoke(app, [*path, "--help"], prog_name="heimvakt")
        assert result.exit_code == 0, result.output
        assert "Warning" not in result.output
        assert not re.search(
            r"<(bool|int|float|str|text)[^>]*>", result.output.split("Options:")[-1]
        ), result.output
        for param in command.params:
            if not isinstance(param, TyperOption) or param.name == "help":
                continue
            record = param.get_help_record(typer.Context(command))
            assert record is not None, f"heimvakt {' '.join(path)} {param.name} is hidden"
            name, text = record
            assert param.help, f"heimvakt {' '.join(path)} {name} has no description"
            flag_or_unset = param.is_flag or param.default is None
            assert (
                "default" in text.lower() if flag_or_unset else f"default: {param.default}" in text
            ), f"heimvakt {' '.join(path)} {name} does not state its default: {text}"

    up = " ".join(runner.invoke(app, ["up", "--help"]).output.split())
    assert "--host ADDRESS" in up
    assert "default: 127.0.0.1" in up
    assert "--port PORT" in up
    assert "default: 8000" in up
    sweep = " ".join(runner.invoke(app, ["sweep", "--help"]).output.split())
    assert "--every SECONDS" in sweep
    assert "Seconds between" in sweep
    retention = " ".join(runner.invoke(app, ["retention", "--help"]).output.split())
    assert "The default" in retention
    assert "is not set" in retention
    main_help = runner.invoke(app, ["--help"]).output
    assert "Examples:" in main_help
    assert "heimvakt up --demo" in main_help


def test_the_host_and_port_options_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr("heimvakt.platform.run", seen.append)
    monkeypatch.delenv("HEIMVAKT_HTTP_HOST", raising=False)
    monkeypatch.setenv("HEIMVAKT_HTTP_PORT", "8123")
    assert runner.invoke(app, ["up", "--host", "0.0.0.0"]).exit_code == 0
    assert runner.invoke(app, ["up", "--port", "9001"]).exit_code == 0
    assert [(s.http_host, s.http_port) for s in seen] == [("0.0.0.0", 8123), ("127.0.0.1", 9001)]


@pytest.mark.usefixtures("configured")
def test_doctor_treats_a_timescaledb_only_migration_on_plain_postgresql_as_information(
    conn: psycopg.Connection,
) -> None:
    """Issue 17: doctor exited 1 with "run `heimvakt migrate`", and migrate could not apply
    it: a loop with no way out."""
    if timescaledb_status(conn).version is not None:
        pytest.skip("this server has TimescaleDB: nothing waits for it")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "problem:" not in result.output
    assert "no problems found" in result.output
    assert "information: these migrations wait for TimescaleDB" in result.output
    assert "0005_readings_hypertable: Readings become a hypertable" in result.output
    assert "shared_preload_libraries" in result.output

    migrate = runner.invoke(app, ["migrate"])
    assert migrate.exit_code == 0, migrate.output
    assert "0005_readings_hypertable: Readings become a hypertable" in migrate.output
    assert "skipped" not in migrate.output


@pytest.mark.usefixtures("configured")
def test_export_fhir_writes_ndjson_per_resource_type(
    conn_for_cli: psycopg.Connection, tmp_path: Path
) -> None:
    patient = conn_for_cli.execute("SELECT id FROM patients").fetchone()
    assert patient is not None
    conn_for_cli.execute(
        "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
        " received_at) VALUES ('ox-1', '59408-5', %s, %s, 95, '%%', %s)",
        (datetime(2026, 1, 2, tzinfo=UTC), patient[0], datetime(2026, 1, 2, tzinfo=UTC)),
    )
    conn_for_cli.commit()

    result = runner.invoke(
        app, ["export", "fhir", "--patient", str(patient[0]), "--out", str(tmp_path)]
    )
    refused = runner.invoke(app, ["export", "fhir", "--out", str(tmp_path)])

    assert result.exit_code == 0, result.output
    lines = {
        kind: (tmp_path / f"{kind}.ndjson").read_text().splitlines()
        for kind in ("Patient", "Device", "Observation")
    }
    assert {kind: len(found) for kind, found in lines.items()} == {
        "Patient": 1,
        "Device": 1,
        "Observation": 1,
    }
    assert "Observation.ndjson: 1" in result.output
    assert refused.exit_code == 2
