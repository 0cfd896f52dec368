"""Deviations (avvik) to follow up: the cases where the service did not work as it should,
each with the unit it belongs to, and the patient and a link to the case only for a viewer who
may see that patient (a care team of theirs follows them now). The one list behind the page,
the API and the CSV for the deviation system; docs/figures.md defines each kind.

Events (a breached deadline, an escalation to on-call, a dead notification) are those of the
period; states (a silent device, a patient without a care plan or a responsible unit, an
unanswered hand-over) are those of now, whatever the period.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.access import (
    Action,
    Interface,
    Permission,
    Reason,
    authorize,
    do_log_access,
    visible_patients_filter,
)
from care.people import current
from core.auth import Principal
from core.links import DASHBOARD_PATH, patient_path
from quality.figures import Period

DEVIATIONS_RESOURCE: Final = "deviations"
HANDOVER_ANSWER_WITHIN: Final = timedelta(hours=48)
"""A proposed hand-over nobody has answered for longer than this is a deviation."""

KINDS: Final = (
    "acknowledgement_deadline_breached",
    "escalated_to_on_call",
    "notification_dead",
    "reminder_dead",
    "device_silent",
    "no_care_plan",
    "no_responsible_unit",
    "handover_unanswered",
)


@dataclass(frozen=True, slots=True)
class Deviation:
    kind: str
    at: datetime
    """When it happened, or since when the state has lasted."""
    unit_id: UUID | None
    unit: str | None
    reference: str
    """What it is about, without a name: the alert, notification, device or hand-over."""
    patient_id: UUID | None
    """Only for a viewer who may see the patient; None otherwise."""
    patient: str | None

    def link(self, base: str = DASHBOARD_PATH) -> str | None:
        return None if self.patient_id is None else patient_path(self.patient_id, base=base)


_RESPONSIBLE_AT: Final = """
    LEFT JOIN patient_responsibility r
      ON r.patient_id = p.id AND r.role = 'responsible'
     AND r.valid_from <= {at} AND (r.valid_to IS NULL OR r.valid_to > {at})
    LEFT JOIN organisations o ON o.id = r.organisation_id
"""

_ALERT_DEVIATIONS: Final = """
    -- An alert escalates only when nobody acknowledged it by its deadline: its first
    -- escalation in the period is the breach; every step to on-call is one more deviation.
    SELECT 'acknowledgement_deadline_breached' AS kind, min(e.at) AS at, a.patient_id,
           'alert ' || a.id AS reference
      FROM alert_events e JOIN alerts a ON a.id = e.alert_id
     WHERE e.action = 'escalated'
     GROUP BY a.id, a.patient_id
    HAVING min(e.at) >= %(start)s AND min(e.at) < %(end)s
    UNION ALL
    SELECT 'escalated_to_on_call', e.at, a.patient_id, 'alert ' || a.id
      FROM alert_events e JOIN alerts a ON a.id = e.alert_id
     WHERE e.action = 'escalated' AND e.details->>'to' = 'on_call'
       AND e.at >= %(start)s AND e.at < %(end)s
    UNION ALL
    SELECT 'notification_dead', n.created_at, a.patient_id, 'notification ' || n.id
      FROM notifications n JOIN alerts a ON a.id = n.alert_id
     WHERE n.state = 'dead' AND n.created_at >= %(start)s AND n.created_at < %(end)s
    UNION ALL
    -- A reminder that did not reach the patient (alerts/reminders.py): their address needs
    -- a look before the next missing measurement.
    SELECT 'reminder_dead', n.created_at, r.patient_id, 'notification ' || n.id
      FROM notifications n JOIN reminders r ON r.id = n.reminder_id
     WHERE n.state = 'dead' AND n.created_at >= %(start)s AND n.created_at < %(end)s
"""

_STATE_DEVIATIONS: Final = f"""
    -- A device assigned now that has not been heard from for longer than its patient's
    -- longest measurement interval (with grace) asks for.
    SELECT 'device_silent' AS kind, s.last_seen_at AS at, d.patient_id,
           'device ' || d.device_id AS reference
      FROM device_assignments d
      JOIN device_status s ON s.device_id = d.device_id
      JOIN LATERAL (SELECT max(m.every_hours + m.grace_hours) AS hours
                      FROM care_plan_measurements m WHERE m.patient_id = d.patient_id) plan
        ON plan.hours IS NOT NULL
     WHERE {current("d")}
       AND s.last_seen_at < %(now)s - make_interval(hours => plan.hours)
    UNION ALL
    -- Patients a care team follows now without a care plan, or without a responsible unit.
    SELECT 'no_care_plan', min(tp.valid_from), tp.patient_id, 'care plan'
      FROM care_team_patients tp
     WHERE {current("tp")}
       AND NOT EXISTS (SELECT 1 FROM care_plans c WHERE c.patient_id = tp.patient_id)
     GROUP BY tp.patient_id
    UNION ALL
    SELECT 'no_responsible_unit', min(tp.valid_from), tp.patient_id, 'responsibility'
      FROM care_team_patients tp
     WHERE {current("tp")}
       AND NOT EXISTS (SELECT 1 FROM patient_responsibility r
                        WHERE r.patient_id = tp.patient_id AND r.role = 'responsible'
                          AND {current("r")})
     GROUP BY tp.patient_id
    UNION ALL
    SELECT 'handover_unanswered', h.proposed_at, h.patient_id, 'handover ' || h.id
      FROM handovers h
     WHERE h.state = 'proposed' AND h.proposed_at < %(now)s - %(answer_within)s
"""

_DEVIATIONS: Final = """
    WITH found AS ({alerts} UNION ALL {states})
    SELECT f.kind, f.at, o.id AS unit_id, o.name AS unit, f.reference,
           CASE WHEN {visible} THEN p.id END AS patient_id,
           CASE WHEN {visible} THEN p.display_name END AS patient
      FROM found f
      JOIN patients p ON p.id = f.patient_id
      {responsible}
     ORDER BY f.at DESC, f.kind, f.reference
"""


def load_deviations(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    period: Period,
    now: datetime,
    interface: Interface,
    action: Action = Action.READ,
) -> list[Deviation]:
    """The deviations of `period` and of now, newest first, after the one check; the
    access-log row names the patients the list names."""
    authorize(conn, principal=principal, permission=Permission.READ_FIGURES, now=now)
    visible, visible_params = visible_patients_filter(principal, now=now)
    sql = _DEVIATIONS.format(
        alerts=_ALERT_DEVIATIONS,
        states=_STATE_DEVIATIONS,
        visible=visible,
        # The unit responsible for the patient when it happened (for a state: now).
        responsible=_RESPONSIBLE_AT.format(at="least(f.at, %(now)s)"),
    )
    params: dict[str, Any] = {
        "start": period.start,
        "end": period.end,
        "now": now,
        "answer_within": HANDOVER_ANSWER_WITHIN,
        **visible_params,
    }
    with conn.cursor(row_factory=class_row(Deviation)) as cur:
        found = cur.execute(sql, params).fetchall()
    do_log_access(
        conn,
        principal=principal,
        patient_ids=sorted({d.patient_id for d in found if d.patient_id is not None}),
        resource=DEVIATIONS_RESOURCE,
        action=action,
        interface=interface,
        reason=Reason.CARE_TEAM,
        now=now,
    )
    return found


CSV_HEADER: Final = ("kind", "at", "unit_id", "unit", "reference", "patient_id", "patient")


def deviations_csv(deviations: list[Deviation], *, label: Callable[[str], str] = str) -> str:
    """The list for the deviation system; `label` names a kind (the page's translation, or
    the kind's key)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for d in deviations:
        writer.writerow(
            (
                label(d.kind),
                d.at.isoformat(),
                d.unit_id or "",
                d.unit or "",
                d.reference,
                d.patient_id or "",
                d.patient or "",
            )
        )
    return out.getvalue()
