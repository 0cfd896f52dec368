"""Alert benchmark: how fast a threshold crossing becomes an alert and a notification, with
and without background load, on real services.

Run by ``make bench-alerts`` (``python -m bench.alerts``). One run starts its own Mosquitto, a
database of its own on the machine's PostgreSQL, a local SMTP server (aiosmtpd) in this
process, ``python -m heimvakt ingest`` and ``python -m heimvakt dispatch`` exactly as an
operator runs them. Probe patients, each in a unit whose nurse wants e-mail for every alert,
get one reading below their SpO2 limit at a time; the benchmark stamps

- publish → alert committed: a trigger sends ``pg_notify`` for each new alert row, and
  PostgreSQL delivers it at commit;
- publish → notification handed to SMTP: the SMTP server's time of receipt of the e-mail whose
  link names the probe patient.

The baseline is the same probes on an idle platform; the measurement adds 1,000 background
readings per second, spread over 2,000 other patients with one device each (many readings
outside their limits, so the engine also updates alerts under load). Figures go into the
"Alerts" section of docs/benchmarks.md. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import paho.mqtt.client as paho
import psycopg
from aiosmtpd.controller import Controller
from psycopg import sql

from bench.ingest import (
    DEFAULT_SERVER_URL,
    LONG_AGO,
    IngestWorker,
    bench_database,
    log_tail,
    own_mosquitto,
    paced_publish,
    percentile,
    readings_topic,
    seed,
    stop_process,
    write_section,
)
from care.models import Condition, OrganisationKind
from care.people import do_add_employment, do_create_staff
from care.service import do_create_organisation, do_create_patient, do_set_threshold
from core.auth import StaffRole
from core.mqtt import BrokerAddress
from devices.service import do_assign_device, do_register_device
from heimvakt.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
PREFIX = "bench/heimvakt"
ALERT_CHANNEL = "bench_alert"
BACKGROUND_PATIENTS = 2000
"""Patients (one device each) that the background load is spread over: a large municipality's
follow-up service. Each sends a reading every two seconds, far more than any patient does."""
TARGET_ALERT_P99_MS = 250.0
TARGET_NOTIFICATION_P99_MS = 2000.0
LINK = re.compile(r"/app/patients/([0-9a-f-]{36})")

_ALERT_TRIGGER = f"""
CREATE FUNCTION bench_notify_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{ALERT_CHANNEL}', NEW.patient_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify_alert AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION bench_notify_alert();
"""


class SmtpSink:
    """A real SMTP server; stamps when each probe patient's e-mail arrived."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.count = 0
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                now = time.monotonic()
                sink.count += 1
                parsed = email.message_from_bytes(envelope.content)  # type: ignore[attr-defined]
                body = parsed.get_payload(decode=True)
                text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
                for patient in LINK.findall(text):
                    sink.received.setdefault(patient, now)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class AlertListener:
    """LISTENs in a thread and stamps each probe patient's first alert commit."""

    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(database_url, autocommit=True)
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ALERT_CHANNEL)))
        self.committed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for note in self._conn.notifies(timeout=0.2):
                self.committed.setdefault(note.payload, time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


@dataclass(frozen=True, slots=True)
class Probe:
    patient: UUID
    device: str


def seed_probes(conn: psycopg.Connection, *, count: int, smtp_address: str) -> list[Probe]:
    """Probe patients in a unit whose nurse has e-mail for every alert."""
    unit = do_create_organisation(
        conn, name="Probe-enheten", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    nurse = do_create_staff(conn, display_name="Probe-sykepleier", role=StaffRole.NURSE).id
    do_add_employment(conn, staff_id=nurse, organisation_id=unit, since=LONG_AGO)
    conn.execute(
        "INSERT INTO notification_subscriptions (staff_id, channel, address, min_severity)"
        " VALUES (%s, 'email', %s, 'yellow')",
        (nurse, smtp_address),
    )
    probes = []
    for i in range(count):
        patient = do_create_patient(
            conn,
            display_name=f"Probe {i:03d}",
            conditions=[Condition.COPD],
            responsible_unit=unit,
            since=LONG_AGO,
        )
        do_set_threshold(
            conn, patient_id=patient, code="spo2", low=90, high=None, now=datetime.now(UTC)
        )
        device = f"probe-{i:03d}"
        do_register_device(conn, device_id=device, kind="pulse_oximeter")
        do_assign_device(conn, device_id=device, patient_id=patient, valid_from=LONG_AGO)
        probes.append(Probe(patient, device))
    return probes


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    probes: int
    alerts: list[float]
    notifications: list[float]
    background_sent: int

    def quantiles(self, values: Sequence[float]) -> tuple[float, float, float]:
        ordered = sorted(values)
        return percentile(ordered, 0.5), percentile(ordered, 0.99), ordered[-1]


def probe_run(
    *,
    label: str,
    broker_url: str,
    probes: Sequence[Probe],
    listener: AlertListener,
    sink: SmtpSink,
    background: Sequence[str],
    rate: float,
    every: float,
) -> Run:
    """Publish one crossing per probe, `every` seconds apart, with background load at `rate`."""
    sent_background: dict[str, float] = {}
    loader = None
    seconds = len(probes) * every + 2
    if rate > 0:

        def load() -> None:
            sent_background.update(
                paced_publish(broker_url, PREFIX, background, rate=rate, seconds=seconds)
            )

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(1.0)
    address = BrokerAddress.parse(broker_url)
    client = paho.Client(
        callback_api_version=paho.CallbackAPIVersion.VERSION2,
        client_id=f"bench-probe-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )
    client.connect(address.host, address.port, keepalive=60)
    client.loop_start()
    published: dict[str, float] = {}
    for probe in probes:
        body = (
            f'{{"msg_id":"{uuid.uuid4()}","measured_at":"{datetime.now(UTC).isoformat()}",'
            f'"readings":[{{"code":"59408-5","value":85,"unit":"%"}}]}}'
        )
        published[str(probe.patient)] = time.monotonic()
        client.publish(readings_topic(PREFIX, probe.device), body.encode(), qos=1)
        time.sleep(every)
    client.disconnect()
    client.loop_stop()
    if loader is not None:
        loader.join(timeout=seconds + 30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        any(p not in sink.received for p in published)
        or any(p not in listener.committed for p in published)
    ):
        time.sleep(0.2)
    return Run(
        label=label,
        probes=len(published),
        alerts=[
            (listener.committed[p] - t) * 1000
            for p, t in published.items()
            if p in listener.committed
        ],
        notifications=[
            (sink.received[p] - t) * 1000 for p, t in published.items() if p in sink.received
        ],
        background_sent=len(sent_background),
    )


def environment(database_url: str, broker_url: str, smtp_port: int) -> dict[str, str]:
    values = {
        "DATABASE_URL": database_url,
        "MQTT_URL": broker_url,
        "MQTT_CLIENT_ID": "bench-alerts-ingest",
        "MQTT_TOPIC_PREFIX": PREFIX,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "PUBLIC_URL": "https://heimvakt.example",
        "INGEST_DEVICE_RATE": 5,
        "INGEST_DEVICE_BURST": 300,
    }
    return {**os.environ, **{f"HEIMVAKT_{k}": str(v) for k, v in values.items()}}


def report(runs: Sequence[Run], *, commit: str, server: str) -> str:
    lines = [
        "## Alerts",
        "",
        f"`make bench-alerts` (python -m bench.alerts), code {commit}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, PostgreSQL {server}, own Mosquitto, "
        f"aiosmtpd in the benchmark process, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. Probe patients each get one SpO2 reading below their "
        "limit; the alert is stamped when its row commits (pg_notify from a trigger), the "
        "notification when the SMTP server has received the e-mail.",
        "",
        "| Run | Background load | Probes | Publish → alert p50 / p99 / max (ms) | "
        "Publish → SMTP p50 / p99 / max (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        a = run.quantiles(run.alerts) if run.alerts else (float("nan"),) * 3
        n = run.quantiles(run.notifications) if run.notifications else (float("nan"),) * 3
        lines.append(
            f"| {run.label} | {run.background_sent:,} readings | "
            f"{len(run.alerts)}/{run.probes} alerts, {len(run.notifications)} e-mails | "
            f"{a[0]:.0f} / {a[1]:.0f} / {a[2]:.0f} | {n[0]:.0f} / {n[1]:.0f} / {n[2]:.0f} |"
        )
    loaded = runs[-1]
    a99 = loaded.quantiles(loaded.alerts)[1]
    n99 = loaded.quantiles(loaded.notifications)[1]
    lines += [
        "",
        f"Targets at 1,000 readings/s: publish → alert p99 ≤ {TARGET_ALERT_P99_MS:.0f} ms: "
        f"**{a99:.0f} ms, {'met' if a99 <= TARGET_ALERT_P99_MS else 'not met'}**; "
        f"publish → SMTP p99 ≤ {TARGET_NOTIFICATION_P99_MS:.0f} ms: **{n99:.0f} ms, "
        f"{'met' if n99 <= TARGET_NOTIFICATION_P99_MS else 'not met'}**.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--server-url", default=os.environ.get("HEIMVAKT_BENCH_DATABASE_URL", DEFAULT_SERVER_URL)
    )
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between probes")
    parser.add_argument("--rate", type=float, default=1000.0, help="background readings/s")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="heimvakt-bench-alerts-") as tmp,
        bench_database(args.server_url) as database_url,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        broker = own_mosquitto(workdir)
        broker.start()
        stack.callback(broker.stop)
        broker_url = broker.url("bench-alerts")
        sink = SmtpSink()
        stack.callback(sink.close)
        with psycopg.connect(database_url, autocommit=True) as conn:
            background = seed(conn, patients=BACKGROUND_PATIENTS, devices=BACKGROUND_PATIENTS)
            probes = seed_probes(conn, count=args.probes * 2, smtp_address="probe@example.org")
            conn.execute(_ALERT_TRIGGER)
            server = conn.execute("SHOW server_version").fetchone()[0]
        env = environment(database_url, broker_url, sink.port)
        worker = IngestWorker(env, workdir / "ingest.log", metrics_port=free_port())
        stack.callback(worker.stop)
        worker.wait_connected(timeout=30)
        with (workdir / "dispatch.log").open("ab") as out:
            dispatcher = subprocess.Popen(
                [sys.executable, "-m", "heimvakt", "dispatch"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        stack.callback(stop_process, dispatcher)
        listener = AlertListener(database_url)
        stack.callback(listener.close)
        time.sleep(2)
        runs = [
            probe_run(
                label="Baseline: idle",
                broker_url=broker_url,
                probes=probes[: args.probes],
                listener=listener,
                sink=sink,
                background=background,
                rate=0,
                every=args.every,
            ),
            probe_run(
                label=f"Under load: {args.rate:,.0f} readings/s",
                broker_url=broker_url,
                probes=probes[args.probes :],
                listener=listener,
                sink=sink,
                background=background,
                rate=args.rate,
                every=args.every,
            ),
        ]
        if dispatcher.poll() is not None:
            raise RuntimeError("the dispatcher died:\n" + log_tail(workdir / "dispatch.log"))
        worker.check_alive()
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        ).stdout.strip()
        text = report(runs, commit=commit, server=server)
        print(text)
        if not args.no_write:
            write_section(args.output, text, heading="Alerts")


if __name__ == "__main__":
    main()
