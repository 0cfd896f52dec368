"""The rule engine's memory of each patient's recent readings, kept up to date batch by batch.

Why: rules compare a new reading with days of earlier ones (a 7-day median, yesterday's
weight). Loading those days from the database for every batch made ingest slower the longer
patients had been followed, and slower than the readings arrived. A worker instead keeps each
patient's last days of readings in memory (`Series`) and adds each batch's stored readings.

Why it stays right: the copy is trusted only while `reading_revisions` still names the
transaction that last updated it (core/readings.py). Another worker storing readings for the
same patient, a batch that rolled back, an erasure or a reading older than the copy reaches
all make the engine load that patient again from the readings table, as a first visit does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from uuid import UUID

import psycopg

from alerts.context import HISTORY, PatientHistory, load_profiles, load_series
from alerts.series import Series, micros, moment_of, span
from core.readings import claim_revisions

KEEP: Final = 2 * HISTORY
"""How far behind a patient's newest reading the copy reaches: readings up to HISTORY late
still find every reading their windows need, without a reload."""
MAX_PATIENTS: Final = 200_000
"""Patients held at most; the least recently seen go first (and are loaded again if needed)."""


@dataclass(frozen=True, slots=True)
class StoredReading:
    patient_id: UUID
    code: str
    measured_at: datetime
    value: float


@dataclass(slots=True)
class _Copy:
    revision: int
    covers_from: int
    """Microseconds: readings measured before this are not in the copy."""
    series: dict[str, Series] = field(default_factory=dict)

    def add(self, code: str, time: int, value: float) -> None:
        series = self.series.get(code)
        if series is None:
            series = self.series[code] = Series()
        series.add(time, value)

    def trim(self) -> None:
        newest = max((s.times[-1] for s in self.series.values() if len(s)), default=None)
        if newest is None or newest - span(KEEP) <= self.covers_from + span(HISTORY):
            return
        self.covers_from = newest - span(KEEP)
        for series in self.series.values():
            series.forget_before(self.covers_from)


@dataclass(frozen=True, slots=True)
class Advanced:
    histories: Mapping[UUID, PatientHistory]
    moments: Mapping[UUID, Mapping[datetime, frozenset[str]]]
    """Per patient, each new reading's measured moment and the measurements taken then."""
    loaded: int
    """Patients whose readings had to be read from the database (not in memory, or stale)."""


class ReadingState:
    """One worker's copies. Not thread-safe: each ingest path owns its own."""

    def __init__(self, *, max_patients: int = MAX_PATIENTS) -> None:
        self._copies: dict[UUID, _Copy] = {}
        self._max_patients = max_patients

    def __len__(self) -> int:
        return len(self._copies)

    def advance(self, conn: psycopg.Connection, stored: Sequence[StoredReading]) -> Advanced:
        """Take a batch's stored readings (oldest stored first for one moment) into the
        copies, inside the transaction that stored them; returns what rules need for them."""
        moments: dict[UUID, dict[datetime, set[str]]] = {}
        for reading in stored:
            moments.setdefault(reading.patient_id, {}).setdefault(reading.measured_at, set()).add(
                reading.code
            )
        revision, previous = claim_revisions(conn, list(moments))
        needed = {p: micros(min(times)) - span(HISTORY) for p, times in moments.items()}
        fresh = {p for p in moments if not self._current(p, previous.get(p), needed[p])}
        for patient_id in moments:
            if patient_id in fresh:
                self._copies.pop(patient_id, None)
            else:
                # Claimed before it changes: should this transaction roll back, the table
                # keeps the revision before it, and the copy no longer matches.
                self._copies[patient_id].revision = revision
        for reading in stored:
            copy = self._copies.get(reading.patient_id)
            if copy is not None:
                copy.add(reading.code, micros(reading.measured_at), reading.value)
        loaded = load_series(conn, since={p: moment_of(needed[p]) for p in fresh})
        for patient_id, series in loaded.items():
            self._copies[patient_id] = _Copy(revision, needed[patient_id], series)
        for patient_id in moments:
            self._touch(patient_id).trim()
        self._evict()
        earliest = moment_of(min(needed.values()))
        profiles = load_profiles(conn, patients=list(moments), since=earliest)
        return Advanced(
            histories={
                p: PatientHistory(patient_id=p, series=self._copies[p].series, profile=profile)
                for p, profile in profiles.items()
            },
            moments={p: {t: frozenset(c) for t, c in m.items()} for p, m in moments.items()},
            loaded=len(fresh),
        )

    def forget(self, patients: Iterable[UUID]) -> None:
        for patient_id in patients:
            self._copies.pop(patient_id, None)

    def _current(self, patient_id: UUID, revision: int | None, needed_from: int) -> bool:
        copy = self._copies.get(patient_id)
        return (
            copy is not None
            and revision is not None
            and copy.revision == revision
            and copy.covers_from <= needed_from
        )

    def _touch(self, patient_id: UUID) -> _Copy:
        """The patient's copy, moved to the most recently seen end."""
        copy = self._copies.pop(patient_id)
        self._copies[patient_id] = copy
        return copy

    def _evict(self) -> None:
        while len(self._copies) > self._max_patients:
            del self._copies[next(iter(self._copies))]
