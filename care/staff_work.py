"""A patient's care plan and responsibility as staff work on them from the dashboard: the same
one check and access log (care.access) as the API's routes, then care's own services.

The hand-over steps that carry a rule of their own (only the responsible unit's staff propose;
the receiving unit decides even before it can see the patient) live here once, for the API's
routes and the dashboard alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import psycopg

from care import careplan, handover
from care.access import (
    ROLES,
    Action,
    ForbiddenError,
    Interface,
    Permission,
    can_see_patient,
    do_access_patient,
    works_at,
)
from care.models import Organisation, Patient
from care.service import get_patient, list_organisations
from core.auth import Principal
from core.limits import Limits

CARE_PLAN_RESOURCE: Final = "care-plan"


@dataclass(frozen=True, slots=True)
class CarePlanRecord:
    """What the care plan page shows, and what the viewer may do there."""

    patient: Patient
    plan: careplan.CarePlan | None
    versions: list[careplan.CarePlanVersion]
    """Newest first."""
    names: dict[UUID, str]
    """Staff names by id: who changed the plan."""
    responsibility: list[handover.ResponsibilityPeriod]
    handovers: list[handover.Handover]
    """Newest first."""
    units: list[Organisation]
    """Where a hand-over may go: every unit but the responsible one."""
    can_change_plan: bool
    can_propose: bool
    """The viewer works at the responsible unit and may propose, with nothing pending."""
    can_decide: UUID | None
    """The pending hand-over the viewer's unit receives and the viewer may decide."""


def is_receiver(
    conn: psycopg.Connection,
    principal: Principal,
    found: handover.Handover | None,
    *,
    now: datetime,
) -> bool:
    """Whether the caller reads a hand-over as the receiving unit rather than the care team."""
    return (
        principal.kind == "staff"
        and found is not None
        and not can_see_patient(conn, principal=principal, patient_id=found.patient_id, now=now)
        and works_at(
            conn, staff_id=principal.uuid, organisation_id=found.to_organisation_id, now=now
        )
    )


def _pending(conn: psycopg.Connection, *, patient_id: UUID) -> handover.Handover | None:
    return next(
        (h for h in handover.handovers_for_patient(conn, patient_id=patient_id)
         if h.state == "proposed"),
        None,
    )  # fmt: skip


def load_care_plan_record(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    patient_id: UUID,
    now: datetime,
    interface: Interface,
) -> CarePlanRecord | None:
    """The care plan page's data, read after the one check and logged. The care team reads
    it; so does the unit a pending hand-over would give the patient to, which must know
    what it takes on before it answers."""
    if principal.kind != "staff":
        raise ForbiddenError  # the plan's history and hand-over notes are the team's
    pending = _pending(conn, patient_id=patient_id)
    receiving = is_receiver(conn, principal, pending, now=now)
    do_access_patient(
        conn,
        principal=principal,
        permission=Permission.DECIDE_HANDOVER if receiving else Permission.READ_PATIENT,
        patient_id=patient_id,
        organisation_id=pending.to_organisation_id if receiving and pending else None,
        resource=CARE_PLAN_RESOURCE,
        action=Action.READ,
        interface=interface,
        now=now,
    )
    patient = get_patient(conn, patient_id=patient_id, now=now)
    if patient is None:
        return None
    versions = careplan.care_plan_history(conn, patient_id=patient_id)
    authors = {v.changed_by for v in versions if v.changed_by is not None}
    names: dict[UUID, str] = dict(
        conn.execute(
            "SELECT id, display_name FROM staff WHERE id = ANY(%s)", (list(authors),)
        ).fetchall()
    )
    responsible = handover.responsible_unit(conn, patient_id=patient_id, at=now)
    at_receiver = pending is not None and works_at(
        conn, staff_id=principal.uuid, organisation_id=pending.to_organisation_id, now=now
    )
    return CarePlanRecord(
        patient=patient,
        plan=careplan.get_care_plan(conn, patient_id=patient_id),
        versions=versions,
        names=names,
        responsibility=handover.responsibility_history(conn, patient_id=patient_id),
        handovers=handover.handovers_for_patient(conn, patient_id=patient_id),
        units=[o for o in list_organisations(conn, limit=500, offset=0) if o.id != responsible],
        can_change_plan=not receiving and principal.role in ROLES[Permission.WRITE_CARE_PLAN],
        can_propose=not receiving
        and pending is None
        and principal.role in ROLES[Permission.PROPOSE_HANDOVER]
        and responsible is not None
        and works_at(conn, staff_id=principal.uuid, organisation_id=responsible, now=now),
        can_decide=pending.id
        if pending and at_receiver and principal.role in ROLES[Permission.DECIDE_HANDOVER]
        else None,
    )


def do_change_limits_as(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    patient_id: UUID,
    expected_version: int,
    limits: Limits,
    reason: str,
    now: datetime,
    interface: Interface,
) -> careplan.CarePlan:
    """One measurement's limits, changed with a reason against the version the clinician saw
    (careplan.StaleVersionError if another change came first)."""
    with conn.transaction():
        do_access_patient(
            conn,
            principal=principal,
            permission=Permission.WRITE_CARE_PLAN,
            patient_id=patient_id,
            resource=CARE_PLAN_RESOURCE,
            action=Action.UPDATE,
            interface=interface,
            now=now,
        )
        return careplan.do_update_care_plan(
            conn,
            patient_id=patient_id,
            expected_version=expected_version,
            author=principal.uuid,
            now=now,
            reason=reason,
            thresholds=[limits],
        )


def do_propose_from_responsible_unit(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    patient_id: UUID,
    to_organisation_id: UUID,
    note: str,
    now: datetime,
) -> handover.Handover:
    """Propose a hand-over in the name of the unit responsible now, which the proposer must
    work at (ForbiddenError otherwise); the proposal names the care plan version it was
    written for. The caller has checked and logged access to the patient."""
    sender = handover.responsible_unit(conn, patient_id=patient_id, at=now)
    if sender is None or not works_at(
        conn, staff_id=principal.uuid, organisation_id=sender, now=now
    ):
        raise ForbiddenError
    plan = careplan.get_care_plan(conn, patient_id=patient_id)
    return handover.do_propose_handover(
        conn,
        patient_id=patient_id,
        to_organisation_id=to_organisation_id,
        proposed_by=principal.uuid,
        note=note,
        now=now,
        care_plan_version=None if plan is None else plan.version,
        from_organisation_id=sender,
    )


def do_propose_handover_as(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    patient_id: UUID,
    to_organisation_id: UUID,
    note: str,
    now: datetime,
    interface: Interface,
) -> handover.Handover:
    with conn.transaction():
        do_access_patient(
            conn,
            principal=principal,
            permission=Permission.PROPOSE_HANDOVER,
            patient_id=patient_id,
            resource="handover",
            action=Action.UPDATE,
            interface=interface,
            now=now,
        )
        return do_propose_from_responsible_unit(
            conn,
            principal=principal,
            patient_id=patient_id,
            to_organisation_id=to_organisation_id,
            note=note,
            now=now,
        )


def do_decide_handover_as(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    handover_id: UUID,
    accept: bool,
    note: str,
    now: datetime,
    interface: Interface,
) -> handover.Handover:
    """Accept or decline as the receiving unit (a decline needs its note); the check is the
    API's: the caller works at the receiving unit."""
    found = handover.get_handover(conn, handover_id=handover_id)
    if found is None:
        raise ForbiddenError
    with conn.transaction():
        do_access_patient(
            conn,
            principal=principal,
            permission=Permission.DECIDE_HANDOVER,
            patient_id=found.patient_id,
            organisation_id=found.to_organisation_id,
            resource="handover",
            action=Action.UPDATE,
            interface=interface,
            now=now,
        )
        if accept:
            return handover.do_accept_handover(
                conn, handover_id=handover_id, decided_by=principal.uuid, now=now, note=note
            )
        return handover.do_decline_handover(
            conn, handover_id=handover_id, decided_by=principal.uuid, now=now, note=note
        )
