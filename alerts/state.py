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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from typing import Final
from uuid import UUID

import psycopg

from alerts.context import HISTORY, PatientHistory, load_profiles, load_series
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
    """One patient's readings and profile (`history`) as of `revision`, from `covers_from` on."""

    revision: int
    covers_from: int
    """Microseconds: readings measured before this are not in the copy."""
    history: PatientHistory
    seen: int = 0
    """The batch that last touched it: the least recently seen copies are dropped first."""
    added: int = 0
    """Readings added since the copy was last trimmed."""

    def add(self, code: str, time: int, value: float) -> None:
        by_code = self.history.series
        series = by_code.get(code)
        if series is None:
            series = by_code[code] = Series()
        series.add(time, value)
        self.added += 1

    def trim(self) -> None:
        """Forget what no window can reach any more; looked at every few hundred readings."""
        if self.added < TRIM_EVERY:
            return
        self.added = 0
        series = self.history.series.values()
        newest = max((s.times[-1] for s in series if len(s)), default=None)
        if newest is None or newest - span(KEEP) <= self.covers_from + span(HISTORY):
            return
        self.covers_from = newest - span(KEEP)
        for one in series:
            one.forget_before(self.covers_from)


@dataclass(frozen=True, slots=True)
class Advanced:
    histories: Mapping[UUID, PatientHistory]
    moments: Mapping[UUID, Mapping[datetime, frozenset[str]]]
    """Per patient, each new reading's measured moment and the measurements taken then."""
    loaded: int
    """Patients whose readings had to be read from the database (not in memory, or stale)."""
    caught_up: int = 0
    """Patients whose copy read only what other workers had stored since."""


Rows = list[tuple[str, int, float]]
"""One patient's new readings: code, measured time (µs), value."""


class ReadingState:
    """One worker's copies, shared by its writers. Two batches touch one patient's copy only
    one after the other: each claims its patients first, and those row locks are held until it
    commits. The dictionary itself is changed by single operations only."""

    def __init__(self, *, max_patients: int = MAX_PATIENTS) -> None:
        self._copies: dict[UUID, PatientCopy] = {}
        self._max_patients = max_patients
        self._batches = 0

    def __len__(self) -> int:
        return len(self._copies)

    def advance(
        self,
        conn: psycopg.Connection,
        stored: Iterable[Reading],
        *,
        claimed: Callable[[], None] | None = None,
    ) -> Advanced:
        """Take a batch's stored readings into the copies, inside the transaction that stored
        them; returns what rules need for them. `stored` is grouped by patient in patient
        order, and for one patient and moment the reading stored first comes first."""
        batch = _by_patient(stored)
        if not batch:
            return Advanced(histories={}, moments={}, loaded=0)
        self._batches += 1
        copies, history = self._copies, span(HISTORY)
        held = {patient: copy for patient, *_ in batch if (copy := copies.get(patient))}
        revision, claimed_now = claim_revisions(
            conn,
            {patient: (first, last) for patient, _rows, first, last in batch},
            {patient: copy.revision for patient, copy in held.items()},
        )
        if claimed is not None:
            claimed()
        current: list[tuple[UUID, PatientCopy, Rows, datetime]] = []
        behind: dict[UUID, tuple[datetime, datetime]] = {}
        fresh: dict[UUID, tuple[int, Rows, datetime]] = {}
        for patient, rows, first, _last in batch:
            needed = micros(first) - history
            copy = held.get(patient)
            found = claimed_now.get(patient)
            if copy is None or found is None or copy.covers_from > needed:
                fresh[patient] = (needed, rows, first)
                continue
            # Claimed before it changes: should this transaction roll back, the chain never
            # holds it, and the copy no longer matches.
            copy.revision = revision
            current.append((patient, copy, rows, first))
            if not found.current and found.first is not None and found.last is not None:
                behind[patient] = (max(moment_of(copy.covers_from), found.first), found.last)
        if behind:  # other workers stored readings since: read just those
            for patient, by_code in load_series(conn, since=behind).items():
                copy = held[patient]
                for code, series in by_code.items():
                    for time, value in zip(series.times, series.values, strict=True):
                        copy.add(code, time, value)
        histories: dict[UUID, PatientHistory] = {}
        moments: dict[UUID, dict[datetime, frozenset[str]]] = {}
        for patient, copy, rows, first in current:
            for code, time, value in rows:
                copy.add(code, time, value)
            copy.seen = self._batches
            copy.trim()
            histories[patient] = copy.history
            moments[patient] = _moments(rows, first)
        if fresh:
            self._load(conn, fresh, revision=revision, histories=histories, moments=moments)
        return Advanced(
            histories=histories, moments=moments, loaded=len(fresh), caught_up=len(behind)
        )

    def _load(
        self,
        conn: psycopg.Connection,
        fresh: Mapping[UUID, tuple[int, Rows, datetime]],
        *,
        revision: int,
        histories: dict[UUID, PatientHistory],
        moments: dict[UUID, dict[datetime, frozenset[str]]],
    ) -> None:
        """Copies made anew from the database (this batch's readings included)."""
        since = {patient: moment_of(needed) for patient, (needed, *_) in fresh.items()}
        series = load_series(conn, since=since)
        profiles = load_profiles(conn, patients=list(fresh), since=min(since.values()))
        for patient, (needed, rows, first) in fresh.items():
            profile = profiles.get(patient)
            if profile is None:  # the patient is gone (erased meanwhile)
                self._copies.pop(patient, None)
                continue
            copy = PatientCopy(
                revision,
                needed,
                PatientHistory(patient_id=patient, series=series[patient], profile=profile),
                seen=self._batches,
            )
            self._copies[patient] = copy
            histories[patient] = copy.history
            moments[patient] = _moments(rows, first)
        if len(self._copies) > self._max_patients:
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently seen quarter of the copies."""
        by_age = sorted(self._copies.copy().items(), key=lambda item: item[1].seen)
        for patient, _copy in by_age[: len(by_age) // 4 + 1]:
            self._copies.pop(patient, None)


_ONE_CODE: dict[str, frozenset[str]] = {}


def _by_patient(stored: Iterable[Reading]) -> list[tuple[UUID, Rows, datetime, datetime]]:
    """Each patient's new readings, with the first and last measured moment among them."""
    batch = []
    for patient, group in groupby(stored, key=attrgetter("patient_id")):
        readings = list(group)
        if len(readings) == 1:  # the usual case
            one = readings[0]
            batch.append(
                (patient, [(one.code, micros(one.measured_at), one.value)], one.measured_at,
                 one.measured_at)
            )  # fmt: skip
            continue
        moments = [r.measured_at for r in readings]
        rows = [(r.code, micros(r.measured_at), r.value) for r in readings]
        batch.append((patient, rows, min(moments), max(moments)))
    return batch


def _moments(rows: Rows, first: datetime) -> dict[datetime, frozenset[str]]:
    """Each measured moment of a patient's new readings, with the measurements taken then;
    `first` is the earliest of them."""
    if len(rows) == 1:  # the usual case: one reading
        code = rows[0][0]
        codes = _ONE_CODE.get(code)
        if codes is None:
            codes = _ONE_CODE[code] = frozenset((code,))
        return {first: codes}
    by_time: dict[int, set[str]] = {}
    for code, time, _value in rows:
        by_time.setdefault(time, set()).add(code)
    return {moment_of(time): frozenset(found) for time, found in by_time.items()}
