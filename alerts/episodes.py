"""Episodes: the alerts about one patient and one problem that arrive close together, seen,
acknowledged, notified and resolved as one.

Why: one fall in SpO2 makes three findings (the limit, the fall below the patient's own
baseline, partial NEWS2). As three alerts they were three cards, three acknowledgements and
three notifications for one thing to do: call the patient. An episode keeps every alert as
its part (the audit trail and the figures stay per rule) and is what people act on.

- **Problem.** The finding's category: clinical (a deterioration, whichever rules see it),
  adherence (scheduled measurements not coming) or technical (a silent device, a rule that
  failed, a notification that could not be delivered). A nurse answers each differently:
  call the patient, remind them, fix the equipment.
- **Start.** An alert opens for a patient with no unresolved episode of that problem whose
  findings reach within `GAP` of the new one: a new episode, routed to the unit responsible
  now and notified once, listing every rule in it.
- **Join.** An alert that opens while such an episode is unresolved and its findings span
  reaches within `GAP` of the new finding becomes its part. It notifies only when it makes
  the episode worse (a red finding inside a yellow episode notifies again); otherwise the
  card shows it and nobody is disturbed. Repeats fold into their alert, and so keep its
  episode going, as they always did.
- **End.** A person resolves the episode (all its parts with it, alerts/actions.py). An
  unresolved episode whose latest finding is more than `GAP` older than a new one takes no
  newcomers: that finding starts an episode of its own, since it is news.

Grouping is done per batch, set-based, under the patients' locks the lifecycle already takes:
one read of the batch's unresolved episodes and a statement or two for the new ones and the
changed ones, whatever the batch holds (alerts/lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg

from alerts.findings import Finding, Severity

GAP: Final = timedelta(hours=48)
"""How close together findings must be to form one episode: two days, so a patient who
measures each morning (give or take an hour) stays in one episode while they worsen."""


@dataclass(slots=True)
class Episode:
    """An unresolved episode as this batch sees it (None id: made in this batch)."""

    patient_id: UUID
    problem: str
    severity: Severity
    first_measured_at: datetime
    last_measured_at: datetime
    id: int | None = None
    state: str = "open"
    routed_to: UUID | None = None
    route: str = "responsible"
    was: Severity | None = None
    """Its severity before this batch; None for one this batch starts."""
    late: bool = False
    new_parts: list[tuple[Finding, int]] = field(default_factory=list)
    """(finding, alert id) of the alerts this batch opened in it."""
    raised_by: int | None = None
    """The alert whose finding made it worse in this batch."""
    touched: bool = False

    def reaches(self, moment: datetime) -> bool:
        return self.first_measured_at - GAP <= moment <= self.last_measured_at + GAP

    def take(self, finding: Finding, *, late: bool, alert_id: int | None = None) -> None:
        """Count a finding of one of its parts (new or repeated)."""
        self.first_measured_at = min(self.first_measured_at, finding.measured_at)
        self.last_measured_at = max(self.last_measured_at, finding.measured_at)
        self.late = self.late or late
        self.touched = True
        if finding.severity.rank > self.severity.rank:
            self.severity = finding.severity
            self.raised_by = alert_id

    @property
    def raised(self) -> bool:
        return self.was is not None and self.severity.rank > self.was.rank


Key = tuple[UUID, str]
"""(patient, problem)."""


def problem_of(finding: Finding) -> str:
    return finding.category.value


class Batch:
    """The batch's patients' unresolved episodes, read once and locked; those it starts."""

    def __init__(self, conn: psycopg.Connection, *, patients: Sequence[UUID]) -> None:
        self.by_id: dict[int, Episode] = {}
        self.by_key: dict[Key, list[Episode]] = {}
        for row in conn.execute(
            "SELECT id, patient_id, problem, severity, first_measured_at, last_measured_at,"
            " state, routed_to, route FROM alert_episodes"
            " WHERE patient_id = ANY(%b) AND state <> 'resolved' ORDER BY id FOR UPDATE",
            (list(patients),),
        ):
            episode_id, patient, problem, severity, first, last, state, unit, route = row
            episode = Episode(
                patient, problem, Severity(severity), first, last, episode_id, state, unit,
                route, was=Severity(severity),
            )  # fmt: skip
            self.by_id[episode_id] = episode
            self.by_key.setdefault((patient, problem), []).append(episode)
        self.started: list[Episode] = []

    def episode_for(self, patient: UUID, finding: Finding) -> Episode:
        """The unresolved episode a newly opened alert joins, or a new one it starts."""
        key = (patient, problem_of(finding))
        mine = self.by_key.setdefault(key, [])
        joinable = [e for e in mine if e.reaches(finding.measured_at)]
        if joinable:
            return max(joinable, key=lambda e: e.last_measured_at)
        started = Episode(
            patient, key[1], finding.severity, finding.measured_at, finding.measured_at
        )
        mine.append(started)
        self.started.append(started)
        return started

    def do_insert_started(
        self, conn: psycopg.Connection, *, routes: Sequence[tuple[Any, ...]], now: datetime
    ) -> None:
        """Write the episodes this batch starts, in one statement; `routes` gives each its
        (unit, route, escalate_at), in `started` order."""
        if not self.started:
            return
        columns = list(zip(*((e.patient_id, e.problem, e.severity.value) for e in self.started),
                           strict=True))  # fmt: skip
        units, route_names, deadlines = (list(c) for c in zip(*routes, strict=True))
        ids = [
            row[0]
            for row in conn.execute(
                """
                INSERT INTO alert_episodes (patient_id, problem, severity, first_measured_at,
                                            last_measured_at, created_at, updated_at,
                                            routed_to, route, escalate_at)
                SELECT v.patient_id, v.problem, v.severity, v.first, v.last, %(now)s, %(now)s,
                       v.unit, v.route, v.escalate_at
                  FROM unnest(%(patient)b::uuid[], %(problem)b::text[], %(severity)b::text[],
                              %(first)b::timestamptz[], %(last)b::timestamptz[],
                              %(unit)b::uuid[], %(route)b::text[],
                              %(escalate_at)b::timestamptz[], %(ord)b::int[])
                       AS v(patient_id, problem, severity, first, last, unit, route,
                            escalate_at, ord)
                 ORDER BY v.ord
                RETURNING id
                """,
                {
                    "patient": list(columns[0]),
                    "problem": list(columns[1]),
                    "severity": list(columns[2]),
                    "first": [e.first_measured_at for e in self.started],
                    "last": [e.last_measured_at for e in self.started],
                    "unit": units,
                    "route": route_names,
                    "escalate_at": deadlines,
                    "ord": list(range(len(self.started))),
                    "now": now,
                },
            )
        ]
        # Identity values are drawn in the order rows are inserted, which ORDER BY fixes.
        for episode, episode_id, (unit, route, _deadline) in zip(
            self.started, sorted(ids), routes, strict=True
        ):
            episode.id, episode.routed_to, episode.route = episode_id, unit, route
            self.by_id[episode_id] = episode

    def changed(self) -> list[Episode]:
        """Episodes that existed before this batch and took findings in it."""
        return [e for e in self.by_id.values() if e.was is not None and e.touched]
