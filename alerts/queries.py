"""Every read of alerts for people, in one place: the API, the dashboard and (later) FHIR show
the same rows with the same columns and order.

The callers check access first (care.access) and log what they showed; these functions only
read. The engine's own reads while it writes (alerts/lifecycle.py) stay with the writes,
under the patients' locks.

An alert is about one *instance* of a rule (`threshold:59408-5:low`: rule, measurement,
direction; `news2_partial`: the rule alone). The column that names it is historically called
``rule_id``; the rule's own id, as the catalogue (alerts/library/) and docs/rules.md list it,
is the instance up to its first colon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.access import NotVisibleError

StateFilter = Literal["open", "acknowledged", "resolved", "unresolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    patient_id: UUID
    rule_id: str
    """The rule, as the catalogue names it: "threshold"."""
    instance: str
    """What the alert is about: "threshold:59408-5:low" (one open alert per patient and
    instance; a snooze mutes one instance)."""
    rule_version: int
    severity: str
    category: str
    state: str
    code: str | None
    direction: str | None
    last_value: float | None
    first_measured_at: datetime
    last_measured_at: datetime
    occurrences: int
    late: bool
    details: dict[str, Any]
    route: str
    routed_to: UUID | None
    escalation_level: int
    escalate_at: datetime | None
    assigned_to: UUID | None
    acknowledged_by: UUID | None
    acknowledged_at: datetime | None
    resolved_by: UUID | None
    resolved_at: datetime | None
    outcome: str | None
    resolution_note: str | None
    created_at: datetime
    updated_at: datetime
    episode_id: int
    """The episode the alert is part of (alerts/episodes.py): what people act on."""


@dataclass(frozen=True, slots=True)
class Episode:
    """Alerts about one patient and one problem that arrived close together: one card, one
    acknowledgement, one notification per severity step. Its `parts` are the alerts, most
    severe first."""

    id: int
    patient_id: UUID
    problem: str
    severity: str
    state: str
    first_measured_at: datetime
    last_measured_at: datetime
    late: bool
    route: str
    routed_to: UUID | None
    escalation_level: int
    escalate_at: datetime | None
    assigned_to: UUID | None
    acknowledged_by: UUID | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    outcome: str | None
    created_at: datetime
    updated_at: datetime
    parts: tuple[Alert, ...] = ()

    @property
    def lead(self) -> Alert:
        """The part a step on the episode is addressed through (any part would do)."""
        return self.parts[0]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    at: datetime
    actor: UUID | None
    action: str
    details: dict[str, Any]


_COLUMNS = """
    a.id, a.patient_id, split_part(a.rule_id, ':', 1) AS rule_id, a.rule_id AS instance,
    a.rule_version, a.severity, a.category, a.state, a.code, a.direction, a.last_value,
    a.first_measured_at, a.last_measured_at, a.occurrences, a.late, a.details, a.route,
    a.routed_to, a.escalation_level, a.escalate_at, a.assigned_to, a.acknowledged_by,
    a.acknowledged_at, a.resolved_by, a.resolved_at, a.outcome, a.resolution_note,
    a.created_at, a.updated_at, a.episode_id
"""

_STATES = {
    "unresolved": "a.state <> 'resolved'",
    "open": "a.state = 'open'",
    "acknowledged": "a.state = 'acknowledged'",
    "resolved": "a.state = 'resolved'",
}


def find_alerts(
    conn: psycopg.Connection,
    *,
    state: StateFilter = "unresolved",
    patient_ids: Sequence[UUID] | None = None,
    visible: tuple[str, dict[str, Any]] | None = None,
    unit: UUID | None = None,
    severity: str | None = None,
    category: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Alert]:
    """Alerts red first, then the most recently changed. `patient_ids` names the patients
    (already allowed); `visible` is care.access's filter over ``patients p`` for a caller
    who may see many. Only the filters given become conditions, so each use keeps a plan
    that fits its indexes."""
    where = [_STATES[state]]
    parameters: dict[str, Any] = {"offset": offset}
    if visible is not None:
        condition, visible_parameters = visible
        where.append(f"a.patient_id IN (SELECT p.id FROM patients p WHERE {condition})")
        parameters |= visible_parameters
    if patient_ids is not None:
        where.append("a.patient_id = ANY(%(patients)s)")
        parameters["patients"] = list(patient_ids)
    for column, value, name in (
        ("a.routed_to = %(unit)s", unit, "unit"),
        ("a.severity = %(severity)s", severity, "severity"),
        ("a.category = %(category)s", category, "category"),
    ):
        if value is not None:
            where.append(column)
            parameters[name] = value
    paging = "OFFSET %(offset)s"
    if limit is not None:
        paging = "LIMIT %(limit)s " + paging
        parameters["limit"] = limit
    with conn.cursor(row_factory=class_row(Alert)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM alerts a WHERE {' AND '.join(where)}"
            f" ORDER BY a.severity = 'red' DESC, a.updated_at DESC, a.id DESC {paging}",
            parameters,
        ).fetchall()


def unresolved_alerts(conn: psycopg.Connection, *, patient_ids: Sequence[UUID]) -> list[Alert]:
    """The patients' alerts not yet resolved, red before yellow, newest first."""
    return find_alerts(conn, patient_ids=patient_ids)


_EPISODE_COLUMNS = """
    e.id, e.patient_id, e.problem, e.severity, e.state, e.first_measured_at,
    e.last_measured_at, e.late, e.route, e.routed_to, e.escalation_level, e.escalate_at,
    e.assigned_to, e.acknowledged_by, e.acknowledged_at, e.resolved_at, e.outcome,
    e.created_at, e.updated_at
"""


def unresolved_episodes(conn: psycopg.Connection, *, patient_ids: Sequence[UUID]) -> list[Episode]:
    """The patients' episodes not yet resolved, each with its unresolved alerts: red first,
    then the most recently changed (as `find_alerts` orders alerts)."""
    parts: dict[int, list[Alert]] = {}
    for alert in find_alerts(conn, patient_ids=patient_ids):
        parts.setdefault(alert.episode_id, []).append(alert)
    if not parts:
        return []
    with conn.cursor(row_factory=class_row(Episode)) as cur:
        episodes = cur.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes e WHERE e.id = ANY(%s)"
            " ORDER BY e.severity = 'red' DESC, e.updated_at DESC, e.id DESC",
            (list(parts),),
        ).fetchall()
    return [replace(episode, parts=tuple(parts[episode.id])) for episode in episodes]


def find_alert(conn: psycopg.Connection, *, alert_id: int) -> Alert | None:
    with conn.cursor(row_factory=class_row(Alert)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM alerts a WHERE a.id = %s", (alert_id,)
        ).fetchone()


def alert_events(conn: psycopg.Connection, *, alert_id: int) -> list[AlertEvent]:
    """Every step taken on the alert, in order."""
    with conn.cursor(row_factory=class_row(AlertEvent)) as cur:
        return cur.execute(
            "SELECT at, actor, action, details FROM alert_events WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()


def patient_of_alert(conn: psycopg.Connection, *, alert_id: int) -> UUID:
    """Whose alert it is, for the access check; NotVisibleError when there is none, as for
    one the caller may not see (a caller learns nothing from probing ids)."""
    row = conn.execute("SELECT patient_id FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise NotVisibleError
    return row[0]
