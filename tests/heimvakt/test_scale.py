"""`heimvakt ingest --workers N`: one parent supervising N workers on a shared subscription.

The parent runs as the operator runs it, in its own process, against a Mosquitto of the test's
own; its workers are real `heimvakt ingest` processes that the tests kill and count.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from heimvakt.scale import Backoff, Supervisor, WorkerSlot, worker_slots
from tests.ingest.test_faults import Publisher, seed, stored, worker_env
from tests.processes import MOSQUITTO, Mosquitto, wait_for_port
from tests.support import eventually

CLIENT_ID = "scale-test"
STARTED = re.compile(r"Ingest worker (\S+) started \(pid (\d+)\)")


def two_free_ports() -> int:
    """A port P such that P and P+1 can both be bound: the parent gives its workers P, P+1.

    Drawn below the kernel's ephemeral range, so no outgoing connection (the workers' own
    database and broker sockets) can take one of them between this check and the worker's bind.
    """
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


class Parent:
    """`heimvakt ingest --workers 2` in its own process, its output (and its workers') in a log."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.metrics_port = two_free_ports()
        self.log = workdir / "parent.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "heimvakt",
                    "ingest",
                    "--workers",
                    "2",
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "HEIMVAKT_MQTT_CLIENT_ID": CLIENT_ID},
            )

    def pids(self) -> dict[str, list[int]]:
        """Every pid each worker was started as, oldest first, as the parent reported them."""
        started: dict[str, list[int]] = {}
        for client_id, pid in STARTED.findall(self.log.read_text()):
            started.setdefault(client_id, []).append(int(pid))
        return started

    def metric(self, worker: int, name: str) -> float:
        url = f"http://127.0.0.1:{self.metrics_port + worker - 1}/metrics"
        text = httpx.get(url, timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def broker_connected(self, worker: int) -> bool:
        return self.metric(worker, "heimvakt_ingest_broker_connected") == 1

    def wait_connected(self) -> None:
        for worker in (1, 2):
            try:
                wait_for_port(self.metrics_port + worker - 1, timeout=30)
            except TimeoutError as error:
                message = f"worker {worker} never served metrics:\n{self.tail()}"
                raise AssertionError(message) from error
            eventually(functools.partial(self.broker_connected, worker))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=40)

    def kill(self) -> None:
        """The parent and every worker it started, for a test that failed half-way."""
        for pid in (pid for pids in self.pids().values() for pid in pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def parent(
    tmp_path: Path,
    conn: psycopg.Connection,
    database_url: str,
    broker: Mosquitto,
    topic_prefix: str,
) -> Iterator[Parent]:
    seed(conn)
    running = Parent(tmp_path, worker_env(database_url, broker, topic_prefix))
    yield running
    if running.process.poll() is None:
        running.kill()


@pytest.fixture
def publisher(broker: Mosquitto, topic_prefix: str) -> Iterator[Publisher]:
    gateway = Publisher(broker.url(), topic_prefix)
    yield gateway
    gateway.close()


def test_each_worker_has_its_own_client_id_and_metrics_port() -> None:
    assert worker_slots("ingest", 3, 9101) == [
        WorkerSlot(number=1, client_id="ingest-1", metrics_port=9101),
        WorkerSlot(number=2, client_id="ingest-2", metrics_port=9102),
        WorkerSlot(number=3, client_id="ingest-3", metrics_port=9103),
    ]
    assert {slot.metrics_port for slot in worker_slots("ingest", 2, None)} == {None}


@pytest.mark.slow
@pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt-get install mosquitto)")
def test_two_workers_share_a_backlog_and_store_every_reading_once(
    parent: Parent, publisher: Publisher, conn: psycopg.Connection
) -> None:
    parent.wait_connected()
    assert sorted(parent.pids()) == [f"{CLIENT_ID}-1", f"{CLIENT_ID}-2"]

    n = 3000
    publisher.publish(n)
    publisher.wait_acknowledged(n)
    eventually(lambda: stored(conn)[0] >= n, timeout=60, every=0.2)

    assert stored(conn) == (n, n)
    shares = [parent.metric(w, "heimvakt_readings_stored_total") for w in (1, 2)]
    assert all(share > 0 for share in shares), shares
    assert sum(shares) == n


@pytest.mark.slow
@pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt-get install mosquitto)")
def test_a_worker_that_dies_is_started_again_under_its_own_client_id(
    parent: Parent, publisher: Publisher, conn: psycopg.Connection
) -> None:
    parent.wait_connected()
    [first] = parent.pids()[f"{CLIENT_ID}-2"]

    os.kill(first, signal.SIGKILL)

    restarted = eventually(lambda: parent.pids()[f"{CLIENT_ID}-2"][1:], timeout=20)
    assert restarted[0] != first
    parent.wait_connected()
    assert "restarting in" in parent.log.read_text()
    n = 500
    publisher.publish(n)
    eventually(lambda: stored(conn)[0] >= n, timeout=30, every=0.2)
    assert stored(conn) == (n, n)
    assert parent.process.poll() is None


@pytest.mark.slow
@pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt-get install mosquitto)")
def test_sigterm_to_the_parent_stops_every_worker_cleanly(parent: Parent) -> None:
    parent.wait_connected()
    workers = [pid for pids in parent.pids().values() for pid in pids]

    assert parent.stop() == 0

    assert not any(alive(pid) for pid in workers)
    output = parent.log.read_text()
    assert output.count("Ingest worker stopped") == 2
    assert "Ingest workers stopped" in output


def test_the_parent_gives_up_with_a_failure_status_when_a_worker_keeps_dying() -> None:
    supervisor = Supervisor(
        worker_slots("doomed", 1, None),
        command=lambda _: [sys.executable, "-c", "raise SystemExit(3)"],
        environment=lambda _: dict(os.environ),
        backoff=Backoff(first=0.01, limit=0.05, give_up_after=3),
    )

    assert supervisor.run(threading.Event()) == 1
