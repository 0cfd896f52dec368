"""The access check as FastAPI dependencies, for every component's API routes (care's, and
later FHIR's and the dashboard's).

A route names what it needs in its signature: ``record: ReadPatient`` (with
``ReadPatient = Annotated[PatientRecord, patient_record(Permission.READ_PATIENT,
resource="patient")]``) gets a connection on which the caller has been checked and the access
logged, in the transaction of the route's work; the transaction commits when the handler
returns and before the answer leaves, or rolls back with the log row if anything fails (fail
closed, care/access.py). The same dependency declares the route's access rule in the OpenAPI
document (``x-heimvakt-access``), so a route cannot check one rule and declare another, and
`GuardedRoute` refuses to build a route that declares none.
"""

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.dependencies.models import Dependant
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from care.access import (
    Action,
    Interface,
    NotAuthenticatedError,
    Permission,
    Reason,
    authorize,
    do_access_patient,
    do_log_access,
    logged_membership_change,
)
from core.api import (
    ACCESS_EXTENSION,
    API_PREFIX,
    BEARER,
    PROBLEM_RESPONSES,
    AccessRule,
    AccessScope,
    api_context,
)
from core.auth import Principal

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def _caller(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Principal:
    """Who sends the request (the parameter documents the bearer scheme)."""
    return await api_context(request).authenticate.resolve(request)


Caller = Annotated[Principal, Depends(_caller)]


def _caller_first(handler: Handler, resolve: Callable[[Request], Any]) -> Handler:
    """FastAPI reads and validates a request's body before it resolves dependencies, so an
    anonymous request with a broken body would get a 422 describing the schema;
    docs/security.md rule 1 says 401. The caller is resolved first and an anonymous one
    refused; the access check decides everything else."""

    async def caller_first(request: Request) -> Response:
        if (await resolve(request)).kind == "anonymous":
            raise NotAuthenticatedError
        return await handler(request)

    return caller_first


class AccessGuard:
    """A dependency that checks access and declares the rule it checks."""

    access_rule: AccessRule


def _declared_rules(dependant: Dependant) -> set[AccessRule]:
    found: set[AccessRule] = set()
    for sub in dependant.dependencies:
        if isinstance(sub.call, AccessGuard):
            found.add(sub.call.access_rule)
        found |= _declared_rules(sub)
    return found


class GuardedRoute(APIRoute):
    """An API route that resolves its caller before anything else and declares its access
    rule in the OpenAPI document, taken from its guard dependency."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        rules = _declared_rules(self.dependant)
        declared = self.openapi_extra or {}
        if len(rules) > 1 or (not rules and ACCESS_EXTENSION not in declared):
            raise TypeError(f"{path}: declare one access rule, through one guard dependency")
        if rules:
            self.openapi_extra = {**declared, **rules.pop().openapi()}

    def get_route_handler(self) -> Handler:
        return _caller_first(
            super().get_route_handler(),
            lambda request: api_context(request).authenticate.resolve(request),
        )


def guarded_router(*, tags: list[str | Enum] | None = None) -> APIRouter:
    """A module's router under /api/v1: its routes resolve the caller first and declare
    their access rule."""
    return APIRouter(
        prefix=API_PREFIX, tags=tags, responses=PROBLEM_RESPONSES, route_class=GuardedRoute
    )


@dataclass(frozen=True, slots=True)
class Checked:
    """Work that opens no single patient's record, after the caller's check."""

    conn: psycopg.Connection
    principal: Principal
    permission: Permission
    now: datetime
    interface: Interface

    def require_team(self, team_id: UUID) -> None:
        """The work also changes that care team: the caller must belong to it (unless
        administrator), or the team is not found."""
        authorize(
            self.conn,
            principal=self.principal,
            permission=self.permission,
            now=self.now,
            team_id=team_id,
        )

    @contextmanager
    def membership_change(self, staff_id: UUID, *, resource: str, action: Action) -> Iterator[None]:
        """Around a change of `staff_id`'s employment or care-team membership: one log row
        naming the patients whose data the change opens or closes to the person."""
        with logged_membership_change(
            self.conn,
            principal=self.principal,
            staff_id=staff_id,
            resource=resource,
            action=action,
            interface=self.interface,
            now=self.now,
        ):
            yield

    def log_patients(
        self,
        patient_ids: list[UUID],
        *,
        resource: str,
        reason: Reason,
        action: Action = Action.READ,
    ) -> None:
        """One log row naming the patients the work shows or creates, in its transaction."""
        do_log_access(
            self.conn,
            principal=self.principal,
            patient_ids=patient_ids,
            resource=resource,
            action=action,
            interface=self.interface,
            reason=reason,
            now=self.now,
        )


@dataclass(frozen=True, slots=True)
class PatientRecord(Checked):
    """Work on one patient's data: checked, and logged in the work's transaction."""

    patient_id: UUID
    reason: Reason


@contextmanager
def _checked(
    request: Request,
    principal: Principal,
    permission: Permission,
    interface: Interface = Interface.API,
    **scope: UUID,
) -> Iterator[Checked]:
    context = api_context(request)
    with context.pool.connection() as conn:
        now = context.clock.now()
        authorize(conn, principal=principal, permission=permission, now=now, **scope)
        yield Checked(
            conn=conn, principal=principal, permission=permission, now=now, interface=interface
        )


class _Allowed(AccessGuard):
    def __init__(self, permission: Permission, scope: AccessScope, interface: Interface) -> None:
        self.permission = permission
        self.interface = interface
        self.access_rule = AccessRule(permission, scope)

    def __call__(self, request: Request, principal: Caller) -> Iterator[Checked]:
        with _checked(request, principal, self.permission, self.interface) as checked:
            yield checked


class _TeamMember(AccessGuard):
    def __init__(self, permission: Permission) -> None:
        self.permission = permission
        self.access_rule = AccessRule(permission, "team")

    def __call__(self, request: Request, principal: Caller, team_id: UUID) -> Iterator[Checked]:
        with _checked(request, principal, self.permission, team_id=team_id) as checked:
            yield checked


class _OrganisationMember(AccessGuard):
    def __init__(self, permission: Permission) -> None:
        self.permission = permission
        self.access_rule = AccessRule(permission, "organisation")

    def __call__(
        self, request: Request, principal: Caller, organisation_id: UUID
    ) -> Iterator[Checked]:
        with _checked(
            request, principal, self.permission, organisation_id=organisation_id
        ) as checked:
            yield checked


@contextmanager
def open_patient_record(
    request: Request,
    principal: Principal,
    patient_id: UUID,
    *,
    permission: Permission,
    resource: str,
    action: Action,
    interface: Interface = Interface.API,
) -> Iterator[PatientRecord]:
    """The patient's record, checked and the access logged in the work's transaction: for a
    guard that finds the patient through something else the path names (an alert)."""
    context = api_context(request)
    with context.pool.connection() as conn:
        now = context.clock.now()
        reason = do_access_patient(
            conn,
            principal=principal,
            permission=permission,
            patient_id=patient_id,
            resource=resource,
            action=action,
            interface=interface,
            now=now,
        )
        yield PatientRecord(
            conn=conn,
            principal=principal,
            permission=permission,
            now=now,
            interface=interface,
            patient_id=patient_id,
            reason=reason,
        )


class _PatientRecord(AccessGuard):
    def __init__(
        self, permission: Permission, resource: str, action: Action, interface: Interface
    ) -> None:
        self.permission = permission
        self.resource = resource
        self.action = action
        self.interface = interface
        self.access_rule = AccessRule(permission, "patient")

    def __call__(
        self, request: Request, principal: Caller, patient_id: UUID
    ) -> Iterator[PatientRecord]:
        with open_patient_record(
            request,
            principal,
            patient_id,
            permission=self.permission,
            resource=self.resource,
            action=self.action,
            interface=self.interface,
        ) as record:
            yield record


def allowed(
    permission: Permission, scope: AccessScope = "none", *, interface: Interface = Interface.API
) -> DependsParam:
    """The dependency for work that opens no single patient's record: a connection after the
    role check. A route on a list of patients logs them (`Checked.log_patients`)."""
    return Depends(_Allowed(permission, scope, interface), scope="function")


def team_member(permission: Permission) -> DependsParam:
    """The dependency for work that changes the care team named by the path's ``team_id``:
    the caller must belong to it (unless administrator)."""
    return Depends(_TeamMember(permission), scope="function")


def organisation_member(permission: Permission) -> DependsParam:
    """The dependency for work on the organisation named by the path's ``organisation_id``:
    the caller must work there now (unless administrator)."""
    return Depends(_OrganisationMember(permission), scope="function")


def patient_record(
    permission: Permission,
    *,
    resource: str,
    action: Action = Action.READ,
    interface: Interface = Interface.API,
) -> DependsParam:
    """The dependency for work on the patient named by the path's ``patient_id``: checked,
    and logged as `action` on `resource` through `interface`."""
    return Depends(_PatientRecord(permission, resource, action, interface), scope="function")
