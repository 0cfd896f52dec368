"""The rule engine: streaming on ingest, plus a periodic sweep for time-based rules.

On ingest, every patient with new readings is evaluated at each new reading's own measured time
(a late or replayed reading sees the patient as they were then), inside the transaction that
stored the readings: a reading is stored if and only if it has been evaluated. A finding about
a state that newer readings have already replaced is marked *late* rather than raised as news.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from uuid import UUID

import psycopg

from alerts.adherence import adherence_findings
from alerts.context import PatientHistory, load_histories
from alerts.escalation import do_escalate_due
from alerts.findings import Finding
from alerts.library.catalogue import RULES
from alerts.library.symptoms import gate
from alerts.lifecycle import do_apply_batch
from core.clock import Clock
from core.readings import STORED_NOW


def findings_at(history: PatientHistory, moment: datetime) -> list[Finding]:
    """Every rule's findings for one patient as of `moment`, symptom-gated."""
    context = history.at(moment)
    found = [
        finding for rule in RULES if rule.evaluate is not None for finding in rule.evaluate(context)
    ]
    return gate(found, context)


def do_evaluate(
    conn: psycopg.Connection,
    *,
    moments: Mapping[UUID, Iterable[datetime]],
    now: datetime,
    public_url: str,
) -> None:
    """Evaluate each patient at each of the given measured times, oldest first."""
    spans = {
        patient: (min(times), max(times))
        for patient, times in ((p, sorted(set(t))) for p, t in moments.items())
        if times
    }
    histories = load_histories(conn, spans=spans)
    batch: dict[UUID, list[tuple[Finding, bool]]] = defaultdict(list)
    for patient_id, history in histories.items():
        for moment in sorted(set(moments[patient_id])):
            for finding in findings_at(history, moment):
                late = history.newer_than(finding.code, finding.measured_at)
                batch[patient_id].append((finding, late))
    do_apply_batch(conn, batch=batch, now=now, public_url=public_url)


def engine_hook(*, clock: Clock, public_url: str) -> Callable[[psycopg.Connection], None]:
    """The engine as an ingest hook, over the readings this transaction stored."""

    def evaluate(conn: psycopg.Connection) -> None:
        moments: dict[UUID, set[datetime]] = defaultdict(set)
        for patient_id, measured_at in conn.execute(
            f"SELECT DISTINCT patient_id, measured_at FROM {STORED_NOW}"
        ):
            moments[patient_id].add(measured_at)
        if moments:
            do_evaluate(conn, moments=moments, now=clock.now(), public_url=public_url)

    return evaluate


def do_sweep(conn: psycopg.Connection, *, now: datetime, public_url: str) -> None:
    """The time-based part: missing measurements, silent devices, and escalation."""
    batch: dict[UUID, list[tuple[Finding, bool]]] = defaultdict(list)
    for patient_id, finding in adherence_findings(conn, now=now):
        batch[patient_id].append((finding, False))
    with conn.transaction():
        do_apply_batch(conn, batch=batch, now=now, public_url=public_url)
    do_escalate_due(conn, now=now, public_url=public_url)
