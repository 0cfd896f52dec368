"""What the benchmarks send and the registry they send it for: payloads, backlogs published by
several processes, paced live readings, seeded patients and devices, and seeded history."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import paho.mqtt.client as paho
import psycopg

from bench.harness import LONG_AGO, SPAWN, PhaseBroken
from care.careplan import do_create_care_plan
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.limits import Limits
from core.mqtt import BrokerAddress
from devices.service import do_assign_device, do_register_device


@dataclass(frozen=True, slots=True)
class Measurement:
    kind: str
    code: str
    unit: str
    low: float
    high: float
    """Values are spread over [low, high]: plausible, some outside the seeded thresholds."""
    per_day: int
    """How often a patient at home takes it, for seeded history: a few times a day."""


BENCH_LIMITS = (Limits("59408-5", low=90), Limits("8867-4", high=110))
"""Each synthetic patient's care plan: some readings cross these, so rules raise alerts."""
MEASUREMENTS = (
    Measurement("pulse_oximeter", "59408-5", "%", 86, 99, per_day=3),
    Measurement("pulse_meter", "8867-4", "/min", 48, 118, per_day=3),
    Measurement("scale", "29463-7", "kg", 55, 110, per_day=1),
    Measurement("thermometer", "8310-5", "Cel", 36.0, 38.6, per_day=2),
    Measurement("respiration_sensor", "9279-1", "/min", 10, 26, per_day=2),
)


def spread_value(measurement: Measurement, device_index: int, step: int) -> float:
    spread = ((device_index * 7919 + step * 104_729) % 1000) / 1000
    return round(measurement.low + spread * (measurement.high - measurement.low), 1)


def native_message(device_index: int, step: int, measured_at: datetime) -> tuple[str, bytes]:
    """A native payload with one reading of the device's measurement; returns (msg_id, body)."""
    measurement = MEASUREMENTS[device_index % len(MEASUREMENTS)]
    value = spread_value(measurement, device_index, step)
    msg_id = str(uuid.uuid4())
    body = (
        f'{{"msg_id":"{msg_id}","measured_at":"{measured_at.isoformat()}","readings":'
        f'[{{"code":"{measurement.code}","value":{value},"unit":"{measurement.unit}"}}]}}'
    )
    return msg_id, body.encode()


def readings_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/readings"


@dataclass(frozen=True, slots=True)
class Backlog:
    """`count` messages; message i comes from device i % devices, `spacing` after its previous.

    Each device's readings are measured apart in time and arrive in measured order, so neither
    the dedupe key (device, code, measured_at) nor the measured-time rate limiter refuses any.
    """

    broker_url: str
    prefix: str
    devices: tuple[str, ...]
    count: int
    first_measured_at: datetime
    spacing: timedelta

    def indices(self, share: int, shares: int) -> Iterator[int]:
        """The messages of one publisher: all those of the devices it speaks for, in order."""
        return (i for i in range(self.count) if (i % len(self.devices)) % shares == share)

    def message(self, i: int) -> tuple[str, bytes]:
        device_index, step = i % len(self.devices), i // len(self.devices)
        measured_at = self.first_measured_at + step * self.spacing
        _, body = native_message(device_index, step, measured_at)
        return readings_topic(self.prefix, self.devices[device_index]), body


def backlog_for(broker_url: str, prefix: str, devices: Sequence[str], count: int) -> Backlog:
    """A backlog measured over the past days: ten minutes apart per device, ending an hour ago."""
    spacing = timedelta(minutes=10)
    steps = math.ceil(count / len(devices))
    first = datetime.now(UTC) - timedelta(hours=1) - steps * spacing
    return Backlog(broker_url, prefix, tuple(devices), count, first, spacing)


class _Acknowledged:
    """Counts the broker's PUBACKs to a publisher (paho's on_publish)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: object) -> None:
        self.count += 1


def publish_share(backlog: Backlog, share: int, shares: int, timeout: float) -> int:
    """Publish one publisher's part of the backlog with QoS 1; returns how many were acknowledged.

    Runs in a child process. paho is driven by hand (no network thread): publish writes to the
    socket directly, and acknowledgements are read every few hundred messages.
    """
    address = BrokerAddress.parse(backlog.broker_url)
    client = paho.Client(
        callback_api_version=paho.CallbackAPIVersion.VERSION2,
        client_id=f"bench-publisher-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )
    client.max_inflight_messages_set(0)
    acknowledged = _Acknowledged()
    client.on_publish = acknowledged
    client.connect(address.host, address.port, keepalive=60)
    deadline = time.monotonic() + timeout
    while not client.is_connected() and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    sent = 0
    for i in backlog.indices(share, shares):
        topic, body = backlog.message(i)
        client.publish(topic, body, qos=1)
        sent += 1
        if sent % 200 == 0:
            client.loop(timeout=0)
        # Packet ids wrap at 65,535: keep far fewer than that unacknowledged.
        while sent - acknowledged.count > 20_000 and time.monotonic() < deadline:
            client.loop(timeout=0.01)
    while acknowledged.count < sent and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    return acknowledged.count


def publish_backlog(backlog: Backlog, *, publishers: int, timeout: float = 1800) -> None:
    """Publish the backlog from several processes at once, for subscribers whose sessions exist
    and are offline; returns once the broker has acknowledged every message.

    That acknowledgement is the proof the broker holds the backlog: Mosquitto (persistence off)
    sends PUBACK after queueing the message for every matching session, in memory.
    """
    started = time.monotonic()
    with SPAWN.Pool(publishers) as pool:  # leaving the block terminates the pool's processes
        pending = [
            pool.apply_async(publish_share, (backlog, share, publishers, timeout))
            for share in range(publishers)
        ]
        acknowledged = sum(p.get(timeout=timeout + 30) for p in pending)
    seconds = time.monotonic() - started
    if acknowledged != backlog.count:
        raise PhaseBroken(f"the broker acknowledged {acknowledged} of {backlog.count} messages")
    print(
        f"  {backlog.count:,} readings published to {backlog.prefix} and acknowledged in"
        f" {seconds:.1f} s ({backlog.count / seconds:,.0f}/s, {publishers} publishers)",
        flush=True,
    )


def paced_publish(
    broker_url: str, prefix: str, devices: Sequence[str], *, rate: float, seconds: float
) -> dict[str, float]:
    """Publish live readings (measured now) at `rate` per second; returns msg_id -> send time.

    Each send is scheduled at start + i / rate, so a late one does not delay the rest.
    """
    address = BrokerAddress.parse(broker_url)
    client = paho.Client(
        callback_api_version=paho.CallbackAPIVersion.VERSION2,
        client_id=f"bench-live-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )
    client.max_inflight_messages_set(0)
    client.connect(address.host, address.port, keepalive=60)
    client.loop_start()
    sent: dict[str, float] = {}
    published: list[paho.MQTTMessageInfo] = []
    try:
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            device_index = i % len(devices)
            msg_id, body = native_message(device_index, i, datetime.now(UTC))
            sent[msg_id] = time.monotonic()
            topic = readings_topic(prefix, devices[device_index])
            published.append(client.publish(topic, body, qos=1))
        # Until the broker has every message: paho sends again what a dropped connection lost.
        for info in published:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


# --- Registry and history ------------------------------------------------------------------


def seed_copd_patient(
    conn: psycopg.Connection,
    *,
    display_name: str,
    unit: UUID,
    limits: Sequence[Limits],
    now: datetime,
) -> UUID:
    """A COPD patient of `unit` since long ago, with a care plan whose only limits are
    `limits` and which schedules nothing (so no adherence alert disturbs a run)."""
    patient = do_create_patient(
        conn,
        display_name=display_name,
        conditions=[Condition.COPD],
        responsible_unit=unit,
        since=LONG_AGO,
    )
    do_create_care_plan(
        conn,
        patient_id=patient,
        template="copd",
        author=None,
        now=now,
        limits=limits,
        measurements=(),
    )
    return patient


def seed(conn: psycopg.Connection, *, patients: int, devices: int, tag: str = "") -> list[str]:
    """Patients with spo2 and pulse limits, and devices assigned to them since long ago;
    device i belongs to patient i % patients. Returns the device ids.

    Through the care and device services, as the product registers them, in one transaction
    (ten thousand patients take seconds instead of a minute of commits). `tag` keeps the
    names of several seeded populations apart.
    """
    now = datetime.now(UTC)
    with conn.transaction():
        unit = do_create_organisation(
            conn, name=f"Benchmark kommune {tag}".strip(), kind=OrganisationKind.MUNICIPAL_SERVICE
        )
        patient_ids = [
            seed_copd_patient(
                conn,
                display_name=f"Syntetisk pasient {tag}{i:05d}",
                unit=unit,
                limits=BENCH_LIMITS,
                now=now,
            )
            for i in range(patients)
        ]
        device_ids = []
        for i in range(devices):
            device_id = f"bench{tag}-{i:05d}"
            kind = MEASUREMENTS[i % len(MEASUREMENTS)].kind
            do_register_device(conn, device_id=device_id, kind=kind)
            do_assign_device(
                conn, device_id=device_id, patient_id=patient_ids[i % patients],
                valid_from=LONG_AGO,
            )  # fmt: skip
            device_ids.append(device_id)
    conn.execute("ANALYZE")
    return device_ids


def seed_history(
    conn: psycopg.Connection, devices: Sequence[str], *, days: int, until: datetime
) -> int:
    """Readings of every measurement, a few a day each, for every patient over `days` days
    before `until`, written with COPY straight into readings; returns how many.

    Each patient's history is filed under its first device (the key includes the code, so
    one device can carry all five measurements). This is the history the rules read besides
    the backlog, which is what the comparison of 1 and 30 days is about.
    """
    patients: dict[uuid.UUID, str] = dict(
        conn.execute(
            "SELECT DISTINCT ON (patient_id) patient_id, device_id FROM device_assignments"
            " WHERE device_id = ANY(%s) ORDER BY patient_id, device_id",
            (list(devices),),
        ).fetchall()
    )
    rows = 0
    with (
        conn.transaction(),
        conn.cursor().copy(
            "COPY readings (device_id, code, measured_at, patient_id, value, unit, received_at)"
            " FROM STDIN"
        ) as copy,
    ):
        for n, (patient, device) in enumerate(patients.items()):
            for measurement in MEASUREMENTS:
                every = timedelta(days=1) / measurement.per_day
                for step in range(days * measurement.per_day):
                    at = until - (step + 1) * every
                    value = spread_value(measurement, n, step)
                    copy.write_row(
                        (device, measurement.code, at, patient, value, measurement.unit, at)
                    )  # fmt: skip
                    rows += 1
    conn.execute("ANALYZE readings")
    return rows
