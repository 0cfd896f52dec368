"""The worklist's data: the viewer's patients in the order a nurse works them, and for the ones
shown, why each is flagged, who is on it, and the newest values with their last days.

Two steps, so the cost follows the screen and not the size of the service. First one statement
orders every patient the viewer may see (care.access's filter, then the filters chosen): red,
yellow, missing data, green, then the longest-waiting alert first. Only then are the details
read, set-based, for the page of patients that is shown (`WorklistFilters.shown`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

import psycopg

from alerts.outbox import SentNotification, recent_notifications
from alerts.queries import Alert, Episode, unresolved_episodes
from care.access import (
    ROLES,
    Action,
    Interface,
    Permission,
    Reason,
    authorize,
    do_log_access,
    visible_patients_filter,
)
from care.handover import Handover, pending_handovers
from care.models import Condition, Patient
from care.people import current
from care.service import list_patients
from core import catalog
from core.limits import Limits, Severity
from core.readings import Reading, latest_readings
from dashboard.data.alert_steps import (
    Colleague,
    Note,
    Snooze,
    colleagues,
    notes_of,
    snoozes_of,
    staff_names,
)
from dashboard.data.viewing import View, already_logged

WORKLIST_RESOURCE: Final = "worklist"
PAGE_SIZE: Final = 50
"""Patients drawn per page; the filters and the search narrow a long list."""
SPARKLINE_WINDOW: Final = timedelta(days=7)


def severity_of(alerts: Sequence[Alert | Episode]) -> Severity:
    """The patient's state: the worst unresolved alert (or episode), green without any."""
    return max((Severity(a.severity) for a in alerts), key=lambda s: s.rank, default=Severity.GREEN)


class Standing(StrEnum):
    """Where a patient stands on the worklist, most urgent first: a red alert; a yellow
    clinical one; only missing measurements or a device problem (adherence, technical); none."""

    RED = "red"
    YELLOW = "yellow"
    MISSING_DATA = "missing"
    GREEN = "green"


STANDINGS: Final = tuple(Standing)


class AlertState(StrEnum):
    """The state filter: a patient with an unresolved alert that is ..."""

    NEW = "new"
    """... not acknowledged yet."""
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    UNASSIGNED = "unassigned"


CONDITIONS: Final = tuple(Condition)


@dataclass(frozen=True, slots=True)
class WorklistFilters:
    """What the nurse narrowed the list to; it lives in the page's address (dashboard.links)."""

    unit: UUID | None = None
    condition: Condition | None = None
    standing: Standing | None = None
    state: AlertState | None = None
    mine: bool = False
    """Only patients with an alert assigned to the viewer."""
    unacknowledged: bool = False
    name: str = ""
    """A part of the patient's name, any case."""
    shown: int = PAGE_SIZE


@dataclass(frozen=True, slots=True)
class Unit:
    id: UUID
    name: str


@dataclass(frozen=True, slots=True)
class WorklistRow:
    patient: Patient
    standing: Standing
    waiting_since: datetime | None
    """When the patient's oldest unresolved alert was raised."""
    episodes: list[Episode] = field(default_factory=list)
    """Unresolved, red first (alerts.queries.unresolved_episodes)."""
    latest: list[Reading] = field(default_factory=list)
    """The newest reading per measurement, in catalog order."""
    recent: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    """Each measurement's readings of the last `SPARKLINE_WINDOW`, oldest first."""
    limits: dict[str, Limits] = field(default_factory=dict)
    handover: Handover | None = None
    """A hand-over proposed and not yet answered."""
    notes: dict[int, list[Note]] = field(default_factory=dict)
    """Per episode id."""

    @property
    def alerts(self) -> list[Alert]:
        return [alert for episode in self.episodes for alert in episode.parts]

    @property
    def last_measured_at(self) -> datetime | None:
        return max((r.measured_at for r in self.latest), default=None)


@dataclass(frozen=True, slots=True)
class Worklist:
    rows: list[WorklistRow]
    """The page shown, in worklist order."""
    counts: dict[Standing, int]
    """Of every patient the filters let through, not only those shown."""
    units: list[Unit]
    """The units responsible for the viewer's patients: the unit filter's choices."""
    names: dict[UUID, str]
    """Staff who acknowledged or hold a shown episode."""
    colleagues: list[Colleague]
    """Who an alert can be given to."""
    can_act: bool
    snoozes: dict[int, Snooze] = field(default_factory=dict)
    """The snooze in force on a shown episode, by episode id."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_STATE_CONDITIONS: Final = {
    AlertState.NEW: "f.unacknowledged",
    AlertState.ACKNOWLEDGED: "f.acknowledged AND NOT f.unacknowledged",
    AlertState.ASSIGNED: "f.assigned",
    AlertState.UNASSIGNED: "f.unassigned",
}


def _ordered(
    conn: psycopg.Connection,
    *,
    visible: tuple[str, dict[str, Any]],
    filters: WorklistFilters,
    viewer: UUID | None,
    now: datetime,
) -> list[tuple[UUID, Standing, datetime | None]]:
    """Every patient the viewer may see that the filters let through, in worklist order."""
    condition, parameters = visible
    listed = [condition]
    outer = ["true"]
    parameters = {**parameters, "now": now, "viewer": viewer}
    if filters.name.strip():
        escaped = filters.name.strip().replace("\\", "\\\\").replace("%", r"\%")
        parameters["name"] = "%" + escaped.replace("_", r"\_") + "%"
        listed.append("p.display_name ILIKE %(name)s")
    if filters.condition is not None:
        parameters["condition"] = filters.condition.value
        listed.append("%(condition)s = ANY(p.conditions)")
    if filters.unit is not None:
        parameters["unit"] = filters.unit
        listed.append(
            "EXISTS (SELECT 1 FROM patient_responsibility r WHERE r.patient_id = p.id"
            f" AND r.role = 'responsible' AND r.organisation_id = %(unit)s AND {current('r')})"
        )
    if filters.standing is not None:
        parameters["standing"] = filters.standing.value
        outer.append("standing = %(standing)s")
    if filters.state is not None:
        outer.append(_STATE_CONDITIONS[filters.state])
    if filters.mine:
        outer.append("f.mine")
    if filters.unacknowledged:
        outer.append("f.unacknowledged")
    rows = conn.execute(
        f"""
        WITH listed AS (
            SELECT p.id, p.display_name FROM patients p WHERE {" AND ".join(listed)}
        ), flagged AS (
            SELECT a.patient_id,
                   CASE WHEN bool_or(a.severity = 'red') THEN 'red'
                        WHEN bool_or(a.category = 'clinical') THEN 'yellow'
                        ELSE 'missing' END AS standing,
                   min(a.created_at) AS waiting_since,
                   bool_or(a.state = 'open') AS unacknowledged,
                   bool_or(a.state = 'acknowledged') AS acknowledged,
                   bool_or(a.assigned_to IS NOT NULL) AS assigned,
                   bool_or(a.assigned_to IS NULL) AS unassigned,
                   bool_or(a.assigned_to = %(viewer)s) AS mine
              FROM alerts a JOIN listed l ON l.id = a.patient_id
             WHERE a.state <> 'resolved'
             GROUP BY a.patient_id
        )
        SELECT id, standing, waiting_since FROM (
            SELECT l.id, l.display_name, coalesce(f.standing, 'green') AS standing,
                   f.waiting_since, f.unacknowledged, f.acknowledged, f.assigned, f.unassigned,
                   f.mine
              FROM listed l LEFT JOIN flagged f ON f.patient_id = l.id
        ) AS f
         WHERE {" AND ".join(outer)}
         ORDER BY array_position(%(order)s::text[], standing), waiting_since NULLS LAST,
                  display_name, id
        """,
        {**parameters, "order": [s.value for s in STANDINGS]},
    ).fetchall()
    return [(row[0], Standing(row[1]), row[2]) for row in rows]


def _units(
    conn: psycopg.Connection, *, visible: tuple[str, dict[str, Any]], now: datetime
) -> list[Unit]:
    condition, parameters = visible
    rows = conn.execute(
        f"""
        SELECT DISTINCT o.id, o.name
          FROM patient_responsibility r JOIN organisations o ON o.id = r.organisation_id
         WHERE r.role = 'responsible' AND {current("r")}
           AND r.patient_id IN (SELECT p.id FROM patients p WHERE {condition})
         ORDER BY o.name, o.id
        """,
        {**parameters, "now": now},
    ).fetchall()
    return [Unit(id=row[0], name=row[1]) for row in rows]


def _recent(
    conn: psycopg.Connection, *, patient_ids: list[UUID], since: datetime
) -> dict[UUID, dict[str, list[tuple[datetime, float]]]]:
    """The shown patients' readings since `since`, per patient and measurement, oldest first."""
    found: dict[UUID, dict[str, list[tuple[datetime, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    rows = conn.execute(
        "SELECT patient_id, code, measured_at, value FROM readings"
        " WHERE patient_id = ANY(%s) AND measured_at >= %s ORDER BY measured_at",
        (patient_ids, since),
    )
    for patient_id, code, measured_at, value in rows:
        found[patient_id][code].append((measured_at, value))
    return found


def _limits(conn: psycopg.Connection, *, patient_ids: list[UUID]) -> dict[UUID, dict[str, Limits]]:
    """The shown patients' care-plan limits, per patient and measurement."""
    found: dict[UUID, dict[str, Limits]] = defaultdict(dict)
    rows = conn.execute(
        "SELECT patient_id, code, low, high, red_low, red_high FROM care_plan_limits"
        " WHERE patient_id = ANY(%s)",
        (patient_ids,),
    )
    for patient_id, code, *bounds in rows:
        found[patient_id][code] = Limits(code, *bounds)
    return found


def load_worklist(
    conn: psycopg.Connection, *, view: View, filters: WorklistFilters | None = None
) -> Worklist:
    """The worklist as the filters narrow it, with one access-log row naming every patient
    shown (a nurse sees her care teams' patients now; care.access filters them in SQL)."""
    filters = filters or WorklistFilters()
    now, principal = view.now, view.principal
    reason = authorize(conn, principal=principal, permission=Permission.READ_PATIENT, now=now)
    visible = visible_patients_filter(principal, now=now)
    viewer = principal.uuid if principal.kind == "staff" else None
    ordered = _ordered(conn, visible=visible, filters=filters, viewer=viewer, now=now)
    counts = dict.fromkeys(STANDINGS, 0)
    for _id, standing, _since in ordered:
        counts[standing] += 1
    page = ordered[: max(filters.shown, 1)]
    patient_ids = [patient_id for patient_id, _standing, _since in page]
    if not already_logged(conn, view=view, resource=WORKLIST_RESOURCE, patient_ids=patient_ids):
        do_log_access(
            conn,
            principal=principal,
            patient_ids=patient_ids,
            resource=WORKLIST_RESOURCE,
            action=Action.READ,
            interface=Interface.DASHBOARD,
            # Staff see the list through their care teams (administrators too); a patient, self.
            reason=Reason.CARE_TEAM if reason is Reason.ADMINISTRATION else reason,
            now=now,
        )
    can_act = principal.kind == "staff" and principal.role in ROLES[Permission.ACT_ON_ALERT]
    units = _units(conn, visible=visible, now=now)
    if not page:
        return Worklist([], counts, units, {}, [], can_act)
    patients = {
        p.id: p
        for p in list_patients(
            conn, now=now, visible=("p.id = ANY(%(shown)s)", {"shown": patient_ids})
        )
    }
    order = {m.code: i for i, m in enumerate(catalog.MEASUREMENTS)}
    latest: dict[UUID, list[Reading]] = defaultdict(list)
    for reading in latest_readings(conn, patient_ids=patient_ids):
        latest[reading.patient_id].append(reading)
    episodes: dict[UUID, list[Episode]] = defaultdict(list)
    for episode in unresolved_episodes(conn, patient_ids=patient_ids):
        episodes[episode.patient_id].append(episode)
    every_episode = [e for shown in episodes.values() for e in shown]
    notes = notes_of(conn, episode_ids=[e.id for e in every_episode])
    recent = _recent(conn, patient_ids=patient_ids, since=now - SPARKLINE_WINDOW)
    limits = _limits(conn, patient_ids=patient_ids)
    handovers = {h.patient_id: h for h in pending_handovers(conn, patient_ids=patient_ids)}
    rows = [
        WorklistRow(
            patient=patients[patient_id],
            standing=standing,
            waiting_since=since,
            episodes=episodes[patient_id],
            latest=sorted(latest[patient_id], key=lambda r: order.get(r.code, len(order))),
            recent=dict(recent[patient_id]),
            limits=limits[patient_id],
            handover=handovers.get(patient_id),
            notes={e.id: notes[e.id] for e in episodes[patient_id] if e.id in notes},
        )
        for patient_id, standing, since in page
        if patient_id in patients
    ]
    return Worklist(
        rows=rows,
        counts=counts,
        units=units,
        names=staff_names(conn, episodes=every_episode),
        colleagues=colleagues(conn, staff_id=principal.uuid, now=now) if can_act else [],
        can_act=can_act,
        snoozes=snoozes_of(conn, episodes=every_episode, now=now),
    )


def demo_outbox(conn: psycopg.Connection, rows: Sequence[WorklistRow]) -> list[SentNotification]:
    """The demo's notifications, only about the patients the worklist was allowed to show."""
    return recent_notifications(conn, patient_ids=[row.patient.id for row in rows])
