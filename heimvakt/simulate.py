"""`heimvakt simulate`: the scenario patients (devices/scenarios.py) enrolled in a running
installation, and their past days sent through the real ingest.

Each patient gets a care plan from their scenario and a device of each kind, registered with a
broker login of its own; each device then publishes its mornings over MQTT with that login, QoS
1, native payloads, as a gateway does after an outage, and the ingest stores and evaluates them
as any other reading. The symptom answers are recorded as the patient's app records them. The
same seed gives the same readings. A message's id is derived from its device and time, so a
message the broker delivers twice is stored once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from uuid import UUID

import paho.mqtt.client as paho
import psycopg

from alerts.answers import do_record_answers
from care.careplan import do_create_care_plan
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.catalog import lookup
from core.mqtt import BrokerAddress
from devices.scenarios import Morning, Scenario
from devices.service import do_assign_device, do_provision_device

PUBLISH_TIMEOUT_SECONDS = 60.0


@dataclass(slots=True)
class Enrolled:
    """One simulated patient in the installation, with their devices' logins."""

    scenario: Scenario
    patient_id: UUID
    device_of: dict[str, str] = field(default_factory=dict)
    """LOINC code -> the id of the device that measures it."""
    passwords: dict[str, str] = field(default_factory=dict)
    """Device id -> its broker password (kept only in this run's memory)."""


def do_enrol(
    conn: psycopg.Connection,
    *,
    scenarios: Sequence[Scenario],
    tag: str,
    since: datetime,
    now: datetime,
) -> list[Enrolled]:
    """A unit of their own and, for each scenario, a patient in it from `since` with their
    devices (named ``sim-<tag>-<n>-<kind>``)."""
    unit = do_create_organisation(
        conn, name=f"Simulert kommune {tag}", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    enrolled = []
    for number, scenario in enumerate(scenarios, start=1):
        condition = Condition.COPD if scenario.template == "copd" else Condition.HEART_FAILURE
        patient = do_create_patient(
            conn,
            display_name=f"{scenario.name} ({tag}-{number})",
            conditions=[condition],
            responsible_unit=unit,
            since=since,
        )
        do_create_care_plan(
            conn, patient_id=patient, template=scenario.template, author=None, now=since,
            **scenario.plan,
        )  # fmt: skip
        one = Enrolled(scenario, patient)
        for kind, codes in scenario.devices.items():
            device_id = f"sim-{tag}-{number}-{kind}".replace("_", "-")
            provisioned = do_provision_device(
                conn, device_id=device_id, kind=kind, measurements=codes, now=now
            )
            do_assign_device(conn, device_id=device_id, patient_id=patient, valid_from=since)
            one.passwords[device_id] = provisioned.broker_password
            one.device_of.update(dict.fromkeys(codes, device_id))
        enrolled.append(one)
    return enrolled


def messages(enrolled: Sequence[Enrolled], morning: Morning) -> list[tuple[str, bytes]]:
    """One native message per device of the patient that measured that morning:
    (device id, payload). A device of a kind the scenario leaves in its box sends nothing."""
    patient = enrolled[morning.patient]
    by_device: dict[str, list[dict[str, object]]] = {}
    for code, value in morning.readings.items():
        measurement = lookup(code)
        assert measurement is not None, f"{code} is not in the catalog"
        reading = {"code": code, "value": value, "unit": measurement.unit}
        by_device.setdefault(patient.device_of[code], []).append(reading)
    at = morning.at.isoformat()
    return [
        (
            device_id,
            json.dumps(
                {
                    "msg_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{device_id}/{at}")),
                    "measured_at": at,
                    "readings": readings,
                }
            ).encode(),
        )
        for device_id, readings in by_device.items()
    ]


class DevicePublishers:
    """One MQTT session per device, each with the device's own login and client id."""

    def __init__(
        self, broker: BrokerAddress, *, topic_prefix: str, passwords: dict[str, str]
    ) -> None:
        self._prefix = topic_prefix
        self._clients: dict[str, paho.Client] = {}
        self._unacknowledged: list[paho.MQTTMessageInfo] = []
        for device_id, password in passwords.items():
            client = replace(broker, username=device_id, password=password).client(
                client_id=device_id, persistent=False
            )
            client.connect_async(
                broker.host, broker.port, **broker.connect_options(persistent=False)
            )
            client.loop_start()
            self._clients[device_id] = client

    def publish(self, device_id: str, payload: bytes) -> None:
        topic = f"{self._prefix}/devices/{device_id}/readings"
        self._unacknowledged.append(self._clients[device_id].publish(topic, payload, qos=1))

    def wait_acknowledged(self, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> bool:
        """Whether the broker acknowledged every message within `timeout` seconds."""
        for info in self._unacknowledged:
            info.wait_for_publish(timeout=timeout)
            if not info.is_published():
                return False
        return True

    def close(self) -> None:
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()


def send_mornings(
    conn: psycopg.Connection,
    enrolled: Sequence[Enrolled],
    mornings: Iterable[Morning],
    *,
    publishers: DevicePublishers,
    now: Callable[[], datetime],
) -> int:
    """Publish every morning's readings as its devices, and record its answers; returns the
    number of messages sent."""
    sent = 0
    for morning in mornings:
        for device_id, payload in messages(enrolled, morning):
            publishers.publish(device_id, payload)
            sent += 1
        if morning.symptoms is not None:
            do_record_answers(
                conn,
                patient_id=enrolled[morning.patient].patient_id,
                kind="daily_symptoms",
                answered_at=morning.at,
                answers=morning.symptoms,
                total=None,
                now=now(),
            )
    return sent


def first_morning(now: datetime, days: int) -> datetime:
    """08:00 UTC `days` days before today: the simulated month ends this morning."""
    return now.replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=days)
