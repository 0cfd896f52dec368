"""The naive baseline: one INSERT and commit per message, the subscriber a first version might be.

It drains the same kind of backlog as the worker, so the ratio of their rates says what the
worker's batching, validation and deduplication buy (issue 9 asks for at least 12 times).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
from collections.abc import Iterator
from multiprocessing.synchronize import Event as ProcessEvent

import paho.mqtt.client as paho
import psycopg

from bench.harness import SPAWN
from bench.load import readings_topic
from core.mqtt import BrokerAddress

NAIVE_CLIENT_ID = "bench-naive"

_NAIVE_INSERT = """
INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, received_at)
SELECT %(device)s, %(code)s, %(at)s::timestamptz, a.patient_id, %(value)s, %(unit)s, now()
FROM device_assignments a
WHERE a.device_id = %(device)s AND a.valid_from <= %(at)s::timestamptz
  AND (a.valid_to IS NULL OR a.valid_to > %(at)s::timestamptz)
ON CONFLICT DO NOTHING
"""


def naive_subscriber(
    broker_url: str,
    prefix: str,
    database_url: str,
    receive_maximum: int,
    *,
    subscribed: ProcessEvent,
    stop: ProcessEvent,
) -> None:
    """The baseline a first version might be: one INSERT per message, committed on its own.

    Same session as the ingest (persistent MQTT 5 session, QoS 1, Receive Maximum) and the same
    durability (paho sends PUBACK when on_message returns, after the commit); the same
    attribution and dedupe in SQL; no validation, no batching. Runs in a child process.
    """
    address = BrokerAddress.parse(broker_url)
    with psycopg.connect(database_url, autocommit=True) as conn:

        def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            device = message.topic.split("/")[-2]
            body = json.loads(message.payload)
            for reading in body["readings"]:
                conn.execute(
                    _NAIVE_INSERT,
                    {
                        "device": device,
                        "at": body["measured_at"],
                        "code": reading["code"],
                        "value": reading["value"],
                        "unit": reading["unit"],
                    },
                )

        client = address.client(client_id=NAIVE_CLIENT_ID, persistent=True)
        client.on_connect = lambda client, *_: client.subscribe(readings_topic(prefix, "+"), qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = on_message
        client.connect(
            address.host,
            address.port,
            **address.connect_options(persistent=True, receive_maximum=receive_maximum),
        )
        client.loop_start()
        stop.wait(timeout=3600)
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def naive_process(
    broker_url: str, prefix: str, database_url: str, receive_maximum: int
) -> Iterator[tuple[multiprocessing.process.BaseProcess, ProcessEvent]]:
    """The naive subscriber in its own process, stopped (or killed) on the way out."""
    subscribed, stop = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(
        target=naive_subscriber,
        args=(broker_url, prefix, database_url, receive_maximum),
        kwargs={"subscribed": subscribed, "stop": stop},
        name="naive-subscriber",
    )
    process.start()
    try:
        yield process, subscribed
    finally:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
