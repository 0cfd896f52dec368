"""Create `.venv` and install Heimvakt into it, saying what happens while it happens.

`make demo` and `make test` run this when the virtual environment is missing or pyproject.toml
changed. It installs with uv (seconds instead of minutes: parallel downloads, no bytecode
compilation) and falls back to pip when uv cannot be had. uv does not read pip's configuration,
so the package index, extra indexes, find-links directories and constraint files that pip would
use (``pip config list``: /etc/pip.conf, the user's pip.conf, PIP_* variables) are handed to uv
as options: both install from the same places.

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path

# pip option -> uv pip install option; pip's value lists are separated by white space.
_UV_OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
    "trusted-host": "--allow-insecure-host",
}
# Later sections win, as in pip: configuration files, then the install command's, then PIP_*.
_SECTIONS = ("global", "install", ":env:")


class Progress:
    """Numbered steps with the time since the start, on standard output, flushed at once."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.step = 0
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f} s] {text}", flush=True)

    def next(self, text: str) -> None:
        self.step += 1
        self.say(f"({self.step}/{self.steps}) {text}")


def pip_config(python: str) -> dict[str, str]:
    """pip's effective settings as ``{option: value}``, from ``pip config list``."""
    listed = subprocess.run(
        [python, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return parse_pip_config(listed)


def parse_pip_config(listed: str) -> dict[str, str]:
    """Parse ``section.option='value'`` lines; for one option the later section wins."""
    found: dict[tuple[int, str], str] = {}
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        section, dot, option = key.strip().rpartition(".")
        if not sep or not dot or section not in _SECTIONS:
            continue
        found[_SECTIONS.index(section), option] = value.strip().strip("'\"")
    return {option: value for (_, option), value in sorted(found.items())}


def uv_options(config: dict[str, str]) -> list[str]:
    """pip's index, find-links and constraint settings as `uv pip install` options.

    pip takes the best version from all its indexes together; uv by default takes a package
    only from the first index that has it, which can miss the version needed. The
    best-match strategy is pip's behaviour.
    """
    options = ["--index-strategy", "unsafe-best-match"]
    for pip_option, uv_option in _UV_OPTIONS.items():
        for value in config.get(pip_option, "").split():
            options += [uv_option, value]
    return options


def uv_environment(config: dict[str, str]) -> dict[str, str]:
    """The environment for uv: pip's certificate bundle, if pip has one and uv would not."""
    env = dict(os.environ)
    if "cert" in config and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = config["cert"]
    return env


def find_uv(venv_dir: Path, progress: Progress) -> str | None:
    """uv from PATH, or put beside the environment by this Python's pip (one wheel, from the
    same indexes); None if neither works."""
    on_path = shutil.which("uv")
    if on_path:
        progress.say(f"using {on_path}")
        return on_path
    target = venv_dir / "uv"
    # Twice quiet: only errors. pip's warnings about its own configuration (an index without
    # uv, running as root into a target directory) would only alarm a newcomer.
    pip = [sys.executable, "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "--upgrade", "--target", str(target), "uv"], check=False)
    uv = target / "bin" / "uv"
    if installed.returncode != 0 or not uv.exists():
        return None
    return str(uv)


def install(project: Path, venv_dir: Path, extras: str) -> None:
    progress = Progress(steps=3)
    python = str(venv_dir / "bin" / "python")
    if Path(python).exists():
        progress.next(f"reusing the virtual environment in {venv_dir}")
    else:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        progress.next(f"creating a virtual environment in {venv_dir} (Python {version})")
        # Without pip: uv puts pip in with the rest, in parallel (ensurepip alone takes seconds).
        venv.create(venv_dir, with_pip=False)
    progress.next("getting uv, a fast installer")
    uv = find_uv(venv_dir, progress)
    target = f"{project}[{extras}]" if extras else str(project)
    if uv is not None:
        progress.next("installing Heimvakt and its dependencies with uv (under a minute)")
        config = pip_config(sys.executable)
        command = [uv, "pip", "install", "--python", python, *uv_options(config)]
        command += ["-e", target, "pip"]
        env = uv_environment(config)
    else:
        progress.say("uv could not be installed; falling back to pip")
        progress.next("installing Heimvakt and its dependencies with pip (a few minutes)")
        subprocess.run([python, "-m", "ensurepip", "--upgrade"], check=True)
        command = [python, "-m", "pip", "install", "--progress-bar", "on", "-e", target]
        env = dict(os.environ)
    subprocess.run(command, check=True, env=env)
    progress.say("the virtual environment is ready")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(".venv"), help="default: .venv")
    parser.add_argument("--extras", default="dev", help="optional dependencies; default: dev")
    args = parser.parse_args(argv)
    try:
        install(Path.cwd(), args.venv, args.extras)
    except subprocess.CalledProcessError as error:
        print(f"installation failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
