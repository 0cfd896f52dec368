"""Mosquitto as an installation runs it: the project's mosquitto.conf with the dynamic-security
plugin, started by tests that check who may log in and what each may do."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from heimvakt.embedded import free_port

MOSQUITTO_DIR = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"
_SBIN_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"]
)
MOSQUITTO = shutil.which("mosquitto", path=_SBIN_PATH)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd", path=_SBIN_PATH)
DYNAMIC_SECURITY = next(
    (
        path
        for pattern in (
            "/usr/lib/*/mosquitto_dynamic_security.so",  # Debian, Ubuntu
            "/usr/lib/mosquitto_dynamic_security.so",  # the eclipse-mosquitto image
            "/usr/local/lib/mosquitto_dynamic_security.so",
            "/opt/homebrew/lib/mosquitto_dynamic_security.so",
        )
        for path in sorted(glob.glob(pattern))
    ),
    None,
)

WAIT_SECONDS = 5.0


def config_for_test(project_config: str, overrides: dict[str, str]) -> str:
    """The project's mosquitto.conf with each overridden setting's value replaced.

    Every overridden setting must appear in the project's file, so the test notices when, say,
    the password file or the ACL file is no longer configured.
    """
    lines: list[str] = []
    replaced: set[str] = set()
    for line in project_config.splitlines():
        key = line.split(maxsplit=1)[0] if line.strip() and not line.startswith("#") else ""
        if key in overrides:
            lines.append(f"{key} {overrides[key]}")
            replaced.add(key)
        else:
            lines.append(line)
    missing = overrides.keys() - replaced
    assert not missing, f"mosquitto.conf does not set {sorted(missing)}"
    return "\n".join(lines) + "\n"


def make_password_file(path: Path, passwords: dict[str, str]) -> None:
    assert MOSQUITTO_PASSWD is not None
    for index, (username, password) in enumerate(passwords.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run(
            [MOSQUITTO_PASSWD, *create, "-b", str(path), username, password],
            check=True,
            capture_output=True,
            timeout=10,
        )


def wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mosquitto exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"mosquitto did not listen on port {port} within {WAIT_SECONDS} s")


class SecuredMosquitto:
    """The project's mosquitto.conf with the dynamic-security plugin reading `config_file`, on a
    free loopback port; restartable, as an operator restarts it after a new export."""

    def __init__(self, workdir: Path, *, config_file: Path) -> None:
        assert MOSQUITTO is not None
        assert DYNAMIC_SECURITY is not None
        self.port = free_port()
        self.log = workdir / "mosquitto.log"
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            config_for_test(
                (MOSQUITTO_DIR / "mosquitto.conf").read_text(),
                {
                    "listener": f"{self.port} 127.0.0.1",
                    "plugin": DYNAMIC_SECURITY,
                    "plugin_opt_config_file": str(config_file),
                    "persistence_location": f"{workdir}/",
                    "log_dest": "stdout",
                },
            )
            # Run as whoever runs the tests: as root, Mosquitto would otherwise switch to the
            # "mosquitto" user, who cannot read the temp directory.
            + f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=output, stderr=subprocess.STDOUT
            )
        wait_until_listening(self.process, self.port, self.log)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None
