"""The reference home gateway: a measurement is on disk before anything else happens to it, and
leaves the disk only once the broker has acknowledged it.

Why: the home side is where readings are lost in practice (a router restarts, the phone's app
is killed, the power goes). So each measurement gets its `msg_id` and its measured time the
moment it is taken and is committed to an SQLite outbox (synchronous, write-ahead log) before it
is published. Publishing is QoS 1; a row is deleted only on its PUBACK. After any reconnect,
and after a restart of the gateway itself, every row still in the outbox is published again in
the order it was measured. A message the broker had already taken is sent twice then; the
ingest recognises it by its `msg_id` and device key and stores it once.

One gateway speaks for one device identity (its broker login and client id, as the broker's
rules require: deploy/mosquitto/README.md); a home with several devices runs one per device.
The outbox is bounded: when it is full the oldest measurements are kept, a new one is refused
(`measure` returns False, the refusal is logged and counted) and the status report says how
many are waiting.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.clock import Clock
from core.mqtt import BrokerAddress
from devices.simulator import TYPICAL

log = logging.getLogger(__name__)

CAPACITY: Final = 100_000
"""Measurements kept at most: months of a home's readings at the usual cadence."""
WINDOW: Final = 100
"""Messages published and not yet acknowledged at most."""
STATUS_EVERY_SECONDS: Final = 300.0
TICK_SECONDS: Final = 1.0
"""The pump wakes for every event; with none it looks again after this long."""


class GatewayReading(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1, max_length=32)
    value: float = Field(allow_inf_nan=False)
    unit: str = Field(min_length=1, max_length=32)


class Measurement(BaseModel):
    """One line of the gateway's input (JSON): what an attached device measured. Without
    `measured_at` the gateway's clock stamps it; without `msg_id` the gateway gives one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    readings: list[GatewayReading] = Field(min_length=1, max_length=100)
    measured_at: datetime | None = None
    msg_id: uuid.UUID | None = None


class Outbox:
    """Measurements not yet acknowledged by the broker, in measured order, on disk."""

    def __init__(self, path: Path, *, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed row survives a power cut
        # AUTOINCREMENT: a number is never given twice, so a late acknowledgement cannot
        # delete a newer row that happened to get a freed number.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " topic TEXT NOT NULL, payload BLOB NOT NULL)"
        )

    def put(self, topic: str, payload: bytes) -> bool:
        """Keep a message; False (and nothing kept) when the outbox is full."""
        with self._lock:
            if self._count() >= self.capacity:
                return False
            self._db.execute("INSERT INTO outbox (topic, payload) VALUES (?, ?)", (topic, payload))
            return True

    def after(self, seq: int, *, limit: int) -> list[tuple[int, str, bytes]]:
        """The oldest messages numbered above `seq`."""
        with self._lock:
            return self._db.execute(
                "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()

    def remove(self, seqs: Iterable[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    def _count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(frozen=True, slots=True)
class _Acknowledged:
    mid: int


@dataclass(frozen=True, slots=True)
class _Connected:
    pass


@dataclass(frozen=True, slots=True)
class _Disconnected:
    pass


@dataclass(frozen=True, slots=True)
class _Wake:
    """A measurement was kept: publish it now rather than at the next tick."""


_Event = _Acknowledged | _Connected | _Disconnected | _Wake


class Gateway:
    """Takes measurements for one device and delivers them through its outbox.

    The network loop (paho's thread) only reports what happened into a queue; one pump thread
    publishes, matches acknowledgements to outbox rows and deletes them, so the outbox and the
    in-flight table have a single owner."""

    def __init__(
        self,
        *,
        broker: BrokerAddress,
        device_id: str,
        topic_prefix: str,
        outbox: Outbox,
        clock: Clock,
        battery: float | None = None,
        reconnect_max_seconds: int = 30,
    ) -> None:
        self.device_id = device_id
        self.refused = 0
        """Measurements refused because the outbox was full."""
        self._outbox = outbox
        self._clock = clock
        self._battery = battery
        self._readings_topic = f"{topic_prefix}/devices/{device_id}/readings"
        self._status_topic = f"{topic_prefix}/devices/{device_id}/status"
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._pump = threading.Thread(target=self._run, name="gateway-pump", daemon=True)
        self._broker = replace(broker, username=broker.username or device_id)
        self._client = self._broker.client(client_id=device_id, persistent=False)
        self._client.reconnect_delay_set(min_delay=1, max_delay=reconnect_max_seconds)
        self._client.max_inflight_messages_set(WINDOW)
        self._client.will_set(self._status_topic, json.dumps({"online": False}), qos=1)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    @property
    def backlog(self) -> int:
        """Measurements kept and not yet acknowledged by the broker."""
        return len(self._outbox)

    def start(self) -> None:
        self._client.connect_async(
            self._broker.host, self._broker.port, **self._broker.connect_options(persistent=False)
        )
        self._client.loop_start()
        self._pump.start()

    def stop(self) -> None:
        """Stop publishing; what is not acknowledged stays in the outbox for the next start."""
        self._stopping.set()
        self._pump.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def measure(self, measurement: Measurement) -> bool:
        """Keep one measurement durably (False if the outbox is full); it is sent soon after."""
        message = {
            "msg_id": str(measurement.msg_id or uuid.uuid4()),
            "measured_at": (measurement.measured_at or self._clock.now()).isoformat(),
            "readings": [r.model_dump() for r in measurement.readings],
        }
        if not self._outbox.put(self._readings_topic, json.dumps(message).encode()):
            self.refused += 1
            log.error(
                "outbox full (%d measurements waiting): measurement refused", self._outbox.capacity
            )
            return False
        self._events.put(_Wake())
        return True

    # --- paho's thread: report only ----------------------------------------------------------

    def _on_connect(
        self, _client: paho.Client, _data: Any, _flags: Any, reason: Any, *_: Any
    ) -> None:
        if not reason.is_failure:
            self._events.put(_Connected())

    def _on_disconnect(self, *_: Any) -> None:
        self._events.put(_Disconnected())

    def _on_publish(self, _client: paho.Client, _data: Any, mid: int, *_: Any) -> None:
        self._events.put(_Acknowledged(mid))

    # --- the pump ------------------------------------------------------------------------------

    def _run(self) -> None:
        connected = False
        sent_up_to = 0
        in_flight: dict[int, int] = {}  # mid -> outbox seq
        next_status = 0.0
        while not self._stopping.is_set():
            acknowledged: list[int] = []
            for event in self._drain(timeout=TICK_SECONDS):
                if isinstance(event, _Acknowledged):
                    seq = in_flight.pop(event.mid, None)
                    if seq is not None:
                        acknowledged.append(seq)
                elif isinstance(event, _Connected):
                    # Everything still in the outbox goes again, oldest first.
                    connected, sent_up_to, next_status = True, 0, 0.0
                    in_flight.clear()
                elif isinstance(event, _Disconnected):
                    connected = False
            if acknowledged:
                self._outbox.remove(acknowledged)
                if not self.backlog:  # caught up: say so now, not at the next report
                    next_status = 0.0
            if not connected:
                continue
            room = WINDOW - len(in_flight)
            for seq, topic, payload in self._outbox.after(sent_up_to, limit=room) if room else ():
                info = self._client.publish(topic, payload, qos=1)
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    break  # the connection went; the next connect sends it again
                in_flight[info.mid] = seq
                sent_up_to = seq
            now = time.monotonic()
            if now >= next_status:
                self._report_status()
                next_status = now + STATUS_EVERY_SECONDS

    def _drain(self, *, timeout: float) -> Sequence[_Event]:
        try:
            events = [self._events.get(timeout=timeout)]
        except queue.Empty:
            return ()
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def _report_status(self) -> None:
        status: dict[str, Any] = {"online": True, "backlog": self.backlog}
        if self._battery is not None:
            status["battery"] = self._battery
        self._client.publish(self._status_topic, json.dumps(status), qos=1)


def read_measurements(lines: Iterable[str]) -> Iterable[Measurement | str]:
    """Each non-blank line as a measurement, or the reason it is not one (never raises)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield Measurement.model_validate_json(line)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "line"
            yield f"line {number}: {where}: {first['msg']}"


def simulated_measurements(
    kind: str, *, every: float, stop: threading.Event
) -> Iterator[Measurement]:
    """A simulated device of `kind` attached to the gateway: a measurement now and every
    `every` seconds (devices/simulator.py's typical values, with noise) until `stop`."""
    vitals = TYPICAL[kind]
    rng = random.Random()  # noqa: S311  # simulated values, not secrets
    while True:
        readings = [
            GatewayReading(code=v.alias, value=v.value(days_ago=0, rng=rng), unit=v.unit)
            for v in vitals
        ]
        yield Measurement(readings=readings)
        if stop.wait(every):
            return


def run_gateway(
    gateway: Gateway,
    measurements: Iterable[Measurement | str],
    *,
    stop: threading.Event,
    exit_when_empty: bool,
) -> int:
    """Feed `measurements` (or, as strings, why an input line was none) to a started gateway
    and deliver until `stop` (or, with `exit_when_empty`, until the input has ended and the
    outbox is empty); returns how many were bad. A bad line is logged and skipped: it never
    stops the measurements after it. The input is read on a thread of its own, so a signal
    stops the gateway while it waits for input."""
    bad = 0
    ended = threading.Event()

    def feed() -> None:
        nonlocal bad
        for item in measurements:
            if isinstance(item, str):
                bad += 1
                log.warning("measurement skipped: %s", item)
            else:
                gateway.measure(item)
        ended.set()

    threading.Thread(target=feed, name="gateway-input", daemon=True).start()
    while not stop.wait(TICK_SECONDS):
        if exit_when_empty and ended.is_set() and not gateway.backlog:
            break
    return bad
