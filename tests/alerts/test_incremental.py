"""The engine's memory of recent readings gives the same findings as a full recomputation.

The ingest evaluates each batch against per-patient copies that it only adds to (alerts/state.py);
the reference builds every series anew from all readings stored so far, as `load_histories`
does from the database. Random series with late, out-of-order and repeated readings, cut into
random batches, must give identical findings at every moment of every batch.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.context import HISTORY, PatientHistory, Profile
from alerts.engine import findings_at
from alerts.findings import Finding
from alerts.series import Series, micros, moment_of, span
from alerts.state import TRIM_EVERY, PatientCopy
from core.limits import Limits

PATIENT = UUID(int=7)
START = datetime(2026, 10, 1, tzinfo=UTC)
SPO2, PULSE, WEIGHT, PEF, SYSTOLIC, TEMPERATURE = (
    "59408-5", "8867-4", "29463-7", "19935-6", "8480-6", "8310-5",
)  # fmt: skip
RANGES = {
    SPO2: (84, 100),
    PULSE: (40, 140),
    WEIGHT: (70, 76),
    PEF: (150, 450),
    SYSTOLIC: (85, 180),
    TEMPERATURE: (35, 40),
}
PROFILE = Profile(
    limits={
        SPO2: Limits(SPO2, low=92, red_low=88),
        PULSE: Limits(PULSE, low=50, high=110, red_high=130),
        WEIGHT: Limits(WEIGHT, high=75),
    },
    spo2_scale=1,
    conditions=("copd",),
    symptoms=(),
)

Stored = tuple[str, int, float]


@st.composite
def readings(draw: st.DrawFn) -> list[Stored]:
    """Readings in the order they are stored: mostly by measured time, some late, some again."""
    days = draw(st.sampled_from([2, 10, 40]))
    count = draw(st.integers(1, 60))
    found: list[Stored] = []
    for _ in range(count):
        code = draw(st.sampled_from(sorted(RANGES)))
        low, high = RANGES[code]
        # Whole hours, so that readings share moments and windows end exactly on readings.
        hour = draw(st.integers(0, days * 24))
        value = draw(st.integers(low * 10, high * 10)) / 10
        found.append((code, micros(START + timedelta(hours=hour)), value))
    found.sort(key=lambda reading: reading[1])
    late = draw(st.lists(st.integers(0, len(found) - 1), max_size=5))
    for index in late:  # moved to the end: stored after readings measured later
        found.append(found.pop(index))
    repeated = draw(st.lists(st.sampled_from(found), max_size=4))
    return found + [(code, time, value + 1) for code, time, value in repeated]


@st.composite
def batches(draw: st.DrawFn) -> list[list[Stored]]:
    stored = draw(readings())
    cuts = sorted(draw(st.sets(st.integers(1, max(len(stored) - 1, 1)), max_size=8)))
    edges = [0, *cuts, len(stored)]
    return [stored[a:b] for a, b in itertools.pairwise(edges) if a < b]


def recomputed(stored: list[Stored], since: int) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for code, time, value in stored:
        if time >= since:
            series.setdefault(code, Series()).add(time, value)
    return series


def evaluate(series: dict[str, Series], batch: list[Stored]) -> list[tuple[Finding, bool]]:
    history = PatientHistory(patient_id=PATIENT, series=series, profile=PROFILE)
    moments: dict[int, set[str]] = {}
    for code, time, _value in batch:
        moments.setdefault(time, set()).add(code)
    found = []
    for time in sorted(moments):
        moment = moment_of(time)
        for finding in findings_at(history, moment, measured=frozenset(moments[time])):
            found.append((finding, history.newer_than(finding.code, finding.measured_at)))
    return found


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(batches())
def test_kept_state_and_full_recomputation_agree(cut: list[list[Stored]]) -> None:
    copy: PatientCopy | None = None
    stored: list[Stored] = []
    for batch in cut:
        stored += batch
        needed = min(time for _code, time, _value in batch) - span(HISTORY)
        if copy is None or copy.covers_from > needed:  # as ReadingState reloads
            history = PatientHistory(
                patient_id=PATIENT, series=recomputed(stored, needed), profile=PROFILE
            )
            copy = PatientCopy(0, needed, history)
        else:
            for code, time, value in batch:
                copy.add(code, time, value)
        kept = evaluate(copy.history.series, batch)
        copy.added = TRIM_EVERY  # look at trimming after every batch, not every 500 readings
        copy.trim()
        assert kept == evaluate(recomputed(stored, needed), batch)
