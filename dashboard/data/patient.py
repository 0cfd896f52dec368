"""The patient page's data. The steps taken on its alerts are alerts.actions', the API's own
(dashboard/callbacks/alerts.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from uuid import UUID

import psycopg

from alerts.queries import Episode, unresolved_episodes
from care.access import (
    ROLES,
    Action,
    Interface,
    Permission,
    authorize,
    do_access_patient,
)
from care.models import Patient
from care.service import get_patient
from core.auth import Principal
from dashboard.data.alert_steps import (
    Colleague,
    Note,
    Snooze,
    colleagues,
    notes_of,
    snoozes_of,
    staff_names,
)
from dashboard.data.trend import Trend, load_trend
from dashboard.data.viewing import View, already_logged
from dashboard.ranges import TrendRange
from devices.status import DeviceOverview, devices_with_status

PATIENT_RESOURCE: Final = "patient-page"


@dataclass(frozen=True, slots=True)
class PatientView:
    patient: Patient
    episodes: list[Episode]
    """Unresolved episodes, each one card with its alerts (alerts/episodes.py)."""
    trend: Trend
    """The readings of the range shown, with the care plan's limits as they were."""
    devices: list[DeviceOverview]
    can_act: bool = False
    """The viewer may take steps on alerts (a clinical role with the patient in their care)."""
    notes: dict[int, list[Note]] = field(default_factory=dict)
    """The notes on each episode, by episode id."""
    names: dict[UUID, str] = field(default_factory=dict)
    """Staff who acknowledged or hold an episode."""
    colleagues: list[Colleague] = field(default_factory=list)
    """Who an alert can be given to."""
    viewer: UUID | None = None
    """The staff member looking, who "assign to me" means."""
    snoozes: dict[int, Snooze] = field(default_factory=dict)
    """The snooze in force on an episode, by episode id."""


def load_patient(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    view: View,
    trend_range: TrendRange | None = None,
) -> PatientView | None:
    """The patient page's data, after the one access check (NotVisibleError if refused) and
    with its access-log row, in the transaction that reads it."""
    now, principal = view.now, view.principal
    if already_logged(conn, view=view, resource=PATIENT_RESOURCE, patient_ids=[patient_id]):
        authorize(
            conn,
            principal=principal,
            permission=Permission.READ_PATIENT,
            patient_id=patient_id,
            now=now,
        )
    else:
        do_access_patient(
            conn,
            principal=principal,
            permission=Permission.READ_PATIENT,
            patient_id=patient_id,
            resource=PATIENT_RESOURCE,
            action=Action.READ,
            interface=Interface.DASHBOARD,
            now=now,
        )
    patient = get_patient(conn, patient_id=patient_id, now=now)
    if patient is None:
        return None
    can_act = principal.kind == "staff" and principal.role in ROLES[Permission.ACT_ON_ALERT]
    episodes = unresolved_episodes(conn, patient_ids=[patient_id])
    return PatientView(
        patient=patient,
        episodes=episodes,
        trend=load_trend(
            conn, patient_id=patient_id, trend_range=trend_range or TrendRange(), now=now
        ),
        devices=devices_with_status(conn, patient_id=patient_id, at=now),
        can_act=can_act,
        notes=notes_of(conn, episode_ids=[e.id for e in episodes]),
        names=staff_names(conn, episodes=episodes),
        colleagues=colleagues(conn, staff_id=principal.uuid, now=now) if can_act else [],
        viewer=principal.uuid if principal.kind == "staff" else None,
        snoozes=snoozes_of(conn, episodes=episodes, now=now),
    )


TREND_RESOURCE: Final = "patient-trend"


def load_patient_trend(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    patient_id: UUID,
    trend_range: TrendRange,
    now: datetime,
    action: Action,
) -> Trend:
    """The trend of the patient page, for its table view (`action` read) or CSV download
    (export): checked and logged like every read of a patient's data."""
    do_access_patient(
        conn,
        principal=principal,
        permission=Permission.READ_PATIENT,
        patient_id=patient_id,
        resource=TREND_RESOURCE,
        action=action,
        interface=Interface.DASHBOARD,
        now=now,
    )
    return load_trend(conn, patient_id=patient_id, trend_range=trend_range, now=now)
