"""The simulator sends valid native messages, the same ones for the same device and time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from devices.simulator import SimulatedDevice, Vital, history_times
from ingest.decoding import Envelope
from ingest.native import decode_native

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)
CUFF = SimulatedDevice(
    device_id="bp-1",
    kind="blood_pressure_monitor",
    vitals=(Vital("sys", "mm[Hg]", 130, 5), Vital("dia", "mm[Hg]", 80, 3)),
)


def test_its_messages_decode_without_quarantine() -> None:
    envelope = Envelope("mqtt", None, "bp-1", NOW, timedelta(minutes=5))
    decoded = decode_native(CUFF.payload(measured_at=NOW, now=NOW), envelope)
    assert decoded.quarantined == []
    assert [c.code for c in decoded.candidates] == ["8480-6", "8462-4"]


def test_the_same_device_and_time_give_the_same_message() -> None:
    at = NOW - timedelta(days=2)
    assert CUFF.payload(measured_at=at, now=NOW) == CUFF.payload(
        measured_at=at, now=NOW + timedelta(hours=5)
    )


def test_a_trend_moves_the_value_back_in_time() -> None:
    falling = Vital("spo2", "%", now=87, spread=0, change_per_day=-1)
    rng = random.Random(1)
    assert falling.value(days_ago=0, rng=rng) == 87
    assert falling.value(days_ago=7, rng=rng) == 94


def test_history_is_mornings_and_evenings_within_the_window() -> None:
    times = list(history_times(now=NOW, days=2))
    assert times[0] >= NOW - timedelta(days=2)
    assert times[-1] <= NOW
    assert {t.hour for t in times} == {8, 20}
    assert times == sorted(times)
