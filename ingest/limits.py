"""Limits that keep one misbehaving device from hurting the others."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from ingest.decoding import Decoded, Envelope, refusal
from ingest.quarantine import QuarantineReason


@dataclass(frozen=True, slots=True)
class Limits:
    """The same limits hold for every channel (MQTT and HTTP)."""

    max_payload_bytes: int
    max_readings: int
    max_future: timedelta
    """How far ahead of our clock a reading's time may be."""
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
    """

    def __init__(self, *, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, device_id: str, *, measured_at: float) -> bool:
        """Take a token for a message measured at `measured_at` (POSIX seconds)."""
        with self._lock:
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
    if limiter.allow(envelope.device_id, measured_at=measured_at):
        return decoded
    detail = (
        f"more than {limits.device_rate:g} messages per measured second "
        f"(burst {limits.device_burst}) from this device"
    )
    msg_id = decoded.candidates[0].msg_id
    return Decoded(
        quarantined=[refusal(envelope, payload, msg_id, QuarantineReason.RATE_LIMITED, detail)]
    )
