"""The worklist's data: the viewer's patients with their newest readings and open alerts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import psycopg

from alerts.outbox import SentNotification, recent_notifications
from alerts.queries import Alert, Episode, unresolved_alerts
from care.access import (
    Action,
    Interface,
    Permission,
    Reason,
    authorize,
    do_log_access,
    visible_patients_filter,
)
from care.models import Patient
from care.service import list_patients
from core import catalog
from core.limits import Severity
from core.readings import Reading, latest_readings
from dashboard.data.viewing import View, already_logged

WORKLIST_RESOURCE: Final = "worklist"


def severity_of(alerts: Sequence[Alert | Episode]) -> Severity:
    """The patient's state: the worst unresolved alert (or episode), green without any."""
    return max((Severity(a.severity) for a in alerts), key=lambda s: s.rank, default=Severity.GREEN)


@dataclass(frozen=True, slots=True)
class WorklistRow:
    patient: Patient
    latest: list[Reading]
    """The newest reading per measurement, in catalog order."""
    alerts: list[Alert]

    @property
    def severity(self) -> Severity:
        return severity_of(self.alerts)

    @property
    def last_measured_at(self) -> datetime | None:
        return max((r.measured_at for r in self.latest), default=None)


def load_worklist(conn: psycopg.Connection, *, view: View) -> list[WorklistRow]:
    """The patients in the viewer's care, red first, then yellow, then the rest; by name.

    The list is filtered in SQL by care.access (a nurse: her care teams' patients now; a
    patient: themself), and leaves one access-log row naming every patient listed.
    """
    now, principal = view.now, view.principal
    reason = authorize(conn, principal=principal, permission=Permission.READ_PATIENT, now=now)
    patients = list_patients(conn, now=now, visible=visible_patients_filter(principal, now=now))
    patient_ids = [p.id for p in patients]
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
    order = {m.code: i for i, m in enumerate(catalog.MEASUREMENTS)}
    latest: dict[UUID, list[Reading]] = defaultdict(list)
    for reading in latest_readings(conn, patient_ids=patient_ids):
        latest[reading.patient_id].append(reading)
    alerts: dict[UUID, list[Alert]] = defaultdict(list)
    for alert in unresolved_alerts(conn, patient_ids=patient_ids):
        alerts[alert.patient_id].append(alert)
    rows = [
        WorklistRow(
            patient=patient,
            latest=sorted(latest[patient.id], key=lambda r: order.get(r.code, len(order))),
            alerts=alerts[patient.id],
        )
        for patient in patients
    ]
    return sorted(rows, key=lambda row: -row.severity.rank)


def demo_outbox(conn: psycopg.Connection, rows: Sequence[WorklistRow]) -> list[SentNotification]:
    """The demo's notifications, only about the patients the worklist was allowed to show."""
    return recent_notifications(conn, patient_ids=[row.patient.id for row in rows])
