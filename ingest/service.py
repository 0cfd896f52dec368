"""The MQTT ingest worker: receive, decode, store in batches, then acknowledge.

A message is acknowledged to the broker only after the batch holding it is committed, so a
crash at any point means redelivery (and dedupe), never loss. Receiving and writing are joined
by a bounded queue: when the database is slow the queue fills, paho's network thread blocks,
and the broker holds the rest. Bad input becomes quarantine rows; it never stops the worker.

Several workers share the load through an MQTT shared subscription (``$share/<group>/...``):
the broker gives each message to one of them, and redelivers a dead worker's unacknowledged
messages to the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import paho.mqtt.client as paho
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import ValidationError

from core.clock import Clock
from core.mqtt import BrokerAddress
from devices.status import StatusReport, do_record_status
from ingest import formats, metrics, topics
from ingest.decoding import Decoded, Envelope, as_storage_error, explain, refusal
from ingest.limits import Limits, RateLimiter, limit_rate
from ingest.quarantine import QuarantineEntry, QuarantineReason
from ingest.store import AfterStore, store_batch

log = logging.getLogger(__name__)

STATUS_KIND = "status"
_RETRY_FIRST_SECONDS = 0.1
_RETRY_MAX_SECONDS = 5.0
_SAMPLE_BYTES = 1024
"""How much of a refused oversized payload is kept in quarantine, to see what it was."""


@dataclass(frozen=True, slots=True)
class IngestConfig:
    topic_prefix: str
    client_id: str
    batch_size: int
    flush_seconds: float
    queue_size: int
    limits: Limits
    shared_group: str | None = None
    receive_maximum: int = 1000
    """MQTT 5: unacknowledged messages the broker may send at once. At least two batches, so
    the next batch is received and decoded while the current one is being committed."""


@dataclass(frozen=True, slots=True)
class _Inbound:
    """A received message, already decoded: what the writer stores and then acknowledges."""

    mid: int
    qos: int
    session: int
    """Which connection delivered it: a packet id is only meaningful on its own connection."""
    content: Decoded | _Status


@dataclass(frozen=True, slots=True)
class _Status:
    device_id: str
    report: StatusReport
    received_at: datetime
    raw: bytes
    topic: str


@dataclass(slots=True)
class _Batch:
    decoded: list[Decoded] = field(default_factory=list)
    statuses: list[_Status] = field(default_factory=list)

    def split(self) -> list[_Batch]:
        return [_Batch(decoded=[d]) for d in self.decoded] + [
            _Batch(statuses=[s]) for s in self.statuses
        ]

    def __len__(self) -> int:
        return len(self.decoded) + len(self.statuses)


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
        self._broker = broker
        self._pool = pool
        self._config = config
        self._clock = clock
        self._after_store = tuple(after_store)
        self._rate = RateLimiter(rate=config.limits.device_rate, burst=config.limits.device_burst)
        self._inbox: queue.Queue[_Inbound] = queue.Queue(maxsize=config.queue_size)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._session = 0
        self._subscribe_mid: int | None = None
        self._writer = threading.Thread(
            target=self._write_forever, name="ingest-writer", daemon=True
        )
        self._client = broker.client(client_id=config.client_id, persistent=True, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        metrics.BACKLOG.set_function(self._inbox.qsize)

    def start(self) -> None:
        self._writer.start()
        self._client.connect_async(
            self._broker.host,
            self._broker.port,
            keepalive=30,
            **self._broker.connect_options(
                persistent=True, receive_maximum=self._config.receive_maximum
            ),
        )
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

    def _subscriptions(self) -> list[tuple[str, int]]:
        kinds = [f.topic_kind for f in formats.FORMATS] + [STATUS_KIND]
        prefix, group = self._config.topic_prefix, self._config.shared_group
        return [(topics.subscription(prefix, kind, shared_group=group), 1) for kind in kinds]

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
        _, self._subscribe_mid = client.subscribe(self._subscriptions())
        log.info("connected to the broker (session present: %s)", flags.session_present)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_codes: list[paho.ReasonCode],
        properties: paho.Properties | None,
    ) -> None:
        """Ready only once the broker has confirmed the subscriptions, not at mere connection."""
        if mid != self._subscribe_mid:
            return
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.error("the broker refused subscriptions: %s", refused)
            return
        self._connected.set()
        metrics.CONNECTED.set(1)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: paho.ReasonCode,
        properties: paho.Properties | None,
    ) -> None:
        self._connected.clear()
        metrics.CONNECTED.set(0)
        if not self._stopping.is_set():
            metrics.RECONNECTS.inc()
            log.warning("lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        """Decode here, on the network thread, so decoding overlaps the writer's database waits."""
        received_at = self._clock.now()
        try:
            content = self._decode(message.topic, message.payload, received_at)
        except Exception as error:  # noqa: BLE001  # an exception here would stop paho's loop
            entry = QuarantineEntry(
                received_at=received_at,
                channel="mqtt",
                topic=message.topic,
                device_id=None,
                msg_id=None,
                reason=QuarantineReason.DECODE_ERROR,
                detail=repr(error)[:500],
                payload=message.payload[:_SAMPLE_BYTES],
            )
            content = Decoded(quarantined=[entry])
        self._inbox.put(
            _Inbound(mid=message.mid, qos=message.qos, session=self._session, content=content)
        )

    def _write_forever(self) -> None:
        while not (self._stopping.is_set() and self._inbox.empty()):
            inbound = self._collect()
            if inbound:
                batch = _Batch()
                for item in inbound:
                    if isinstance(item.content, _Status):
                        batch.statuses.append(item.content)
                    else:
                        batch.decoded.append(item.content)
                self._store_until_done(batch)
                self._acknowledge(inbound)

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

    def _decode(self, topic: str, payload: bytes, received_at: datetime) -> Decoded | _Status:
        parsed = topics.parse(self._config.topic_prefix, topic)
        payload_format = formats.for_topic_kind(parsed.kind) if parsed else None
        if parsed is None or (payload_format is None and parsed.kind != STATUS_KIND):
            entry = QuarantineEntry(
                received_at=received_at,
                channel="mqtt",
                topic=topic,
                device_id=None,
                msg_id=None,
                reason=QuarantineReason.INVALID_TOPIC,
                detail=f"topic {topic!r} does not name a device and a payload kind",
                payload=payload[:_SAMPLE_BYTES],
            )
            return Decoded(quarantined=[entry])
        limits = self._config.limits
        envelope = Envelope(
            channel="mqtt",
            topic=topic,
            device_id=parsed.device_id,
            received_at=received_at,
            max_future=limits.max_future,
            max_readings=limits.max_readings,
        )
        if len(payload) > limits.max_payload_bytes:
            # Only a sample is kept, so the oversized payload is freed with the paho message.
            detail = f"{len(payload)} bytes; at most {limits.max_payload_bytes} are accepted"
            sample = payload[:_SAMPLE_BYTES]
            entry = refusal(envelope, sample, None, QuarantineReason.PAYLOAD_TOO_LARGE, detail)
            return Decoded(quarantined=[entry])
        if payload_format is None:
            return self._decode_status(payload, envelope)
        decoded = payload_format.decode(payload, envelope)
        return limit_rate(
            decoded, limiter=self._rate, limits=limits, envelope=envelope, payload=payload
        )

    def _decode_status(self, payload: bytes, envelope: Envelope) -> Decoded | _Status:
        try:
            report = StatusReport.model_validate_json(payload)
        except ValidationError as error:
            reason, detail = explain(error)
            return Decoded(quarantined=[refusal(envelope, payload, None, reason, detail)])
        assert envelope.topic is not None
        return _Status(envelope.device_id, report, envelope.received_at, payload, envelope.topic)

    def _store_until_done(self, batch: _Batch) -> None:
        """Store a batch, waiting out database outages; never gives up on good data.

        If the database refuses the batch itself (a bug, or input we failed to anticipate), the
        messages are stored one by one, so only the culprit ends in quarantine.
        """
        delay = _RETRY_FIRST_SECONDS
        while True:
            try:
                with metrics.COMMIT_SECONDS.time(), self._pool.connection() as conn:
                    self._store(conn, batch)
                metrics.BATCH_SIZE.observe(len(batch))
                return
            except (psycopg.OperationalError, PoolTimeout) as error:
                metrics.STORE_RETRIES.inc()
                log.warning("database unavailable (%s); retrying in %.1fs", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)
            except psycopg.Error as error:
                if len(batch) > 1:
                    log.warning(
                        "the database refused a batch (%s); storing it piece by piece", error
                    )
                    for piece in batch.split():
                        self._store_until_done(piece)
                elif batch.decoded and batch.decoded[0].candidates:
                    refused = as_storage_error(batch.decoded[0], error, channel="mqtt")
                    self._store_until_done(_Batch(decoded=[refused]))
                else:
                    log.exception("the database refused a quarantine entry or status; dropped")
                return

    def _store(self, conn: psycopg.Connection, batch: _Batch) -> None:
        with conn.transaction():
            unknown = [
                QuarantineEntry(
                    received_at=s.received_at,
                    channel="mqtt",
                    topic=s.topic,
                    device_id=s.device_id,
                    msg_id=None,
                    reason=QuarantineReason.UNKNOWN_DEVICE,
                    detail=f"status from device {s.device_id}, which is not registered",
                    payload=s.raw,
                )
                for s in batch.statuses
                if not do_record_status(
                    conn, device_id=s.device_id, report=s.report, received_at=s.received_at
                )
            ]
            store_batch(
                conn,
                channel="mqtt",
                candidates=[c for d in batch.decoded for c in d.candidates],
                quarantined=[q for d in batch.decoded for q in d.quarantined] + unknown,
                after_store=self._after_store,
            )

    def _acknowledge(self, batch: list[_Inbound]) -> None:
        for item in batch:
            if item.qos > 0 and item.session == self._session:
                self._client.ack(item.mid, item.qos)
