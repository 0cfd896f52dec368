"""The simulator sends valid native messages, the same ones for the same device and time."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta

from devices.simulator import SimulatedDevice, Vital, history_times, live_order
from heimvakt.demo import PATIENTS
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


def test_the_demo_story_turns_yellow_within_a_minute_and_red_within_two() -> None:
    """Frode's oximeter against his plan's limits (SpO2 yellow below 90, red below 86)."""
    [frode] = [p for p in PATIENTS if p.key == "06"]
    oximeter = next(d for d in frode.devices if d.kind == "pulse_oximeter")
    start = NOW

    def spo2(seconds: int) -> float:
        at = start + timedelta(seconds=seconds)
        message = json.loads(oximeter.payload(measured_at=at, now=at, live_since=start))
        return float(next(r["value"] for r in message["readings"] if r["code"] == "spo2"))

    assert spo2(0) >= 92, "green when the demo starts"
    assert 86 <= spo2(60) < 90, "yellow within a minute"
    assert spo2(120) < 86, "red within two"
    assert spo2(600) >= 80, "and then it stays there, plausible"
    history = json.loads(oximeter.payload(measured_at=start - timedelta(days=20), now=start))
    assert history["readings"][0]["value"] >= 92, "a stable month before"


def test_the_story_device_takes_every_other_turn() -> None:
    devices = [d for p in PATIENTS for d in p.devices]
    turns = [d.device_id for d in itertools.islice(live_order(devices), 20)]
    assert turns[::2] == ["demo-ox-06"] * 10
    assert len(set(turns[1::2])) == 10, "the others take turns"


def test_a_weekly_device_measures_one_morning_a_week_and_not_while_the_present_plays() -> None:
    weekly = SimulatedDevice("pef-1", "peak_flow_meter", (Vital("pef", "L/min", 300, 5),), 7)
    moments = [m for m in history_times(now=NOW, days=28) if weekly.measures_at(m)]
    assert len(moments) == 4
    assert {m.hour for m in moments} == {8}
    daily = CUFF
    assert list(itertools.islice(live_order([weekly, daily]), 3)) == [daily] * 3
