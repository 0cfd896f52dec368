"""Limits that keep one misbehaving device from hurting the others."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from ingest.decoding import Decoded, Envelope, refusal
from ingest.quarantine import QuarantineReason


@dataclass(frozen=True, slots=True)
class Limits:
    """The same limits hold for every channel (MQTT and HTTP)."""

    max_payload_bytes: int
    max_readings: int
    max_future: timedelta
    """How far ahead of our clock a reading's time may be."""
    max_age: timedelta
    """How long ago a reading may have been measured (older ones go to quarantine)."""
    device_rate: float
    """Messages per second of measured time a device may send on average."""
    device_burst: int
    """Messages measured close together a device may send after a quiet spell."""


class RateLimiter:
    """A token bucket per device, on the clock of the measurements themselves.

    The bucket holds `burst` messages and refills at `rate` per second of *measured* time. A
    device that floods sends many messages measured close together and is limited; a gateway
    replaying a day of readings, or a backlog drained after an ingest outage, arrives fast but
    was measured over hours, and passes. Arrival time would punish exactly those.

    A message admitted once is admitted again without a token: a broker redelivers every
    message not yet acknowledged when a connection drops, and those copies, judged afresh,
    would find the bucket emptied by their own first delivery and be quarantined although
    their readings are stored. The limiter therefore remembers the last `remember` admitted
    messages. Unacknowledged messages are bounded (Receive Maximum, plus what the worker holds),
    so a `remember` above that bound recognises every redelivery to this worker.
    """

    def __init__(self, *, rate: float, burst: int, remember: int = 10_000) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._remember = remember
        self._admitted: set[tuple[str, int]] = set()
        self._admitted_order: deque[tuple[str, int]] = deque()
        self._lock = threading.Lock()

    def admit(self, device_id: str, msg_id: UUID, *, measured_at: float) -> bool:
        """Let a message through if it was let through before, or if a token is left for it."""
        key = (device_id, msg_id.int)  # an int hashes in C, a UUID in Python
        with self._lock:
            if key in self._admitted:
                return True
            if not self._take(device_id, measured_at):
                return False
            self._admitted.add(key)
            self._admitted_order.append(key)
            if len(self._admitted_order) > self._remember:
                self._admitted.discard(self._admitted_order.popleft())
            return True

    def _take(self, device_id: str, measured_at: float) -> bool:
        """Take a token for a message measured at `measured_at` (POSIX seconds)."""
        tokens, since = self._buckets.get(device_id, (self._burst, measured_at))
        now = max(since, measured_at)
        tokens = min(self._burst, tokens + (now - since) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[device_id] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > 100_000:
            self._forget_full(now)
        return allowed

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they hold nothing a new bucket would not."""
        full_after = self._burst / self._rate
        self._buckets = {d: b for d, b in self._buckets.items() if now - b[1] < full_after}


def limit_rate(
    decoded: Decoded, *, limiter: RateLimiter, limits: Limits, envelope: Envelope, payload: bytes
) -> Decoded:
    """The decoded message, or one quarantine entry when its device is over its rate."""
    if not decoded.candidates:
        return decoded
    measured_at = max(c.measured_at for c in decoded.candidates).timestamp()
    msg_id = decoded.candidates[0].msg_id
    if limiter.admit(envelope.device_id, msg_id, measured_at=measured_at):
        return decoded
    detail = (
        f"more than {limits.device_rate:g} messages per measured second "
        f"(burst {limits.device_burst}) from this device"
    )
    return Decoded(
        quarantined=[refusal(envelope, payload, msg_id, QuarantineReason.RATE_LIMITED, detail)]
    )
