"""The rule engine's memory of each patient's recent readings, kept up to date batch by batch.

Why: rules compare a new reading with days of earlier ones (a 7-day median, yesterday's
weight). Loading those days from the database for every batch made ingest slower the longer
patients had been followed, and slower than the readings arrived. A worker instead keeps each
patient's last days of readings in memory (`Series`) and adds each batch's stored readings.

The copy holds the patient's profile too (limits, plan, recent questionnaire answers), read
with the readings.

Why it stays right: the copy is trusted only while `reading_revisions` still names the
transaction that last updated it (core/readings.py; triggers move it on for a change of
limits, plan, conditions or answers). Another worker storing readings for the same patient, a
batch that rolled back, a clinician's change, an erasure, or a reading older than the copy
reaches all make the engine load that patient again, as a first visit does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from typing import Final
from uuid import UUID

import psycopg

from alerts.context import HISTORY, PatientHistory, Profile, load_profiles, load_series
from alerts.series import Series, micros, moment_of, span
from core.readings import Reading, claim_revisions

KEEP: Final = 2 * HISTORY
"""How far behind a patient's newest reading the copy reaches: readings up to HISTORY late
still find every reading their windows need, without a reload."""
TRIM_EVERY: Final = 500
MAX_PATIENTS: Final = 200_000
"""Patients held at most; the least recently seen go first (and are loaded again if needed)."""


@dataclass(slots=True)
class PatientCopy:
    """One patient's readings and profile as of `revision`, from `covers_from` on."""

    revision: int
    covers_from: int
    """Microseconds: readings measured before this are not in the copy."""
    profile: Profile
    series: dict[str, Series] = field(default_factory=dict)
    added: int = 0
    """Readings added since the copy was last trimmed."""

    def add(self, code: str, time: int, value: float) -> None:
        series = self.series.get(code)
        if series is None:
            series = self.series[code] = Series()
        series.add(time, value)
        self.added += 1

    def trim(self) -> None:
        """Forget what no window can reach any more; looked at every few hundred readings."""
        if self.added < TRIM_EVERY:
            return
        self.added = 0
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
        self._copies: dict[UUID, PatientCopy] = {}
        self._max_patients = max_patients

    def __len__(self) -> int:
        return len(self._copies)

    def advance(self, conn: psycopg.Connection, stored: Iterable[Reading]) -> Advanced:
        """Take a batch's stored readings into the copies, inside the transaction that stored
        them; returns what rules need for them. `stored` is grouped by patient, and for one
        patient and moment the reading stored first comes first."""
        batch: dict[UUID, list[tuple[str, int, float]]] = {
            patient: [(r.code, micros(r.measured_at), r.value) for r in readings]
            for patient, readings in groupby(stored, key=attrgetter("patient_id"))
        }
        if not batch:
            return Advanced(histories={}, moments={}, loaded=0)
        revision, previous = claim_revisions(conn, list(batch))
        needed = {p: min(r[1] for r in rows) - span(HISTORY) for p, rows in batch.items()}
        fresh = {p for p in batch if not self._current(p, previous.get(p), needed[p])}
        for patient_id, rows in batch.items():
            if patient_id in fresh:
                self._copies.pop(patient_id, None)
                continue
            copy = self._copies[patient_id]
            # Claimed before it changes: should this transaction roll back, the table keeps
            # the revision before it, and the copy no longer matches.
            copy.revision = revision
            for code, time, value in rows:
                copy.add(code, time, value)
        since = {p: moment_of(needed[p]) for p in fresh}
        loaded = load_series(conn, since=since)
        profiles = (
            load_profiles(conn, patients=list(fresh), since=min(since.values())) if fresh else {}
        )
        for patient_id, profile in profiles.items():
            self._copies[patient_id] = PatientCopy(
                revision, needed[patient_id], profile, loaded[patient_id]
            )
        for patient_id in batch:
            if patient_id in self._copies:  # not if the patient is gone
                self._touch(patient_id).trim()
        self._evict()
        return Advanced(
            histories={
                p: PatientHistory(patient_id=p, series=copy.series, profile=copy.profile)
                for p in batch
                if (copy := self._copies.get(p)) is not None
            },
            moments={p: _moments(rows) for p, rows in batch.items()},
            loaded=len(fresh),
        )

    def _current(self, patient_id: UUID, revision: int | None, needed_from: int) -> bool:
        copy = self._copies.get(patient_id)
        return (
            copy is not None
            and revision is not None
            and copy.revision == revision
            and copy.covers_from <= needed_from
        )

    def _touch(self, patient_id: UUID) -> PatientCopy:
        """The patient's copy, moved to the most recently seen end."""
        copy = self._copies.pop(patient_id)
        self._copies[patient_id] = copy
        return copy

    def _evict(self) -> None:
        while len(self._copies) > self._max_patients:
            del self._copies[next(iter(self._copies))]


def _moments(rows: Iterable[tuple[str, int, float]]) -> dict[datetime, frozenset[str]]:
    codes: dict[int, set[str]] = {}
    for code, time, _value in rows:
        codes.setdefault(time, set()).add(code)
    return {moment_of(time): frozenset(found) for time, found in codes.items()}
