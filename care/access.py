"""The one authorization check and the access log, for every API route, dashboard callback and
FHIR interaction.

Deny by default: a permission names the roles that may use it, and a patient's data is open
only to the patient and to staff in a care team that follows the patient *now* (Normen:
tjenstlig behov). Administrators manage people and organisations; they read clinical data only
if they are also members of the patient's care team. A device reads nothing here: it may only
ingest for itself (ingest/http.py checks its token).

Every read or write of a patient's data leaves one access-log row, written in the same
transaction as the work, before any data leaves: if the row cannot be written, the request
fails and nothing is returned (fail closed).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from care.people import current
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


PATIENT: Final = "patient"
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
    Permission.SUBMIT_QUESTIONNAIRE: frozenset({PATIENT, StaffRole.NURSE}),
    # Whether a quarantined reading belongs in the record is a clinical decision.
    Permission.REVIEW_READINGS: _CLINICAL,
}
"""Which roles may use each permission at all; the compartment checks come on top."""


class NotAuthenticatedError(Exception):
    """No valid credentials: answered 401 with a challenge."""


class ForbiddenError(Exception):
    """Known caller, not allowed to do this at all: answered 403."""


class NotVisibleError(Exception):
    """The patient (or team, or hand-over) is outside the caller's compartment: answered 404, so
    nobody learns whether it exists."""


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
    if principal.kind not in ("staff", "patient") or principal.role not in ROLES[permission]:
        raise ForbiddenError
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
        if not can_see_patient(conn, principal=principal, patient_id=patient_id, now=now):
            raise NotVisibleError
        reason = Reason.OWN_DATA if principal.kind == "patient" else Reason.CARE_TEAM
    return reason


def can_see_patient(
    conn: psycopg.Connection, *, principal: Principal, patient_id: UUID, now: datetime
) -> bool:
    if principal.kind == "patient":
        return principal.id == str(patient_id)
    if principal.kind != "staff":
        return False
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {_FOLLOWS} AND tp.patient_id = %(patient)s)",
        {"staff": principal.uuid, "patient": patient_id, "now": now},
    ).fetchone()
    return bool(row and row[0])


_FOLLOWS: Final = f"""
    care_team_patients tp JOIN care_team_members tm ON tm.team_id = tp.team_id
     WHERE tm.staff_id = %(staff)s AND {current("tp")} AND {current("tm")}
"""


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
        f"SELECT EXISTS (SELECT 1 FROM care_team_members m WHERE m.staff_id = %(staff)s"
        f" AND m.team_id = %(team)s AND {current('m')})",
        {"staff": staff_id, "team": team_id, "now": now},
    ).fetchone()
    return bool(row and row[0])


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
) -> Reason:
    """Authorize one request on one patient's data and log it: the usual first line of a route."""
    reason = authorize(
        conn,
        principal=principal,
        permission=permission,
        patient_id=patient_id,
        organisation_id=organisation_id,
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


_ENTRY_COLUMNS: Final = """
    id, at, actor_kind, actor_name, role, hpr_number, organisation_name, patient_ids, resource,
    action, interface, reason_code
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
        conditions.append("patient_ids @> ARRAY[%(patient)s]::uuid[]")
    if actor_id is not None:
        conditions.append("actor_id = %(actor)s")
    if since is not None:
        conditions.append("at >= %(since)s")
    if until is not None:
        conditions.append("at < %(until)s")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with conn.cursor(row_factory=class_row(AccessLogEntry)) as cur:
        return cur.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM access_log {where}"
            " ORDER BY at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {
                "patient": patient_id,
                "actor": actor_id,
                "since": since,
                "until": until,
                "limit": limit,
                "offset": offset,
            },
        ).fetchall()
