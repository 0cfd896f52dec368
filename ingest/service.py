"""The MQTT ingest worker: receive, decode, store in batches, then acknowledge.

A message is acknowledged to the broker only after the batch holding it is committed, so a
crash at any point means redelivery (and dedupe), never loss. Receiving and writing are joined
by a bounded queue: when the database is slow the queue fills, paho's network thread blocks,
and the broker holds the rest. Bad input becomes quarantine rows; it never stops the worker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import paho.mqtt.client as paho
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from core.clock import Clock
from core.mqtt import BrokerAddress
from ingest import metrics, topics
from ingest.decoding import Decoded, Envelope
from ingest.native import decode_native
from ingest.quarantine import QuarantineEntry, QuarantineReason
from ingest.store import AfterStore, store_batch

log = logging.getLogger(__name__)

_RETRY_FIRST_SECONDS = 0.1
_RETRY_MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class IngestConfig:
    topic_prefix: str
    client_id: str
    batch_size: int
    flush_seconds: float
    queue_size: int
    max_future: timedelta


@dataclass(frozen=True, slots=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    session: int
    """Which connection delivered it: a packet id is only meaningful on its own connection."""
    received_at: datetime


class MqttIngest:
    """One ingest worker. `start` returns at once; `stop` commits what was received."""

    def __init__(
        self,
        *,
        broker: BrokerAddress,
        pool: ConnectionPool,
        config: IngestConfig,
        clock: Clock,
        after_store: Sequence[AfterStore] = (),
    ) -> None:
        self._pool = pool
        self._config = config
        self._clock = clock
        self._after_store = tuple(after_store)
        self._inbox: queue.Queue[_Inbound] = queue.Queue(maxsize=config.queue_size)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._session = 0
        self._writer = threading.Thread(
            target=self._write_forever, name="ingest-writer", daemon=True
        )
        self._client = broker.client(client_id=config.client_id, persistent=True, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._broker = broker

    def start(self) -> None:
        self._writer.start()
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=30)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving, then store what was received; unacknowledged messages come back later."""
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._writer.join(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: paho.ReasonCode,
        properties: paho.Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self._session += 1
        client.subscribe(topics.readings_subscription(self._config.topic_prefix), qos=1)
        self._connected.set()
        log.info("connected to the broker (session present: %s)", flags.session_present)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: paho.ReasonCode,
        properties: paho.Properties | None,
    ) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self._inbox.put(
            _Inbound(
                topic=message.topic,
                payload=message.payload,
                mid=message.mid,
                qos=message.qos,
                session=self._session,
                received_at=self._clock.now(),
            )
        )

    def _write_forever(self) -> None:
        while not (self._stopping.is_set() and self._inbox.empty()):
            batch = self._collect()
            if batch:
                self._store_until_done([self._decode(item) for item in batch])
                self._acknowledge(batch)

    def _collect(self) -> list[_Inbound]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self._config.flush_seconds
        while len(batch) < self._config.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _decode(self, item: _Inbound) -> Decoded:
        device_id = topics.device_from_topic(self._config.topic_prefix, item.topic)
        if device_id is None:
            entry = QuarantineEntry(
                received_at=item.received_at,
                channel="mqtt",
                topic=item.topic,
                device_id=None,
                msg_id=None,
                reason=QuarantineReason.INVALID_TOPIC,
                detail=f"topic {item.topic!r} does not name a device",
                payload=item.payload,
            )
            return Decoded(quarantined=[entry])
        envelope = Envelope(
            channel="mqtt",
            topic=item.topic,
            device_id=device_id,
            received_at=item.received_at,
            max_future=self._config.max_future,
        )
        return decode_native(item.payload, envelope)

    def _store_until_done(self, decoded: list[Decoded]) -> None:
        """Store decoded messages, waiting out database outages; never gives up on good data.

        If the database refuses the batch itself (a bug, or input we failed to anticipate), the
        messages are stored one by one, so only the culprit ends in quarantine.
        """
        delay = _RETRY_FIRST_SECONDS
        while True:
            try:
                with metrics.COMMIT_SECONDS.time(), self._pool.connection() as conn:
                    store_batch(
                        conn,
                        channel="mqtt",
                        candidates=[c for d in decoded for c in d.candidates],
                        quarantined=[q for d in decoded for q in d.quarantined],
                        after_store=self._after_store,
                    )
                metrics.BATCH_SIZE.observe(len(decoded))
                return
            except (psycopg.OperationalError, PoolTimeout) as error:
                metrics.STORE_RETRIES.inc()
                log.warning("database unavailable (%s); retrying in %.1fs", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)
            except psycopg.Error as error:
                if len(decoded) > 1:
                    log.warning(
                        "the database refused a batch (%s); storing it message by message", error
                    )
                    for item in decoded:
                        self._store_until_done([item])
                elif decoded[0].candidates:
                    self._store_until_done([_as_storage_error(decoded[0], error)])
                else:
                    log.exception("the database refused a quarantine entry; it is dropped")
                return

    def _acknowledge(self, batch: list[_Inbound]) -> None:
        for item in batch:
            if item.qos > 0 and item.session == self._session:
                self._client.ack(item.mid, item.qos)


def _as_storage_error(item: Decoded, error: psycopg.Error) -> Decoded:
    detail = str(error).replace("\x00", "")[:500]
    refused = [
        QuarantineEntry(
            received_at=c.received_at,
            channel="mqtt",
            topic=None,
            device_id=c.device_id,
            msg_id=c.msg_id,
            reason=QuarantineReason.STORAGE_ERROR,
            detail=detail,
            payload=repr(c).encode(),
        )
        for c in item.candidates
    ]
    return Decoded(quarantined=[*refused, *item.quarantined])
