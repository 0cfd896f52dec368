"""The rule engine: streaming on ingest, plus a periodic sweep for time-based rules.

On ingest, every patient with new readings is evaluated at each new reading's own measured time
(a late or replayed reading sees the patient as they were then), inside the transaction that
stored the readings: a reading is stored if and only if it has been evaluated. At each such
moment only the rules that the measurements taken then can change are run (`Rule.triggers`);
a questionnaire answer runs them all. A finding about a state that newer readings have already
replaced is marked *late* rather than raised as news.

The readings rules look back on come from the worker's memory (alerts/state.py), so the cost
of a reading does not grow with the patient's history; `do_evaluate` recomputes from the
database and is the reference the memory is tested against.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from uuid import UUID

import psycopg

from alerts.adherence import adherence_findings, scheduled_measurements
from alerts.context import PatientHistory, load_histories
from alerts.escalation import do_escalate_due
from alerts.findings import Category, Finding, PatientContext, Severity
from alerts.library.catalogue import RULES, RULES_BY_ID, Rule
from alerts.library.symptoms import gate
from alerts.lifecycle import do_apply_batch
from alerts.reminders import do_remind
from alerts.state import ReadingState
from core.clock import Clock
from core.readings import Reading

log = logging.getLogger(__name__)
Evaluator = Callable[[PatientContext], list[Finding]]
Findings = dict[UUID, list[tuple[Finding, bool]]]
"""Per patient, each finding with whether it is late."""


def _stored_order(reading: Reading) -> tuple[int, datetime, datetime | None, str]:
    """By patient, then as `load_series` orders a patient's readings (the first stored counts)."""
    return reading.patient_id.int, reading.measured_at, reading.received_at, reading.device_id


_EVERY_RULE: tuple[tuple[Rule, Evaluator], ...] = tuple(
    (r, r.evaluate) for r in RULES if r.evaluate is not None
)


@cache
def _triggered_by(measured: frozenset[str]) -> tuple[tuple[Rule, Evaluator], ...]:
    return tuple((rule, evaluate) for rule, evaluate in _EVERY_RULE if rule.triggers & measured)


def findings_at(
    history: PatientHistory, moment: datetime, *, measured: frozenset[str] | None = None
) -> list[Finding]:
    """The findings for one patient as of `moment`, symptom-gated: of every rule, or only of
    those a reading of the `measured` codes can change."""
    context = history.at(moment, measured=measured)
    rules = _EVERY_RULE if measured is None else _triggered_by(measured)
    found: list[Finding] = []
    for rule, evaluate in rules:
        try:
            found += evaluate(context)
        except Exception as error:  # noqa: BLE001  # a bug in one rule must not stop the others
            found.append(rule_failed(rule, context, error))
    return gate(found, context)


def rule_failed(rule: Rule, context: PatientContext, error: Exception) -> Finding:
    """A rule raised instead of judging: a red technical finding says the patient went without
    it, so a nurse sees the gap; the readings themselves are stored. Logged once per rule and
    process, as a broken rule fails on every reading."""
    if rule.id not in _failed_rules:
        _failed_rules.add(rule.id)
        log.error("rule %s failed; raising technical alerts", rule.id, exc_info=error)
    return Finding(
        rule=RULE_FAILED,
        rule_version=RULES_BY_ID[RULE_FAILED].version,
        instance=f"{RULE_FAILED}:{rule.id}",
        severity=Severity.RED,
        category=Category.TECHNICAL,
        measured_at=context.at,
        details={"rule": rule.id, "version": rule.version, "error": repr(error)[:500]},
    )


RULE_FAILED = "rule_failed"
_failed_rules: set[str] = set()


def evaluate_moments(
    histories: Mapping[UUID, PatientHistory],
    moments: Mapping[UUID, Mapping[datetime, frozenset[str] | None]],
) -> Findings:
    """Each patient at each moment, oldest first (a sliding baseline moves forward)."""
    found: Findings = {}
    for patient_id, history in histories.items():
        at = moments[patient_id]
        mine: list[tuple[Finding, bool]] = []
        for moment in sorted(at):
            for finding in findings_at(history, moment, measured=at[moment]):
                mine.append((finding, history.newer_than(finding.code, finding.measured_at)))
        if mine:
            found[patient_id] = mine
    return found


def do_evaluate(
    conn: psycopg.Connection,
    *,
    moments: Mapping[UUID, Iterable[datetime]],
    now: datetime,
) -> None:
    """Evaluate each patient at each of the given times with every rule, from the database."""
    at: dict[UUID, dict[datetime, frozenset[str] | None]] = {
        patient: dict.fromkeys(times) for patient, times in moments.items()
    }
    spans = {patient: (min(times), max(times)) for patient, times in at.items() if times}
    histories = load_histories(conn, spans=spans)
    found = evaluate_moments(histories, at)
    do_apply_batch(conn, batch=found, now=now)


def engine_hook(
    *,
    clock: Clock,
    state: ReadingState | None = None,
    claimed: Callable[[], None] | None = None,
) -> Callable[[psycopg.Connection, Sequence[Reading]], None]:
    """The engine as an ingest hook, over the readings this transaction stored. `state` is the
    worker's memory of recent readings; each hook keeps its own unless one is given.
    `claimed` is called once the batch's patients are locked (the ingest's writers take turns
    until then: core/turns.py)."""
    kept = ReadingState() if state is None else state

    def evaluate(conn: psycopg.Connection, stored: Sequence[Reading]) -> None:
        if not stored:
            return
        ordered = sorted(stored, key=_stored_order)
        advanced = kept.advance(conn, ordered, claimed=claimed)
        found = evaluate_moments(advanced.histories, advanced.moments)
        do_apply_batch(conn, batch=found, now=clock.now())

    return evaluate


def do_sweep(conn: psycopg.Connection, *, now: datetime) -> None:
    """The time-based part: reminders to patients, missing measurements (after the reminder's
    second deadline), silent devices, and escalation."""
    batch: Findings = defaultdict(list)
    with conn.transaction():
        schedule = do_remind(conn, schedule=scheduled_measurements(conn, now=now), now=now)
        for patient_id, finding in adherence_findings(conn, now=now, schedule=schedule):
            batch[patient_id].append((finding, False))
        do_apply_batch(conn, batch=batch, now=now)
    do_escalate_due(conn, now=now)
