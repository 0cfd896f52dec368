"""Simulated home devices that publish native readings over MQTT, for demos and tests.

Values are drawn deterministically from (device, time), so publishing the same history twice
sends the same messages: the ingest's dedupe makes a second demo start harmless.

Each simulated device logs in to the broker as a real one does: its device id as username and as
client id, so the broker's rules (deploy/mosquitto/) let it publish on its own topics only.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from core.clock import Clock
from core.mqtt import BrokerAddress

log = logging.getLogger(__name__)


_HISTORY_HOURS = (8, 20)
"""Home measurements happen morning and evening."""


@dataclass(frozen=True, slots=True)
class Vital:
    alias: str
    unit: str
    now: float
    """The typical value today."""
    spread: float
    change_per_day: float = 0.0
    """How fast the value has moved over the past days; 0 for a stable patient."""
    decimals: int = 0
    trend_days: float = 7.0
    """Over how many days it has moved; before that it was steady."""
    live_change_per_minute: float = 0.0
    """How fast it moves once the simulator plays the present: the demo's story, a patient
    who deteriorates while the nurse watches. 0 for everyone else."""
    live_limit: float | None = None
    """Where that movement stops."""

    def value(self, *, days_ago: float, rng: random.Random, live_minutes: float = 0.0) -> float:
        centre = self.now - self.change_per_day * min(days_ago, self.trend_days)
        if self.live_change_per_minute:
            centre += self.live_change_per_minute * live_minutes
            if self.live_limit is not None:
                past = (centre - self.live_limit) * self.live_change_per_minute > 0
                centre = self.live_limit if past else centre
        return round(rng.gauss(centre, self.spread), self.decimals)


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    device_id: str
    kind: str
    vitals: tuple[Vital, ...]
    """Measured together and sent as one message (a cuff sends systolic and diastolic)."""
    every_days: int = 1
    """1: measured morning and evening; more: one morning every so many days (peak flow is
    measured weekly), as the care plan schedules it."""

    def measures_at(self, moment: datetime) -> bool:
        return self.every_days == 1 or (
            moment.hour == _HISTORY_HOURS[0] and moment.toordinal() % self.every_days == 0
        )

    @property
    def moving(self) -> bool:
        """Whether its values move while the present plays (the demo's story)."""
        return any(v.live_change_per_minute for v in self.vitals)

    def payload(
        self, *, measured_at: datetime, now: datetime, live_since: datetime | None = None
    ) -> bytes:
        """The message measured at `measured_at`; with `live_since`, the present has been
        playing since then and a moving vital has moved on."""
        rng = random.Random(f"{self.device_id}|{measured_at.isoformat()}")  # noqa: S311  # not crypto
        days_ago = (now - measured_at) / timedelta(days=1)
        live_minutes = 0.0
        if live_since is not None and measured_at > live_since:
            live_minutes = (measured_at - live_since) / timedelta(minutes=1)
        message = {
            "msg_id": str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{self.device_id}/{measured_at.isoformat()}")
            ),
            "measured_at": measured_at.isoformat(),
            "readings": [
                {
                    "code": v.alias,
                    "value": v.value(days_ago=days_ago, rng=rng, live_minutes=live_minutes),
                    "unit": v.unit,
                }
                for v in self.vitals
            ],
        }
        return json.dumps(message).encode()


TYPICAL: Final = MappingProxyType(
    {
        "pulse_oximeter": (Vital("spo2", "%", 95, 1.0), Vital("pulse", "/min", 76, 4.0)),
        "blood_pressure_monitor": (
            Vital("sys", "mm[Hg]", 132, 6.0),
            Vital("dia", "mm[Hg]", 80, 4.0),
            Vital("pulse", "/min", 72, 4.0),
        ),
        "scale": (Vital("weight", "kg", 78.0, 0.3, decimals=1),),
        "thermometer": (Vital("temp", "Cel", 36.8, 0.2, decimals=1),),
        "peak_flow_meter": (Vital("pef", "L/min", 320, 15.0),),
    }
)
"""A home patient's typical values per kind of device, for a simulated device with no story."""


def history_times(*, now: datetime, days: int) -> Iterator[datetime]:
    """Morning and evening measurement times over the past `days`, oldest first."""
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    day = start.replace(hour=0)
    while day <= now:
        for hour in _HISTORY_HOURS:
            moment = day.replace(hour=hour)
            if start <= moment <= now:
                yield moment
        day += timedelta(days=1)


class Simulator:
    """Publishes each device's history, then one live message every `interval` seconds."""

    def __init__(
        self,
        *,
        broker: BrokerAddress,
        device_password: str | None,
        topic_prefix: str,
        devices: list[SimulatedDevice],
        clock: Clock,
        interval: float,
        history_days: int,
    ) -> None:
        self._broker = broker
        self._prefix = topic_prefix
        self._devices = devices
        self._clock = clock
        self._interval = interval
        self._history_days = history_days
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        # Only the broker's address is taken from `broker`: its login is never used.
        self._clients = {
            device.device_id: replace(
                broker, username=device.device_id, password=device_password
            ).client(client_id=device.device_id, persistent=False)
            for device in devices
        }

    def start(self) -> None:
        for client in self._clients.values():
            client.connect_async(self._broker.host, self._broker.port)
            client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()

    def _publish(
        self,
        device: SimulatedDevice,
        measured_at: datetime,
        now: datetime,
        live_since: datetime | None = None,
    ) -> None:
        topic = f"{self._prefix}/devices/{device.device_id}/readings"
        payload = device.payload(measured_at=measured_at, now=now, live_since=live_since)
        self._clients[device.device_id].publish(topic, payload, qos=1)

    def _run(self) -> None:
        now = self._clock.now()
        for moment in history_times(now=now, days=self._history_days):
            for device in self._devices:
                if device.measures_at(moment):
                    self._publish(device, moment, now)
        log.info("simulator published %d days of history", self._history_days)
        live_since = self._clock.now().replace(microsecond=0)
        for device in live_order(self._devices):
            if self._stopping.wait(self._interval):
                return
            now = self._clock.now().replace(microsecond=0)
            self._publish(device, now, now, live_since)


def live_order(devices: list[SimulatedDevice]) -> Iterator[SimulatedDevice]:
    """The devices measured daily in turn, without end (one measured weekly does not measure
    again in a demo's minutes); a moving one (the story) every other turn, so the watcher sees
    it move within a couple of minutes whatever the number of devices."""
    devices = [d for d in devices if d.every_days == 1]
    moving = itertools.cycle([d for d in devices if d.moving])
    others = itertools.cycle([d for d in devices if not d.moving])
    if not any(d.moving for d in devices):
        yield from others
        return
    if all(d.moving for d in devices):
        yield from moving
        return
    for pair in zip(moving, others, strict=False):
        yield from pair
