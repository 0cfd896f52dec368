"""The MQTT ingest worker: receive, decode, store in batches, then acknowledge.

A message is acknowledged to the broker only after the batch holding it is committed, so a
crash at any point means redelivery (and dedupe), never loss. The receiver's network thread
decodes and appends to an inbox; the writer takes whole batches from it. The network thread
never waits for the writer, so the broker always gets its pings: when the database is slow,
unacknowledged QoS 1 messages reach Receive Maximum and the broker holds the rest, and past
`queue_size` messages in the inbox the receiver stops reading. Bad input becomes quarantine
rows; it never stops the worker.

Several workers share the load through an MQTT shared subscription (``$share/<group>/...``):
the broker gives each message to one of them, and redelivers a dead worker's unacknowledged
messages to the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import ValidationError

from core.clock import Clock
from core.loops import Backoff, Pulse
from core.mqtt import BrokerAddress
from core.turns import Turns
from devices.status import StatusReport, do_record_status
from ingest import formats, metrics, topics
from ingest.decoding import Decoded, Envelope, as_storage_error, explain, refusal
from ingest.limits import Limits, RateLimiter, limit_rate
from ingest.mqtt_packets import Publish
from ingest.quarantine import QuarantineEntry, QuarantineReason
from ingest.receiver import Receiver
from ingest.store import AfterStore, store_batch

log = logging.getLogger(__name__)

STATUS_KIND = "status"
TOPIC_KINDS: tuple[str, ...] = (*(f.topic_kind for f in formats.FORMATS), STATUS_KIND)
"""Every kind of device topic the ingest reads, and so all a device may publish to."""
_SAMPLE_BYTES = 1024
"""How much of a refused oversized payload is kept in quarantine, to see what it was."""
_IDLE_WAIT_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class IngestConfig:
    topic_prefix: str
    client_id: str
    batch_size: int
    flush_seconds: float
    queue_size: int
    """Messages held in the inbox before the receiver stops reading the socket."""
    limits: Limits
    shared_group: str | None = None
    receive_maximum: int = 1000
    """MQTT 5: unacknowledged messages the broker may send at once. At least two batches, so
    the next batch is received and decoded while the current one is being committed."""
    keepalive_seconds: int = 30
    writers: int = 2
    """Writer threads: one stores while another waits for its commit (see core/turns.py)."""
    round_deadline_seconds: float = 60.0
    """A writer that has not finished a round (a batch stored, or an idle wait) for this long
    makes readiness fail: it is stuck, or waiting out a database outage."""


@dataclass(slots=True)
class _Inbound:
    """A received message, already decoded: what the writer stores and then acknowledges."""

    packet_id: int
    """0 for QoS 0: nothing to acknowledge."""
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
        turns: Turns | None = None,
    ) -> None:
        """`turns` orders the writers' batches; pass the same to the rule engine, which ends a
        batch's turn once it has locked the batch's patients (else the turn ends at commit)."""
        self._pool = pool
        self._config = config
        self._clock = clock
        self._after_store = tuple(after_store)
        # Twice what can be unacknowledged at once, so every redelivery is recognised.
        remember = 2 * (config.receive_maximum + config.queue_size + config.batch_size)
        self._rate = RateLimiter(
            rate=config.limits.device_rate, burst=config.limits.device_burst, remember=remember
        )
        self._inbox: deque[_Inbound] = deque()
        self._arrived = threading.Event()
        self._stopping = threading.Event()
        self._turns = Turns() if turns is None else turns
        self._collecting = threading.Lock()
        self.pulses = [
            Pulse(f"ingest-writer-{number}", deadline=config.round_deadline_seconds)
            for number in range(1, config.writers + 1)
        ]
        """One per writer thread, for readiness."""
        self._writers = []
        for pulse in self.pulses:
            pulse.thread = threading.Thread(
                target=self._write_forever, args=(pulse,), name=pulse.name, daemon=True
            )
            self._writers.append(pulse.thread)
        self._receiver = Receiver(
            broker,
            client_id=config.client_id,
            subscriptions=self._subscriptions(),
            on_messages=self._on_messages,
            may_read=self._may_read,
            receive_maximum=config.receive_maximum,
            keepalive=config.keepalive_seconds,
        )
        metrics.BACKLOG.set_function(self._inbox.__len__)

    def start(self) -> None:
        for writer in self._writers:
            writer.start()
        self._receiver.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._receiver.wait_ready(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, store and acknowledge what was received, then disconnect.

        Messages still in flight come back on the next connection, to this worker or another.
        """
        self._stopping.set()
        self._arrived.set()
        deadline = time.monotonic() + timeout
        for writer in self._writers:
            writer.join(max(0.0, deadline - time.monotonic()))
        self._receiver.stop(timeout)

    @property
    def connected(self) -> bool:
        return self._receiver.ready

    def _subscriptions(self) -> list[tuple[str, int]]:
        prefix, group = self._config.topic_prefix, self._config.shared_group
        return [(topics.subscription(prefix, kind, shared_group=group), 1) for kind in TOPIC_KINDS]

    def _may_read(self) -> bool:
        return not self._stopping.is_set() and len(self._inbox) < self._config.queue_size

    def _on_messages(self, session: int, messages: list[Publish]) -> None:
        """Decode here, on the network thread, so decoding overlaps the writer's database waits."""
        started = time.thread_time()
        received_at = self._clock.now()
        self._inbox.extend(
            [_Inbound(m.packet_id, session, self._decode_safely(m, received_at)) for m in messages]
        )
        self._arrived.set()
        metrics.add_stage_cpu("decode", time.thread_time() - started)

    def _decode_safely(self, message: Publish, received_at: datetime) -> Decoded | _Status:
        try:
            return self._decode(message.topic, message.payload, received_at)
        except Exception as error:  # noqa: BLE001  # one bad message must not stop the others
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
            return Decoded(quarantined=[entry])

    def _write_forever(self, pulse: Pulse) -> None:
        """Store batches until stopped. No exception ends a writer: a failed round is logged
        and the next one follows after a growing pause; the pulse beats after each round."""
        backoff = Backoff()
        while not (self._stopping.is_set() and not self._inbox):
            try:
                self._write_round()
            except Exception:
                log.exception("an ingest writer's round failed; trying again")
                time.sleep(backoff.failed())
            else:
                backoff.succeeded()
                pulse.beat()

    def _write_round(self) -> None:
        """Take a batch, store it in its turn, acknowledge it (or wait a moment for one)."""
        with self._collecting:  # one batch at a time, numbered in the order taken
            inbound = self._collect()
            number = self._turns.take() if inbound else 0
        if not inbound:
            return
        with self._turns.turn(number):  # entered at once: a number taken is always served
            batch = _Batch()
            for item in inbound:
                if isinstance(item.content, _Status):
                    batch.statuses.append(item.content)
                else:
                    batch.decoded.append(item.content)
            self._store_until_done(batch)
        self._acknowledge(inbound)

    def _collect(self) -> list[_Inbound]:
        """Up to a batch: what waits in the inbox, then what arrives until the flush deadline."""
        inbox, limit = self._inbox, self._config.batch_size
        batch: list[_Inbound] = []
        deadline = time.monotonic() + _IDLE_WAIT_SECONDS
        while True:
            self._arrived.clear()
            if inbox:
                if not batch:
                    deadline = time.monotonic() + self._config.flush_seconds
                take = min(limit - len(batch), len(inbox))
                batch.extend([inbox.popleft() for _ in range(take)])
            remaining = deadline - time.monotonic()
            if (
                len(batch) >= limit
                or self._stopping.is_set()
                or remaining <= 0
                or not self._arrived.wait(remaining)
            ):
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
            max_age=limits.max_age,
            max_readings=limits.max_readings,
        )
        if len(payload) > limits.max_payload_bytes:
            # Only a sample is kept, so the oversized payload is freed with the packet.
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

        If storing the batch fails otherwise (the database refuses it, input we failed to
        anticipate, or a bug in the code run on it: any exception), the messages are stored one
        by one, so only the culprit ends in quarantine. A failing rule does not get here: the
        engine turns it into a technical alert and the readings are stored.
        """
        backoff = Backoff()
        while True:
            try:
                with metrics.COMMIT_SECONDS.time(), self._pool.connection() as conn:
                    self._store(conn, batch)
                metrics.BATCH_SIZE.observe(len(batch))
                return
            except (psycopg.OperationalError, PoolTimeout) as error:
                metrics.STORE_RETRIES.inc()
                delay = backoff.failed()
                log.warning("database unavailable (%s); retrying in %.1fs", error, delay)
                time.sleep(delay)
            except Exception as error:  # nothing may stop the writer
                if len(batch) > 1:
                    log.warning(
                        "storing a batch failed (%r); storing it piece by piece",
                        error,
                        exc_info=not isinstance(error, psycopg.Error),
                    )
                    for piece in batch.split():
                        self._store_until_done(piece)
                elif batch.decoded and batch.decoded[0].candidates:
                    refused = as_storage_error(batch.decoded[0], error, channel="mqtt")
                    self._store_until_done(_Batch(decoded=[refused]))
                else:
                    log.exception("storing a quarantine entry or status failed; dropped")
                return

    def _store(self, conn: psycopg.Connection, batch: _Batch) -> None:
        """Store in one transaction; its CPU time counts as `store`, less the rules run inside."""
        started = time.thread_time()
        rules_before = metrics.stage_cpu_in_this_thread("rules")
        try:
            self._store_in_transaction(conn, batch)
        finally:
            rules = metrics.stage_cpu_in_this_thread("rules") - rules_before
            metrics.add_stage_cpu("store", time.thread_time() - started - rules)

    def _store_in_transaction(self, conn: psycopg.Connection, batch: _Batch) -> None:
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
                messages=[d.candidates for d in batch.decoded],
                quarantined=[q for d in batch.decoded for q in d.quarantined] + unknown,
                after_store=self._after_store,
            )

    def _acknowledge(self, batch: list[_Inbound]) -> None:
        """Hand the committed messages' packet ids to the receiver, one call per connection."""
        by_session: dict[int, list[int]] = {}
        for item in batch:
            if item.packet_id:
                by_session.setdefault(item.session, []).append(item.packet_id)
        for session, packet_ids in by_session.items():
            self._receiver.acknowledge(session, packet_ids)
