"""Time `make demo` as a newcomer meets it: a fresh clone, empty package caches, a browser's
log-in, until the worklist answers with the demo patients; then Ctrl-C and a second start.

    python -m tools.measure_demo            # from a checkout, with the dev environment's Python

It clones the committed HEAD of this checkout into a temporary directory, gives uv and pip
empty caches there, runs `make demo` twice (each stopped with SIGINT, as Ctrl-C would), prints
the time of every line `make demo` printed and a breakdown, and exits 1 when a start took
longer than its limit (60 s for the first, 10 s for the second, as issue 17 asks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from heimvakt.demo import DEMO_PASSWORD, DEMO_STAFF, PATIENTS
from heimvakt.embedded import free_port
from tests.dashboard import routing_request

# (label, what the line `make demo` prints at that moment starts with or contains)
# (what was done by then, what `make demo` prints at that moment); the breakdown shows each
# step's time up to its mark.
MILESTONES = (
    ("make started", "(1/3)"),
    ("virtual environment created", "(2/3)"),
    ("uv fetched", "(3/3)"),
    ("dependencies installed", "the virtual environment is ready"),
    ("heimvakt imported", "Starting the database and the broker"),
    ("database and broker up", "Heimvakt starting ("),
    ("migrated, demo data seeded", "Demo data"),
    ("dashboard serving", "Dashboard: "),
)


@dataclass
class Run:
    """One `make demo`: its lines with their times since the start."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    worklist_at: float | None = None

    def at(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)

    def breakdown(self) -> list[tuple[str, float]]:
        """Each milestone reached and how long the step before it took."""
        found = [(label, self.at(needle)) for label, needle in MILESTONES]
        reached = [(label, at) for label, at in found if at is not None]
        if self.worklist_at is not None:
            reached.append(("logged-in worklist answered", self.worklist_at))
        return reached


def clean_environment(cache: Path, port: int) -> dict[str, str]:
    """The caller's environment without Heimvakt settings or an active virtual environment,
    with empty package caches and the port to listen on."""
    venv = os.environ.get("VIRTUAL_ENV")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if not venv or venv not in p]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEIMVAKT_", "UV_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(
        PATH=os.pathsep.join(path),
        UV_CACHE_DIR=str(cache / "uv"),
        PIP_CACHE_DIR=str(cache / "pip"),
        XDG_CACHE_HOME=str(cache),
        HEIMVAKT_HTTP_PORT=str(port),
    )
    return env


def worklist_answers(base: str) -> bool:
    """Log in as the demo nurse and ask for the worklist as the browser does."""
    nurse = DEMO_STAFF[0][0]
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            login = client.post("/auth/login", data={"username": nurse, "password": DEMO_PASSWORD})
            if login.status_code != 303:
                return False
            page = client.post(
                "/app/_dash-update-component", json=routing_request("/app/", "?lang=en")
            )
    except httpx.HTTPError:
        return False
    if page.status_code != 200:
        return False
    shown = json.dumps(page.json(), ensure_ascii=False)  # names as text, not \u escapes
    return all(patient.name in shown for patient in PATIENTS)


def run_demo(clone: Path, env: dict[str, str], *, port: int, timeout: float) -> Run:
    run = Run()
    started = time.monotonic()
    process = subprocess.Popen(
        ["make", "demo"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            at = time.monotonic() - started
            run.lines.append((at, line))
            print(f"  {at:6.1f} s | {line}", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while time.monotonic() - started < timeout and process.poll() is None:
            if run.at("Dashboard: ") is not None and worklist_answers(f"http://127.0.0.1:{port}"):
                run.worklist_at = time.monotonic() - started
                print(f"  {run.worklist_at:6.1f} s | (the logged-in worklist answered)")
                break
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reader.join(timeout=5)
    return run


def report(name: str, run: Run, limit: float) -> bool:
    print(f"\n{name}:")
    previous = 0.0
    for label, at in run.breakdown():
        print(f"  {label:<30} at {at:6.1f} s  (+{at - previous:5.1f} s)")
        previous = at
    if run.worklist_at is None:
        print(f"  the worklist never answered; limit {limit:.0f} s: FAIL")
        return False
    ok = run.worklist_at <= limit
    print(f"  total {run.worklist_at:.1f} s, limit {limit:.0f} s: {'ok' if ok else 'FAIL'}")
    return ok


def _load() -> str:
    """The 1, 5 and 15 minute load averages: a loaded machine explains slow figures."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="checkout to clone")
    parser.add_argument("--first-limit", type=float, default=60.0, help="seconds; default 60")
    parser.add_argument("--second-limit", type=float, default=10.0, help="seconds; default 10")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds; default 600")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="heimvakt-measure-") as temporary:
        clone = Path(temporary) / "heimvakt"
        subprocess.run(["git", "clone", "--quiet", str(args.source), str(clone)], check=True)
        commit = subprocess.run(
            ["git", "-C", str(clone), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"fresh clone of {commit} in {clone}; empty uv and pip caches", flush=True)
        print(f"load average before: {_load()}", flush=True)
        port = free_port()
        env = clean_environment(Path(temporary) / "cache", port)
        print("\nfirst `make demo`:", flush=True)
        first = run_demo(clone, env, port=port, timeout=args.timeout)
        print("\nsecond `make demo`:", flush=True)
        second = run_demo(clone, env, port=port, timeout=args.timeout)
        ok = report("first start", first, args.first_limit)
        ok = report("second start", second, args.second_limit) and ok
        print(f"\nload average after: {_load()}")
        if re.search(r"Warning", "\n".join(line for _, line in first.lines + second.lines)):
            print("a line with 'Warning' was printed")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
