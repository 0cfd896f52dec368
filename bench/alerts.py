"""Alert benchmark: how fast a deterioration becomes an episode and its one notification,
with and without background load, on real services.

Run by ``make bench-alerts`` (``python -m bench.alerts``). One run starts its own Mosquitto, a
database of its own on the machine's PostgreSQL, a local SMTP server (aiosmtpd) in this
process, ``python -m heimvakt ingest`` and ``python -m heimvakt dispatch`` exactly as an
operator runs them. Probe patients, each in a unit whose nurse wants e-mail for every alert,
get one message at a time with SpO2 below their limit and pulse above it: three rules fire
(both limits and partial NEWS2, total 5), which make one episode (alerts/episodes.py) and one
e-mail. The benchmark stamps

- publish → episode committed: a trigger sends ``pg_notify`` for each new episode row, and
  PostgreSQL delivers it at commit;
- publish → episode notification handed to SMTP: the SMTP server's time of receipt of the
  e-mail whose link names the probe patient; it also counts the e-mails per probe (one: the
  episode's, not one per rule).

The baseline is the same probes on an idle platform; the measurements add 1,000 background
readings per second, once spread over 2,000 other patients with one device each (a large
municipality's follow-up service) and once over 50 patients with ten devices each, 20 readings
per second per patient (every batch then reloads much recent history per patient). Many
background readings are outside their limits, so the engine also updates alerts under load.
Figures go into the "Alerts" section of docs/benchmarks.md. ``--smoke`` runs the same with
small numbers, writes nothing, and exits 1 if a probe gets no episode, not exactly one e-mail,
or a process dies.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import os
import re
import subprocess
import sys
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
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.harness import (
    LONG_AGO,
    ROOT,
    Checks,
    IngestWorker,
    bench_database,
    bench_parser,
    code_version,
    command_line,
    log_tail,
    machine,
    measured_line,
    met,
    own_mosquitto,
    publish,
    quantiles,
    run_main,
    stop_process,
)
from bench.load import paced_publish, readings_topic, seed, seed_copd_patient
from bench.measure import CommitListener, add_notify_trigger
from care.models import OrganisationKind
from care.people import do_add_employment, do_create_staff
from care.service import do_create_organisation
from core.auth import StaffRole
from core.limits import Limits
from core.mqtt import BrokerAddress
from devices.service import do_assign_device, do_register_device
from heimvakt.embedded import free_port

PREFIX = "bench/heimvakt"
SPO2, PULSE = "59408-5", "8867-4"
ALERT_CHANNEL = "bench_alert"
TARGET_ALERT_P99_MS = 250.0
TARGET_NOTIFICATION_P99_MS = 2000.0
LINK = re.compile(r"/app/patients/([0-9a-f-]{36})")


class SmtpSink:
    """A real SMTP server; stamps when each probe patient's e-mail arrived."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.per_patient: dict[str, int] = {}
        self.count = 0
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
                now = time.monotonic()
                sink.count += 1
                # bytes: the Controller is made without decode_data.
                assert isinstance(envelope.content, bytes)
                parsed = email.message_from_bytes(envelope.content)
                body = parsed.get_payload(decode=True)
                text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
                for patient in set(LINK.findall(text)):
                    sink.received.setdefault(patient, now)
                    sink.per_patient[patient] = sink.per_patient.get(patient, 0) + 1
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


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
        patient = seed_copd_patient(
            conn,
            display_name=f"Probe {i:03d}",
            unit=unit,
            limits=(Limits(SPO2, low=90), Limits(PULSE, low=40, high=110)),
            now=datetime.now(UTC),
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
    emails_per_probe: list[int]
    """E-mails each probe patient got: one per episode, however many rules fired."""
    background_sent: int
    loaded: bool
    """Judged against the targets (the idle baseline is not)."""


def probe_run(
    *,
    label: str,
    broker_url: str,
    probes: Sequence[Probe],
    listener: CommitListener,
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
            f'"readings":[{{"code":"{SPO2}","value":85,"unit":"%"}},'
            f'{{"code":"{PULSE}","value":120,"unit":"/min"}}]}}'
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
    time.sleep(1.0)  # a second e-mail for a probe, were there one, arrives meanwhile
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
        emails_per_probe=[sink.per_patient.get(p, 0) for p in published],
        background_sent=len(sent_background),
        loaded=rate > 0,
    )


def environment(database_url: str, broker_url: str, smtp_port: int) -> dict[str, str]:
    """The worker's and dispatcher's environment. The device rate limit is raised above the
    default (2/s, burst 120) so that paced publishing's jitter can never quarantine a reading
    of the 50-patient load, whose devices each send 2 a second."""
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


def report(runs: Sequence[Run], *, measured: str, machine_line: str) -> str:
    lines = [
        "## Alerts",
        "",
        measured,
        "",
        machine_line,
        "",
        "Own Mosquitto, aiosmtpd in the benchmark process. Probe patients each get one message"
        " with SpO2 below and pulse above their limits: three rules fire (both limits, partial"
        " NEWS2) into one episode. The episode is stamped when its row commits (pg_notify from a"
        " trigger), its notification when the SMTP server has received the e-mail; e-mails per"
        " probe counts them (one per episode, not one per rule)."
        + (
            f" With {runs[0].probes} probes per run, p99 is the slowest probe."
            if runs[0].probes < 100
            else ""
        ),
        "",
        "| Run | Background load | Probes | Publish → episode p50 / p99 / max (ms) |"
        f" Episode p99 <= {TARGET_ALERT_P99_MS:.0f} ms |"
        " Publish → episode e-mail at SMTP p50 / p99 / max (ms) |"
        f" SMTP p99 <= {TARGET_NOTIFICATION_P99_MS:.0f} ms | E-mails per probe |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        a, n = quantiles(run.alerts), quantiles(run.notifications)
        lines.append(
            f"| {run.label} | {run.background_sent:,} readings |"
            f" {len(run.alerts)}/{run.probes} episodes, {len(run.notifications)} e-mailed |"
            f" {a[0]:.0f} / {a[1]:.0f} / {a[2]:.0f} |"
            f" {met(a[1] <= TARGET_ALERT_P99_MS) if run.loaded else ''} |"
            f" {n[0]:.0f} / {n[1]:.0f} / {n[2]:.0f} |"
            f" {met(n[1] <= TARGET_NOTIFICATION_P99_MS) if run.loaded else ''} |"
            f" {min(run.emails_per_probe, default=0)}-{max(run.emails_per_probe, default=0)} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Sizes:
    probes: int
    every: float
    rate: float
    spread_patients: int
    """The first load: this many patients with one device each."""
    hot_patients: int
    """The second load: this many patients with ten devices each."""


FULL = Sizes(probes=60, every=0.5, rate=1000.0, spread_patients=2000, hot_patients=50)
SMOKE = Sizes(probes=5, every=0.1, rate=100.0, spread_patients=100, hot_patients=5)


def run(options: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path) -> list[Run]:
    sizes: Sizes = options.sizes
    checks = Checks(strict=options.smoke)
    database_url = stack.enter_context(bench_database(options.server_url))
    broker = own_mosquitto(workdir)
    broker.start()
    stack.callback(broker.stop)
    broker_url = broker.url("bench-alerts")
    sink = SmtpSink()
    stack.callback(sink.close)
    with psycopg.connect(database_url, autocommit=True) as conn:
        spread = seed(conn, patients=sizes.spread_patients, devices=sizes.spread_patients, tag="s")
        hot = seed(conn, patients=sizes.hot_patients, devices=sizes.hot_patients * 10, tag="h")
        probes = seed_probes(conn, count=sizes.probes * 3, smtp_address="probe@example.org")
        add_notify_trigger(conn, table="alert_episodes", column="patient_id", channel=ALERT_CHANNEL)
    env = environment(database_url, broker_url, sink.port)
    worker = IngestWorker(env, workdir / "ingest.log", port=free_port())
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
    listener = CommitListener(database_url, ALERT_CHANNEL)
    stack.callback(listener.close)
    time.sleep(2)
    n = sizes.probes
    plans: tuple[tuple[str, Sequence[Probe], list[str], float], ...] = (
        ("Baseline: idle", probes[:n], [], 0.0),
        (f"{sizes.rate:,.0f} readings/s over {sizes.spread_patients:,} patients",
         probes[n : 2 * n], spread, sizes.rate),
        (f"{sizes.rate:,.0f} readings/s over {sizes.hot_patients:,} patients"
         f" ({sizes.rate / sizes.hot_patients:,.0f}/s each)", probes[2 * n :], hot, sizes.rate),
    )  # fmt: skip
    runs = []
    for label, group, background, rate in plans:
        print(label, flush=True)
        runs.append(
            probe_run(
                label=label,
                broker_url=broker_url,
                probes=group,
                listener=listener,
                sink=sink,
                background=background,
                rate=rate,
                every=sizes.every,
            )
        )
        checks.expect(
            len(runs[-1].alerts) == len(group) and len(runs[-1].notifications) == len(group),
            f"{label}: {len(runs[-1].alerts)} episodes and {len(runs[-1].notifications)} e-mails"
            f" for {len(group)} probes",
        )
        checks.expect(
            set(runs[-1].emails_per_probe) == {1},
            f"{label}: e-mails per probe {sorted(set(runs[-1].emails_per_probe))}, not one",
        )
    checks.expect(
        dispatcher.poll() is None, "the dispatcher died:\n" + log_tail(workdir / "dispatch.log")
    )
    worker.check_alive()
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = bench_parser(__doc__)
    options = parser.parse_args(arguments)
    options.sizes = SMOKE if options.smoke else FULL
    command = command_line("bench.alerts", "bench-alerts", arguments)

    def body(stack: contextlib.ExitStack, workdir: Path) -> None:
        version = code_version()
        runs = run(options, stack, workdir)
        text = report(
            runs,
            measured=measured_line(command, version),
            machine_line=machine(options.server_url),
        )
        publish(options, text, heading="Alerts")

    return run_main("alerts", body)


if __name__ == "__main__":
    sys.exit(main())
