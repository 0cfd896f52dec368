"""`heimvakt ingest --workers N`: N ingest worker processes on one shared subscription.

One Python process decodes on one core, so a machine with several cores runs several workers.
Each child is a plain `heimvakt ingest` (`heimvakt.worker.run_ingest`), started with exec rather
than fork: the parent forks no threads, and every child looks in `ps` like the worker it is.
Each child has its own stable MQTT client id, so the broker keeps its persistent session over a
restart, and its own metrics port. The parent only supervises: it forwards SIGINT and SIGTERM,
restarts a child that dies (with back-off, since a child that dies at once will do so again),
and gives up, with a non-zero exit, when a child keeps dying.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_SHARED_GROUP = "ingest"
"""The group several workers share when HEIMVAKT_INGEST_SHARED_GROUP is unset: without one,
every worker would receive every message."""
STOP_GRACE_SECONDS = 30.0
"""How long children have to finish their batch and disconnect before they are killed."""
POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """One child as configured: it keeps its client id and metrics port across restarts."""

    number: int
    client_id: str
    metrics_port: int | None


@dataclass(frozen=True, slots=True)
class Backoff:
    """When a dead child is started again, and when the parent stops trying."""

    first: float = 1.0
    limit: float = 30.0
    stable_after: float = 60.0
    """A child that ran this long before it died starts over at `first`."""
    give_up_after: int = 5
    """Consecutive deaths, each before `stable_after`, after which the parent gives up."""

    def delay(self, failures: int) -> float:
        return min(self.first * 2 ** (failures - 1), self.limit)


def worker_slots(client_id: str, workers: int, metrics_port: int | None) -> list[WorkerSlot]:
    """`<client_id>-1` .. `-N`, on metrics ports P, P+1, ..."""
    return [
        WorkerSlot(
            number=n,
            client_id=f"{client_id}-{n}",
            metrics_port=None if metrics_port is None else metrics_port + n - 1,
        )
        for n in range(1, workers + 1)
    ]


def ingest_command(slot: WorkerSlot, *, verbose: bool) -> list[str]:
    """The child's command line: the same interpreter, running `heimvakt ingest` alone."""
    command = [sys.executable, "-m", "heimvakt", *(["--verbose"] if verbose else []), "ingest"]
    if slot.metrics_port is not None:
        command += ["--metrics-port", str(slot.metrics_port)]
    return command


def ingest_environment(slot: WorkerSlot, *, shared_group: str) -> dict[str, str]:
    return {
        **os.environ,
        "HEIMVAKT_MQTT_CLIENT_ID": slot.client_id,
        "HEIMVAKT_INGEST_SHARED_GROUP": shared_group,
    }


@dataclass(slots=True)
class _Child:
    slot: WorkerSlot
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts one process per slot and keeps each running until stopped.

    `command` and `environment` say how a slot's process is started: `run_workers` gives
    `heimvakt ingest`, a test may give a process that misbehaves on purpose.
    """

    def __init__(
        self,
        slots: Sequence[WorkerSlot],
        *,
        command: Callable[[WorkerSlot], list[str]],
        environment: Callable[[WorkerSlot], dict[str, str]],
        backoff: Backoff = Backoff(),  # frozen, so one shared default is safe
        grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self._children = [_Child(slot) for slot in slots]
        self._command = command
        self._environment = environment
        self._backoff = backoff
        self._grace = grace
        self._signal = signal.SIGTERM

    def run(self, stop: threading.Event) -> int:
        """Until `stop` is set or a child cannot be kept running; the exit status to report."""
        for child in self._children:
            self._start(child)
        gave_up = False
        while not stop.is_set() and not gave_up:
            now = time.monotonic()
            for child in self._children:
                gave_up = self._tend(child, now) or gave_up
            stop.wait(POLL_SECONDS)
        clean = self._stop_all()
        return 1 if gave_up or not clean else 0

    def forward(self, signum: int) -> None:
        """The signal the children get when they are stopped (the one the parent received)."""
        self._signal = signal.Signals(signum)

    def _start(self, child: _Child) -> None:
        child.process = subprocess.Popen(  # noqa: S603  # our own interpreter and arguments
            self._command(child.slot),
            env=self._environment(child.slot),
            # Its own process group: a Ctrl-C reaches the parent alone, which forwards it once.
            process_group=0,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        print(f"Ingest worker {child.slot.client_id} started (pid {child.process.pid})", flush=True)

    def _tend(self, child: _Child, now: float) -> bool:
        """Notice a death and schedule or perform a restart; True once the parent gives up."""
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._start(child)
            return False
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            return False
        lived = now - child.started_at
        child.failures = 1 if lived >= self._backoff.stable_after else child.failures + 1
        if child.failures >= self._backoff.give_up_after:
            log.error(
                "ingest worker %s died %d times in a row (last exit status %d); giving up",
                child.slot.client_id,
                child.failures,
                code,
            )
            return True
        delay = self._backoff.delay(child.failures)
        log.warning(
            "ingest worker %s (pid %d) exited with status %d after %.1f s; restarting in %.1f s",
            child.slot.client_id,
            child.process.pid,
            code,
            lived,
            delay,
        )
        child.restart_at = now + delay
        return False

    def _stop_all(self) -> bool:
        """Forward the stop to every running child and wait; True if each exited cleanly."""
        running = [
            c.process for c in self._children if c.process is not None and c.restart_at is None
        ]
        running = [p for p in running if p.poll() is None]
        for process in running:
            process.send_signal(self._signal)
        deadline = time.monotonic() + self._grace
        clean = True
        for process in running:
            try:
                code = process.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                log.error("ingest worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                code = process.wait()
            clean = clean and code == 0
        return clean


@contextmanager
def forwarding_signals(stop: threading.Event, supervisor: Supervisor) -> Iterator[None]:
    """SIGINT and SIGTERM stop the supervisor, which passes the same signal to its children."""

    def handle(signum: int, _frame: object) -> None:
        supervisor.forward(signum)
        stop.set()

    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, handle) for sig in stop_signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_workers(
    *,
    workers: int,
    client_id: str,
    shared_group: str | None,
    metrics_port: int | None,
    verbose: bool,
) -> int:
    """Run `workers` ingest processes on one shared subscription until SIGINT or SIGTERM."""
    group = shared_group or DEFAULT_SHARED_GROUP
    supervisor = Supervisor(
        worker_slots(client_id, workers, metrics_port),
        command=lambda slot: ingest_command(slot, verbose=verbose),
        environment=lambda slot: ingest_environment(slot, shared_group=group),
    )
    stop = threading.Event()
    with forwarding_signals(stop, supervisor):
        print(f"Supervising {workers} ingest workers in group {group!r}", flush=True)
        status = supervisor.run(stop)
    print("Ingest workers stopped" if status == 0 else "Ingest workers failed", flush=True)
    return status
