"""The one authorization check and the access log, for every API route, dashboard callback and
FHIR interaction.

Deny by default: a permission names the roles that may use it, and a patient's data is open
only to the patient and to staff in a care team that follows the patient *now* (Normen:
tjenstlig behov), through a membership held for an organisation they work for now. Nobody
grants themselves a membership: a second person adds them, or they open a time-limited
emergency access with a reason, which the patient sees and a coordinator reviews.
Administrators manage people and organisations; they read clinical data only if someone else
made them members of the patient's care team. A device reads nothing here: it may only ingest
for itself (ingest/http.py checks its token).

Every read or write of a patient's data leaves one access-log row, written in the same
transaction as the work, before any data leaves: if the row cannot be written, the request
fails and nothing is returned (fail closed).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.people import consent_valid, current
from core.auth import Principal, StaffRole


class Interface(StrEnum):
    API = "api"
    DASHBOARD = "dashboard"
    FHIR = "fhir"
    CLI = "cli"


class Action(StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    EXPORT = "export"
    ERASE = "erase"


class Reason(StrEnum):
    """Why access was granted; shown to the patient in their access log (no free text)."""

    CARE_TEAM = "care_team"
    OWN_DATA = "own_data"
    HANDOVER = "handover"
    ADMINISTRATION = "administration"
    EMERGENCY = "emergency"
    """Through an emergency access; the patient also sees the reason its opener gave."""
    PROXY = "proxy"
    """A relative acting for the patient, through the patient's consent (care/proxies.py)."""
    LOG_IN = "log_in"
    """A log-in through HelseID or ID-porten, by a known identity, or refused."""
    IDENTIFIED = "identified"
    """A log-in that found its person by the national id (ID-porten) or HPR number (HelseID)
    and enrolled the identity for the next time."""


PATIENT: Final = "patient"
RELATIVE: Final = "relative"
_CLINICAL: Final = frozenset({StaffRole.NURSE, StaffRole.PHYSICIAN, StaffRole.COORDINATOR})
_ALL_STAFF: Final = frozenset(StaffRole)


class Permission(StrEnum):
    READ_DIRECTORY = "directory:read"
    MANAGE_ORGANISATIONS = "organisations:manage"
    READ_STAFF = "staff:read"
    MANAGE_STAFF = "staff:manage"
    MANAGE_TEAMS = "teams:manage"
    READ_PATIENT = "patient:read"
    REGISTER_PATIENT = "patient:register"
    UPDATE_PATIENT = "patient:update"
    MANAGE_TEAM_PATIENTS = "patient:teams"
    WRITE_CARE_PLAN = "care-plan:write"
    MANAGE_RESPONSIBILITY = "responsibility:manage"
    PROPOSE_HANDOVER = "handover:propose"
    DECIDE_HANDOVER = "handover:decide"
    EXPORT_PATIENT = "patient:export"
    ERASE_PATIENT = "patient:erase"
    READ_ACCESS_LOG = "access-log:read"
    ACT_ON_ALERT = "alert:act"
    MANAGE_ESCALATION = "escalation:manage"
    MANAGE_OWN_NOTIFICATIONS = "notifications:own"
    SUBMIT_QUESTIONNAIRE = "questionnaire:submit"
    REVIEW_READINGS = "readings:review"
    OPEN_EMERGENCY_ACCESS = "emergency-access:open"
    REVIEW_EMERGENCY_ACCESS = "emergency-access:review"
    READ_FIGURES = "figures:read"
    MANAGE_DEVICES = "devices:manage"
    READ_OWN_VIEW = "own-view:read"
    MANAGE_PROXIES = "proxies:manage"
    CHOOSE_REMINDERS = "reminders:choose"


ROLES: Final[dict[Permission, frozenset[str]]] = {
    Permission.READ_DIRECTORY: _ALL_STAFF,
    Permission.MANAGE_ORGANISATIONS: frozenset({StaffRole.ADMINISTRATOR}),
    Permission.READ_STAFF: frozenset({StaffRole.ADMINISTRATOR, StaffRole.COORDINATOR}),
    Permission.MANAGE_STAFF: frozenset({StaffRole.ADMINISTRATOR}),
    Permission.MANAGE_TEAMS: frozenset({StaffRole.ADMINISTRATOR, StaffRole.COORDINATOR}),
    # Any staff role reads through care-team membership, administrators included.
    Permission.READ_PATIENT: _ALL_STAFF | {PATIENT},
    Permission.REGISTER_PATIENT: frozenset({StaffRole.COORDINATOR}),
    Permission.UPDATE_PATIENT: frozenset({StaffRole.COORDINATOR, StaffRole.NURSE}),
    Permission.MANAGE_TEAM_PATIENTS: frozenset({StaffRole.COORDINATOR}),
    Permission.WRITE_CARE_PLAN: frozenset({StaffRole.NURSE, StaffRole.PHYSICIAN}),
    Permission.MANAGE_RESPONSIBILITY: frozenset({StaffRole.COORDINATOR}),
    Permission.PROPOSE_HANDOVER: _CLINICAL,
    Permission.DECIDE_HANDOVER: _CLINICAL,
    Permission.EXPORT_PATIENT: frozenset({StaffRole.COORDINATOR, PATIENT}),
    Permission.ERASE_PATIENT: frozenset({StaffRole.COORDINATOR}),
    Permission.READ_ACCESS_LOG: frozenset({StaffRole.ADMINISTRATOR}),
    Permission.ACT_ON_ALERT: _CLINICAL,
    # Administrators anywhere; coordinators for the units they work for (organisation scope).
    Permission.MANAGE_ESCALATION: frozenset({StaffRole.ADMINISTRATOR, StaffRole.COORDINATOR}),
    Permission.MANAGE_OWN_NOTIFICATIONS: _ALL_STAFF,
    Permission.SUBMIT_QUESTIONNAIRE: frozenset({PATIENT, RELATIVE, StaffRole.NURSE}),
    # Whether a quarantined reading belongs in the record is a clinical decision.
    Permission.REVIEW_READINGS: _CLINICAL,
    # Clinicians only: an administrator has no clinical reason to break the glass.
    Permission.OPEN_EMERGENCY_ACCESS: _CLINICAL,
    Permission.REVIEW_EMERGENCY_ACCESS: frozenset({StaffRole.COORDINATOR}),
    # The health community's management figures and deviations (quality/): leading the
    # service is the coordinator's job; a nurse follows her patients, not the units' figures.
    Permission.READ_FIGURES: frozenset({StaffRole.COORDINATOR}),
    # Nurses hand devices out and take them back; coordinators also run the registry.
    Permission.MANAGE_DEVICES: frozenset(
        {StaffRole.ADMINISTRATOR, StaffRole.COORDINATOR, StaffRole.NURSE}
    ),
    # The patient's own page (dashboard/pages/own.py): the patient, and a relative whose
    # consent covers it. Staff read the record through READ_PATIENT instead.
    Permission.READ_OWN_VIEW: frozenset({PATIENT, RELATIVE}),
    # Inviting a relative and withdrawing a consent: the patient, or a nurse who records the
    # patient's consent (or withdrawal) on their behalf.
    Permission.MANAGE_PROXIES: frozenset({PATIENT, StaffRole.NURSE}),
    # Where a patient's reminders go is the patient's own choice (alerts/reminders.py).
    Permission.CHOOSE_REMINDERS: frozenset({PATIENT}),
}
"""Which roles may use each permission at all; the compartment checks come on top."""

PROXY_SCOPES: Final[dict[Permission, str]] = {
    Permission.READ_OWN_VIEW: "see_own_view",
    Permission.SUBMIT_QUESTIONNAIRE: "answer_questionnaires",
}
"""What a relative may do, each with the column of the consent (`proxy_consents`) that must
allow it. A relative has no other permission: nothing a patient would not see, never staff's
working state."""


class NotAuthenticatedError(Exception):
    """No valid credentials: answered 401 with a challenge."""


class ForbiddenError(Exception):
    """Known caller, not allowed to do this at all: answered 403."""


class NotVisibleError(Exception):
    """The patient (or team, or hand-over) is outside the caller's compartment: answered 404, so
    nobody learns whether it exists."""


class SelfGrantError(ForbiddenError):
    """Someone tried to give themselves a membership: answered 403, naming the two ways in."""


def authorize(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    permission: Permission,
    now: datetime,
    patient_id: UUID | None = None,
    team_id: UUID | None = None,
    organisation_id: UUID | None = None,
) -> Reason:
    """Allow or raise. `patient_id`, `team_id` and `organisation_id` narrow the check to one
    patient's compartment, one care team (the caller must belong to it, unless administrator),
    or one organisation (the caller must work there now, unless administrator)."""
    if principal.kind == "anonymous":
        raise NotAuthenticatedError
    if (
        principal.kind not in ("staff", "patient", "relative")
        or principal.role not in ROLES[permission]
    ):
        raise ForbiddenError
    if principal.kind == "relative":
        # Only ever one patient's record, through a consent valid now: checked on every
        # request, so an expiry or a withdrawal bites on the relative's very next one.
        if patient_id is None or not proxy_allows(
            conn, relative_id=principal.uuid, patient_id=patient_id, permission=permission, now=now
        ):
            raise NotVisibleError
        return Reason.PROXY
    reason = Reason.OWN_DATA if principal.kind == "patient" else Reason.ADMINISTRATION
    if organisation_id is not None and principal.role != StaffRole.ADMINISTRATOR:
        if not works_at(conn, staff_id=principal.uuid, organisation_id=organisation_id, now=now):
            raise NotVisibleError
        if permission is Permission.DECIDE_HANDOVER:
            reason = Reason.HANDOVER
    if team_id is not None and principal.role != StaffRole.ADMINISTRATOR:
        if not _belongs_to_team(conn, staff_id=principal.uuid, team_id=team_id, now=now):
            raise NotVisibleError
        reason = Reason.CARE_TEAM
    if patient_id is not None and organisation_id is None:
        found = patient_access(conn, principal=principal, patient_id=patient_id, now=now)
        # Emergency access is for reading: changing a record takes a care team.
        if found is None or (found is Reason.EMERGENCY and permission != Permission.READ_PATIENT):
            raise NotVisibleError
        reason = found
    return reason


def patient_access(
    conn: psycopg.Connection, *, principal: Principal, patient_id: UUID, now: datetime
) -> Reason | None:
    """Why `principal` may see the patient now, or None: it is their own record; a care team
    of theirs follows the patient; or they have an emergency access open."""
    if principal.kind == "patient":
        return Reason.OWN_DATA if principal.id == str(patient_id) else None
    if principal.kind != "staff":
        return None
    row = conn.execute(
        f"""
        SELECT EXISTS (SELECT 1 FROM {_FOLLOWS} AND tp.patient_id = %(patient)s),
               EXISTS (SELECT 1 FROM {EMERGENCY_ACCESS_OPEN_NOW} AND ea.patient_id = %(patient)s)
        """,
        {"staff": principal.uuid, "patient": patient_id, "now": now},
    ).fetchone()
    assert row is not None
    follows, emergency = row
    return Reason.CARE_TEAM if follows else Reason.EMERGENCY if emergency else None


def proxy_allows(
    conn: psycopg.Connection,
    *,
    relative_id: UUID,
    patient_id: UUID,
    permission: Permission,
    now: datetime,
) -> bool:
    """Whether the relative holds a consent of the patient, valid now, whose scope covers
    `permission`."""
    column = PROXY_SCOPES.get(permission)
    if column is None:
        return False
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM proxy_consents c WHERE c.relative_id = %(relative)s"
        f" AND c.patient_id = %(patient)s AND c.{column} AND {consent_valid('c')})",
        {"relative": relative_id, "patient": patient_id, "now": now},
    ).fetchone()
    return bool(row and row[0])


def can_see_patient(
    conn: psycopg.Connection, *, principal: Principal, patient_id: UUID, now: datetime
) -> bool:
    return patient_access(conn, principal=principal, patient_id=patient_id, now=now) is not None


_ACTIVE_MEMBERSHIPS: Final = f"""
    care_team_members tm
    JOIN staff_memberships e ON e.staff_id = tm.staff_id AND e.organisation_id = tm.organisation_id
   WHERE tm.staff_id = %(staff)s AND {current("tm")} AND {current("e")}
"""
"""The care-team memberships that grant access now: current, and held for an organisation the
member works for now (an ended employment ends the access of every membership it carried)."""

_FOLLOWS: Final = f"""
    care_team_patients tp
   WHERE {current("tp")} AND tp.team_id IN (SELECT tm.team_id FROM {_ACTIVE_MEMBERSHIPS})
"""

EMERGENCY_ACCESS_OPEN_NOW: Final = f"""
    emergency_access ea
    JOIN staff_memberships e ON e.staff_id = ea.staff_id AND e.organisation_id = ea.organisation_id
   WHERE ea.staff_id = %(staff)s AND {current("ea")} AND {current("e")}
"""
"""Emergency accesses open now, while the employment they were opened for lasts."""


def visible_patients_filter(principal: Principal, *, now: datetime) -> tuple[str, dict]:
    """A SQL condition on ``p.id`` (a `patients` row aliased ``p``) that holds exactly for the
    patients `principal` may see, with its parameters: lists are filtered in the query, never
    after it."""
    if principal.kind == "patient":
        return "p.id = %(visible_patient)s", {"visible_patient": principal.uuid}
    if principal.kind == "staff":
        return (
            f"p.id IN (SELECT tp.patient_id FROM {_FOLLOWS})",
            {"staff": principal.uuid, "now": now},
        )
    return "false", {}


def works_at(
    conn: psycopg.Connection, *, staff_id: UUID, organisation_id: UUID, now: datetime
) -> bool:
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM staff_memberships m WHERE m.staff_id = %(staff)s"
        f" AND m.organisation_id = %(org)s AND {current('m')})",
        {"staff": staff_id, "org": organisation_id, "now": now},
    ).fetchone()
    return bool(row and row[0])


def _belongs_to_team(
    conn: psycopg.Connection, *, staff_id: UUID, team_id: UUID, now: datetime
) -> bool:
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {_ACTIVE_MEMBERSHIPS} AND tm.team_id = %(team)s)",
        {"staff": staff_id, "team": team_id, "now": now},
    ).fetchone()
    return bool(row and row[0])


def _patients_open_to(conn: psycopg.Connection, *, staff_id: UUID, now: datetime) -> set[UUID]:
    rows = conn.execute(
        f"SELECT tp.patient_id FROM {_FOLLOWS}"
        f" UNION SELECT ea.patient_id FROM {EMERGENCY_ACCESS_OPEN_NOW}",
        {"staff": staff_id, "now": now},
    ).fetchall()
    return {row[0] for row in rows}


def refuse_self_grant(principal: Principal, *, staff_id: UUID) -> None:
    """Nobody gives themselves a membership (employment or care team), which could open
    patients' data to them: a second person must, or they open an emergency access."""
    if principal.kind == "staff" and principal.uuid == staff_id:
        raise SelfGrantError


@contextmanager
def logged_membership_change(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    staff_id: UUID,
    resource: str,
    action: Action,
    interface: Interface,
    now: datetime,
) -> Iterator[None]:
    """Around a change of `staff_id`'s employment or care-team membership: one access-log row,
    in the change's transaction, naming the patients whose data the person gained or lost
    access to (a change that opens or closes nothing still leaves its row)."""
    before = _patients_open_to(conn, staff_id=staff_id, now=now)
    yield
    after = _patients_open_to(conn, staff_id=staff_id, now=now)
    do_log_access(
        conn,
        principal=principal,
        patient_ids=sorted(before ^ after),
        resource=resource,
        action=action,
        interface=interface,
        reason=Reason.ADMINISTRATION,
        now=now,
    )


def do_log_access(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    patient_ids: Collection[UUID],
    resource: str,
    action: Action,
    interface: Interface,
    reason: Reason,
    now: datetime,
    request_id: str | None = None,
) -> None:
    """Append one access-log row. Call it inside the transaction of the work it records."""
    conn.execute(
        """
        INSERT INTO access_log (at, actor_kind, actor_id, actor_name, role, hpr_number,
                                organisation_id, organisation_name, patient_ids, resource,
                                action, interface, reason_code, request_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            now,
            principal.kind,
            principal.id,
            principal.name,
            principal.role,
            principal.hpr_number,
            principal.organisation_id,
            principal.organisation_name,
            list(patient_ids),
            resource,
            action,
            interface,
            reason,
            request_id,
        ),
    )


def do_access_patient(
    conn: psycopg.Connection,
    *,
    principal: Principal,
    permission: Permission,
    patient_id: UUID,
    resource: str,
    action: Action,
    interface: Interface,
    now: datetime,
    organisation_id: UUID | None = None,
    team_id: UUID | None = None,
) -> Reason:
    """Authorize one request on one patient's data and log it: the usual first line of a route.
    `team_id`: the request also changes that care team, which the caller must belong to."""
    reason = authorize(
        conn,
        principal=principal,
        permission=permission,
        patient_id=patient_id,
        organisation_id=organisation_id,
        team_id=team_id,
        now=now,
    )
    do_log_access(
        conn,
        principal=principal,
        patient_ids=[patient_id],
        resource=resource,
        action=action,
        interface=interface,
        reason=reason,
        now=now,
    )
    return reason


@dataclass(frozen=True, slots=True)
class AccessLogEntry:
    id: int
    at: datetime
    actor_kind: str
    actor_name: str
    role: str
    hpr_number: str | None
    organisation_name: str | None
    patient_ids: list[UUID]
    resource: str
    action: str
    interface: str
    reason_code: str
    emergency_reason: str | None
    """For a row with reason code `emergency`: the reason the emergency access was opened with."""


_ENTRY_COLUMNS: Final = """
    l.id, l.at, l.actor_kind, l.actor_name, l.role, l.hpr_number, l.organisation_name,
    l.patient_ids, l.resource, l.action, l.interface, l.reason_code, g.reason AS emergency_reason
"""

# The emergency access a row was granted through: the actor's, to a patient of the row, open at
# its moment (one per person and patient at a time, so at most one fits).
_EMERGENCY_OF_ROW: Final = """
    LEFT JOIN LATERAL (
        SELECT g.reason FROM emergency_access g
         WHERE l.reason_code = 'emergency' AND g.staff_id::text = l.actor_id
           AND g.patient_id = ANY (l.patient_ids) AND g.valid_from <= l.at AND l.at < g.valid_to
         LIMIT 1
    ) g ON true
"""


def access_log(
    conn: psycopg.Connection,
    *,
    limit: int,
    offset: int,
    patient_id: UUID | None = None,
    actor_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AccessLogEntry]:
    """Newest first; every filter is optional."""
    conditions: list[str] = []
    if patient_id is not None:
        conditions.append("l.patient_ids @> ARRAY[%(patient)s]::uuid[]")
    if actor_id is not None:
        conditions.append("l.actor_id = %(actor)s")
    if since is not None:
        conditions.append("l.at >= %(since)s")
    if until is not None:
        conditions.append("l.at < %(until)s")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with conn.cursor(row_factory=class_row(AccessLogEntry)) as cur:
        return cur.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM access_log l {_EMERGENCY_OF_ROW} {where}"
            " ORDER BY l.at DESC, l.id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {
                "patient": patient_id,
                "actor": actor_id,
                "since": since,
                "until": until,
                "limit": limit,
                "offset": offset,
            },
        ).fetchall()
