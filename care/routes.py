"""The shared-care REST API under /api/v1: organisations, staff, care teams, patients, care
plans, responsibility and hand-over, the access log and the patient's rights.

Every route starts with the one check in care/access.py; routes on a patient's data log the
access in the same transaction as the work, so a request whose log row cannot be written fails
and returns nothing. Each route declares its permission in the OpenAPI document
(``x-heimvakt-access``), from which tests/care/test_authorization_matrix.py builds its cases.
"""

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Protocol, TypeVar
from uuid import UUID

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from psycopg_pool import ConnectionPool

from care import careplan, handover, people, rights, service
from care.access import (
    Action,
    EmergencyAccessOpenError,
    ForbiddenError,
    Interface,
    NotAuthenticatedError,
    NotVisibleError,
    Permission,
    Reason,
    SelfGrantError,
    access_log,
    authorize,
    can_see_patient,
    do_access_patient,
    do_log_access,
    do_open_emergency_access,
    emergency_accesses_to_review,
    logged_membership_change,
    refuse_self_grant,
    visible_patients_filter,
    works_at,
)
from care.schemas import (
    AccessLogEntryOut,
    AuditEntryOut,
    BackupUnitIn,
    CarePlanCreate,
    CarePlanOut,
    CarePlanUpdate,
    CarePlanVersionOut,
    CareTeamDetail,
    CareTeamIn,
    CareTeamOut,
    EmergencyAccessIn,
    EmergencyAccessOut,
    ErasureIn,
    ErasureOut,
    HandoverDecisionIn,
    HandoverDeclineIn,
    HandoverIn,
    HandoverOut,
    IdentityIn,
    MembershipIn,
    MembershipOut,
    MeOut,
    OrganisationIn,
    OrganisationOut,
    Page,
    PatientIn,
    PatientOut,
    PatientUpdate,
    ReadingOut,
    ResponsibilityPeriodOut,
    StaffIn,
    StaffOut,
    TeamMemberIn,
    TeamPatientIn,
    TemplateOut,
)
from care.templates import TEMPLATES, ScheduledMeasurement
from core.auth import Principal
from core.clock import Clock
from core.fields import STORABLE, Moment
from core.problems import problem, problem_response
from core.readings import readings_for_patient

T = TypeVar("T")

ACCESS_EXTENSION = "x-heimvakt-access"
API_PREFIX = "/api/v1"
CHALLENGE = 'Bearer realm="heimvakt"'


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response("No valid bearer token"),
    403: problem_response("Your role may not do this"),
    404: problem_response("Not found, or not in your care"),
    409: problem_response("The change conflicts with the current state"),
    422: problem_response("The request is not valid"),
}

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


PATIENT_SCOPES = frozenset({"patient", "handover", "patients", "alert", "team", "staff"})
"""Scopes whose routes read or write patients' data, or change who may, so every request
leaves a log row."""


def access(permission: Permission | str, scope: str) -> dict[str, Any]:
    """The route's permission and the compartment it checks, as an OpenAPI extension.

    `scope`: none (no patient data), self (the caller's own account), team (one care team's
    members), staff (one staff member's employment), organisation (one unit's settings),
    patient (one patient), handover or alert (the patient of one hand-over or alert), patients
    (a list of them).
    """
    return {
        ACCESS_EXTENSION: {
            "permission": str(permission),
            "scope": scope,
            "access_logged": scope in PATIENT_SCOPES,
        }
    }


def page(items: list[T], *, limit: int, offset: int) -> Page[T]:
    return Page[T](
        items=items,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(items) == limit else None,
    )


def install_care_problems(app: FastAPI) -> None:
    """Answer the access check's refusals as problem+json: 401, 403, or 404 (which hides
    whether a patient outside the caller's compartment exists)."""

    async def not_authenticated(request: Request, error: Exception) -> JSONResponse:
        return problem(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": CHALLENGE}
        )

    async def forbidden(request: Request, error: Exception) -> JSONResponse:
        return problem(403, "your role may not do this")

    async def self_grant(request: Request, error: Exception) -> JSONResponse:
        return problem(
            403,
            "nobody may give themselves a membership: ask a colleague to add you, or open an"
            " emergency access to the patient with a reason",
        )

    async def not_visible(request: Request, error: Exception) -> JSONResponse:
        return problem(404, "not found, or not in your care")

    async def conflict(request: Request, error: Exception) -> JSONResponse:
        return problem(409, str(error))

    async def stale(request: Request, error: Exception) -> JSONResponse:
        return problem(412, "the care plan changed since you read it; read it again")

    async def unprocessable(request: Request, error: Exception) -> JSONResponse:
        return problem(422, str(error))

    app.add_exception_handler(NotAuthenticatedError, not_authenticated)
    app.add_exception_handler(ForbiddenError, forbidden)
    app.add_exception_handler(SelfGrantError, self_grant)
    app.add_exception_handler(NotVisibleError, not_visible)
    for refused in (
        people.MembershipError,
        EmergencyAccessOpenError,
        handover.HandoverStateError,
        careplan.CarePlanExistsError,
    ):
        app.add_exception_handler(refused, conflict)
    app.add_exception_handler(careplan.StaleVersionError, stale)
    for invalid in (
        careplan.ReasonRequiredError,
        careplan.UnknownTemplateError,
        careplan.InvalidChangeError,
    ):
        app.add_exception_handler(invalid, unprocessable)


class Authenticator(Protocol):
    """Who sends a request (heimvakt.auth.BearerAuthenticator): a FastAPI dependency that
    can also be resolved on its own, before the body is read."""

    async def resolve(self, request: Request) -> Principal: ...

    async def __call__(self, *args: Any, **kwargs: Any) -> Principal: ...


def api_router(authenticate: Authenticator) -> APIRouter:
    """A router under /api/v1 whose routes authenticate the caller before anything else.

    FastAPI reads and validates a request's body before it resolves dependencies, so an
    anonymous request with a missing or broken body used to get a 422 with validation
    details; docs/security.md rule 1 says 401. Each route here resolves the caller first and
    refuses an anonymous one; the access check in the route still decides everything else.
    """

    class CallerFirst(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def caller_first(request: Request) -> Response:
                if (await authenticate.resolve(request)).kind == "anonymous":
                    raise NotAuthenticatedError
                return await handler(request)

            return caller_first

    return APIRouter(prefix=API_PREFIX, responses=PROBLEM_RESPONSES, route_class=CallerFirst)


@dataclass(frozen=True, slots=True)
class Guard:
    """What every route needs: the router, the pool, the clock and the two guards (also used
    by other components' routers, so every route checks access the same way)."""

    router: APIRouter
    pool: ConnectionPool
    clock: Clock

    @contextmanager
    def allowed(
        self, principal: Principal, permission: Permission, **scope: UUID
    ) -> Iterator[psycopg.Connection]:
        """A connection for work that touches no patient's data, after the check."""
        with self.pool.connection() as conn:
            authorize(
                conn, principal=principal, permission=permission, now=self.clock.now(), **scope
            )
            yield conn

    @contextmanager
    def patient_record(
        self,
        principal: Principal,
        patient_id: UUID,
        *,
        permission: Permission,
        resource: str,
        action: Action = Action.READ,
        team_id: UUID | None = None,
    ) -> Iterator[psycopg.Connection]:
        """A connection for work on one patient's data, checked and logged in its transaction;
        with `team_id`, the work also changes that care team, so the caller must belong to it."""
        with self.pool.connection() as conn:
            do_access_patient(
                conn,
                principal=principal,
                permission=permission,
                patient_id=patient_id,
                resource=resource,
                action=action,
                interface=Interface.API,
                now=self.clock.now(),
                team_id=team_id,
            )
            yield conn


def care_router(*, pool: ConnectionPool, clock: Clock, authenticate: Authenticator) -> APIRouter:
    api = Guard(router=api_router(authenticate), pool=pool, clock=clock)
    caller = Annotated[Principal, Depends(authenticate)]
    for add in (
        _me_routes,
        _organisation_routes,
        _staff_routes,
        _team_routes,
        _patient_routes,
        _care_plan_routes,
        _handover_routes,
        _handover_decision_routes,
        _rights_routes,
        _emergency_routes,
    ):
        add(api, caller)
    return api.router


def _me_routes(api: Guard, Caller: Any) -> None:
    """Who am I."""

    @api.router.get("/me", tags=["me"], response_model=MeOut, openapi_extra=access("any", "self"))
    def me(principal: Caller) -> MeOut:
        if principal.kind == "anonymous":
            raise NotAuthenticatedError
        if principal.kind not in ("staff", "patient"):
            raise ForbiddenError
        return MeOut(
            kind=principal.kind,  # type: ignore[arg-type]
            id=principal.uuid,
            name=principal.name,
            role=principal.role,
            hpr_number=principal.hpr_number,
            organisation_name=principal.organisation_name,
        )

    @api.router.get(
        "/me/access-log",
        tags=["me"],
        response_model=Page[AccessLogEntryOut],
        openapi_extra=access(Permission.READ_PATIENT, "self"),
    )
    def my_access_log(principal: Caller, limit: Limit = 50, offset: Offset = 0) -> Any:
        """Who has looked at my data, when, from which organisation, and why (patients only)."""
        if principal.kind == "anonymous":
            raise NotAuthenticatedError
        if principal.kind != "patient":
            raise ForbiddenError
        with api.pool.connection() as conn:
            entries = access_log(conn, patient_id=principal.uuid, limit=limit, offset=offset)
        return page(
            [AccessLogEntryOut.model_validate(e, from_attributes=True) for e in entries],
            limit=limit,
            offset=offset,
        )


def _organisation_routes(api: Guard, Caller: Any) -> None:
    """Organisations."""

    @api.router.get(
        "/organisations",
        tags=["organisations"],
        response_model=Page[OrganisationOut],
        openapi_extra=access(Permission.READ_DIRECTORY, "none"),
    )
    def list_organisations(principal: Caller, limit: Limit = 50, offset: Offset = 0) -> Any:
        with api.allowed(principal, Permission.READ_DIRECTORY) as conn:
            rows = service.list_organisations(conn, limit=limit, offset=offset)
        return page([_organisation(o) for o in rows], limit=limit, offset=offset)

    @api.router.post(
        "/organisations",
        tags=["organisations"],
        status_code=201,
        response_model=OrganisationOut,
        openapi_extra=access(Permission.MANAGE_ORGANISATIONS, "none"),
    )
    def create_organisation(principal: Caller, body: OrganisationIn) -> OrganisationOut:
        with api.allowed(principal, Permission.MANAGE_ORGANISATIONS) as conn:
            try:
                organisation_id = service.do_create_organisation(
                    conn,
                    name=body.name,
                    kind=body.kind,
                    org_number=body.org_number,
                    timezone=body.timezone,
                    opening_hours=[h.model_dump() for h in body.opening_hours],
                )
            except ValueError as error:
                raise _conflict(error) from error
            except psycopg.errors.UniqueViolation as error:
                raise _conflict("an organisation with this number exists") from error
            created = service.get_organisation(conn, organisation_id=organisation_id)
        assert created is not None
        return _organisation(created)

    @api.router.get(
        "/organisations/{organisation_id}",
        tags=["organisations"],
        response_model=OrganisationOut,
        openapi_extra=access(Permission.READ_DIRECTORY, "none"),
    )
    def get_organisation(principal: Caller, organisation_id: UUID) -> OrganisationOut:
        with api.allowed(principal, Permission.READ_DIRECTORY) as conn:
            found = service.get_organisation(conn, organisation_id=organisation_id)
        if found is None:
            raise NotVisibleError
        return _organisation(found)


def _staff_routes(api: Guard, Caller: Any) -> None:
    """Staff."""

    @api.router.get(
        "/staff",
        tags=["staff"],
        response_model=Page[StaffOut],
        openapi_extra=access(Permission.READ_STAFF, "none"),
    )
    def list_staff(principal: Caller, limit: Limit = 50, offset: Offset = 0) -> Any:
        with api.allowed(principal, Permission.READ_STAFF) as conn:
            rows = people.list_staff(conn, limit=limit, offset=offset)
        return page(
            [StaffOut.model_validate(s, from_attributes=True) for s in rows],
            limit=limit,
            offset=offset,
        )

    @api.router.post(
        "/staff",
        tags=["staff"],
        status_code=201,
        response_model=StaffOut,
        openapi_extra=access(Permission.MANAGE_STAFF, "none"),
    )
    def create_staff(principal: Caller, body: StaffIn) -> Any:
        with api.allowed(principal, Permission.MANAGE_STAFF) as conn:
            created = people.do_create_staff(conn, **body.model_dump())
        return StaffOut.model_validate(created, from_attributes=True)

    @api.router.get(
        "/staff/{staff_id}",
        tags=["staff"],
        response_model=StaffOut,
        openapi_extra=access(Permission.READ_STAFF, "none"),
    )
    def get_staff(principal: Caller, staff_id: UUID) -> Any:
        with api.allowed(principal, Permission.READ_STAFF) as conn:
            found = people.get_staff(conn, staff_id=staff_id)
        if found is None:
            raise NotVisibleError
        return StaffOut.model_validate(found, from_attributes=True)

    @api.router.get(
        "/staff/{staff_id}/memberships",
        tags=["staff"],
        response_model=list[MembershipOut],
        openapi_extra=access(Permission.READ_STAFF, "none"),
    )
    def staff_memberships(principal: Caller, staff_id: UUID) -> Any:
        """Employment and care-team memberships, current and past."""
        with api.allowed(principal, Permission.READ_STAFF) as conn:
            rows = people.memberships_of(conn, staff_id=staff_id)
        return [MembershipOut.model_validate(m, from_attributes=True) for m in rows]

    @api.router.post(
        "/staff/{staff_id}/employments",
        tags=["staff"],
        status_code=201,
        response_model=MembershipOut,
        openapi_extra=access(Permission.MANAGE_STAFF, "staff"),
    )
    def add_employment(principal: Caller, staff_id: UUID, body: MembershipIn) -> Any:
        """Employment opens the patients of the care teams the person is a member of for it;
        nobody employs themselves."""
        now = api.clock.now()
        with (
            api.allowed(principal, Permission.MANAGE_STAFF) as conn,
            logged_membership_change(
                conn,
                principal=principal,
                staff_id=staff_id,
                resource="employment",
                action=Action.CREATE,
                interface=Interface.API,
                now=now,
            ),
        ):
            refuse_self_grant(principal, staff_id=staff_id)
            created = people.do_add_employment(
                conn, staff_id=staff_id, organisation_id=body.organisation_id, since=now
            )
        return MembershipOut.model_validate(created, from_attributes=True)

    @api.router.delete(
        "/staff/{staff_id}/employments/{membership_id}",
        tags=["staff"],
        response_model=MembershipOut,
        openapi_extra=access(Permission.MANAGE_STAFF, "staff"),
    )
    def end_employment(principal: Caller, staff_id: UUID, membership_id: UUID) -> Any:
        """End an employment now; the history is kept. Access through the care-team memberships
        held for that organisation ends with it, and without another employment, log-in too."""
        now = api.clock.now()
        with (
            api.allowed(principal, Permission.MANAGE_STAFF) as conn,
            logged_membership_change(
                conn,
                principal=principal,
                staff_id=staff_id,
                resource="employment",
                action=Action.DELETE,
                interface=Interface.API,
                now=now,
            ),
        ):
            found = people.get_employment(conn, membership_id=membership_id)
            if found is None or found.staff_id != staff_id:
                raise NotVisibleError
            ended = people.do_end_employment(conn, membership_id=membership_id, now=now)
            if not ended:
                raise _conflict("the employment has already ended")
        return MembershipOut.model_validate(ended, from_attributes=True)

    @api.router.post(
        "/staff/{staff_id}/identities",
        tags=["staff"],
        status_code=204,
        openapi_extra=access(Permission.MANAGE_STAFF, "none"),
    )
    def link_staff_identity(principal: Caller, staff_id: UUID, body: IdentityIn) -> Response:
        """Let tokens from an issuer (HelseID) with this subject speak for the staff member."""
        with api.allowed(principal, Permission.MANAGE_STAFF) as conn:
            if people.get_staff(conn, staff_id=staff_id) is None:
                raise NotVisibleError
            try:
                people.do_link_identity(
                    conn, issuer=body.issuer, subject=body.subject, staff_id=staff_id
                )
            except psycopg.errors.UniqueViolation as error:
                raise _conflict("this identity is already linked") from error
        return Response(status_code=204)


def _team_routes(api: Guard, Caller: Any) -> None:
    """Care teams."""

    @api.router.get(
        "/care-teams",
        tags=["care teams"],
        response_model=Page[CareTeamOut],
        openapi_extra=access(Permission.READ_DIRECTORY, "none"),
    )
    def list_care_teams(principal: Caller, limit: Limit = 50, offset: Offset = 0) -> Any:
        with api.allowed(principal, Permission.READ_DIRECTORY) as conn:
            rows = people.list_care_teams(conn, limit=limit, offset=offset)
        return page(
            [CareTeamOut.model_validate(t, from_attributes=True) for t in rows],
            limit=limit,
            offset=offset,
        )

    @api.router.post(
        "/care-teams",
        tags=["care teams"],
        status_code=201,
        response_model=CareTeamOut,
        openapi_extra=access(Permission.MANAGE_TEAMS, "none"),
    )
    def create_care_team(principal: Caller, body: CareTeamIn) -> Any:
        """A coordinator who creates a team becomes its first member, for the organisation she
        acts for. This is the one membership one gives oneself, and it opens nobody's data: a
        new team follows no patient, and only someone who already sees a patient can add them."""
        now = api.clock.now()
        with api.allowed(principal, Permission.MANAGE_TEAMS) as conn:
            team = people.do_create_care_team(conn, name=body.name, description=body.description)
            if principal.role != "administrator":
                with logged_membership_change(
                    conn,
                    principal=principal,
                    staff_id=principal.uuid,
                    resource="care-team-member",
                    action=Action.CREATE,
                    interface=Interface.API,
                    now=now,
                ):
                    people.do_add_team_member(
                        conn,
                        team_id=team.id,
                        staff_id=principal.uuid,
                        since=now,
                        organisation_id=principal.organisation_id,
                    )
        return CareTeamOut.model_validate(team, from_attributes=True)

    @api.router.get(
        "/care-teams/{team_id}",
        tags=["care teams"],
        response_model=CareTeamDetail,
        openapi_extra=access(Permission.READ_DIRECTORY, "none"),
    )
    def get_care_team(principal: Caller, team_id: UUID) -> Any:
        with api.allowed(principal, Permission.READ_DIRECTORY) as conn:
            team = people.get_care_team(conn, team_id=team_id)
            if team is None:
                raise NotVisibleError
            members = people.team_members(conn, team_id=team_id, now=api.clock.now())
        return CareTeamDetail(
            id=team.id,
            name=team.name,
            description=team.description,
            members=[MembershipOut.model_validate(m, from_attributes=True) for m in members],
        )

    @api.router.post(
        "/care-teams/{team_id}/members",
        tags=["care teams"],
        status_code=201,
        response_model=MembershipOut,
        openapi_extra=access(Permission.MANAGE_TEAMS, "team"),
    )
    def add_team_member(principal: Caller, team_id: UUID, body: TeamMemberIn) -> Any:
        """A second person adds a member, for an organisation the member works for now (by
        default their only employer): nobody adds themselves (403; emergency access is the way
        for someone outside the team who needs a record now)."""
        now = api.clock.now()
        with (
            api.allowed(principal, Permission.MANAGE_TEAMS, team_id=team_id) as conn,
            logged_membership_change(
                conn,
                principal=principal,
                staff_id=body.staff_id,
                resource="care-team-member",
                action=Action.CREATE,
                interface=Interface.API,
                now=now,
            ),
        ):
            refuse_self_grant(principal, staff_id=body.staff_id)
            created = people.do_add_team_member(
                conn,
                team_id=team_id,
                staff_id=body.staff_id,
                since=now,
                organisation_id=body.organisation_id,
            )
        return MembershipOut.model_validate(created, from_attributes=True)

    @api.router.delete(
        "/care-teams/{team_id}/members/{membership_id}",
        tags=["care teams"],
        response_model=MembershipOut,
        openapi_extra=access(Permission.MANAGE_TEAMS, "team"),
    )
    def end_team_membership(principal: Caller, team_id: UUID, membership_id: UUID) -> Any:
        """End a membership now: access to the team's patients through it ends with it."""
        now = api.clock.now()
        with api.allowed(principal, Permission.MANAGE_TEAMS, team_id=team_id) as conn:
            found = people.get_team_membership(conn, membership_id=membership_id)
            if found is None or found.of_id != team_id:
                raise NotVisibleError
            with logged_membership_change(
                conn,
                principal=principal,
                staff_id=found.staff_id,
                resource="care-team-member",
                action=Action.DELETE,
                interface=Interface.API,
                now=now,
            ):
                ended = people.do_end_team_membership(conn, membership_id=membership_id, now=now)
                if not ended:
                    raise _conflict("the membership has already ended")
        return MembershipOut.model_validate(ended, from_attributes=True)


def _patient_routes(api: Guard, Caller: Any) -> None:
    """Patients."""

    @api.router.get(
        "/patients",
        tags=["patients"],
        response_model=Page[PatientOut],
        openapi_extra=access(Permission.READ_PATIENT, "patients"),
    )
    def list_patients(principal: Caller, limit: Limit = 50, offset: Offset = 0) -> Any:
        """The patients in the caller's care (a patient: only themself); one log row lists them."""
        now = api.clock.now()
        with api.allowed(principal, Permission.READ_PATIENT) as conn:
            rows = service.list_patients(
                conn,
                now=now,
                visible=visible_patients_filter(principal, now=now),
                limit=limit,
                offset=offset,
            )
            do_log_access(
                conn,
                principal=principal,
                patient_ids=[p.id for p in rows],
                resource="patient-list",
                action=Action.READ,
                interface=Interface.API,
                reason=Reason.OWN_DATA if principal.kind == "patient" else Reason.CARE_TEAM,
                now=now,
            )
        return page(
            [PatientOut.model_validate(p, from_attributes=True) for p in rows],
            limit=limit,
            offset=offset,
        )

    @api.router.post(
        "/patients",
        tags=["patients"],
        status_code=201,
        response_model=PatientOut,
        openapi_extra=access(Permission.REGISTER_PATIENT, "patients"),
    )
    def register_patient(principal: Caller, body: PatientIn) -> Any:
        """Register a patient into one of your care teams, with a responsible unit from now."""
        now = api.clock.now()
        with api.allowed(principal, Permission.REGISTER_PATIENT, team_id=body.team_id) as conn:
            if service.get_organisation(conn, organisation_id=body.responsible_unit_id) is None:
                raise _conflict("no such responsible unit")
            patient_id = service.do_create_patient(
                conn,
                display_name=body.display_name,
                conditions=body.conditions,
                responsible_unit=body.responsible_unit_id,
                since=now,
                birth_date=body.birth_date,
                preferred_language=body.preferred_language,
                phone=body.phone,
                email=body.email,
            )
            people.do_add_team_patient(conn, team_id=body.team_id, patient_id=patient_id, since=now)
            do_log_access(
                conn,
                principal=principal,
                patient_ids=[patient_id],
                resource="patient",
                action=Action.CREATE,
                interface=Interface.API,
                reason=Reason.CARE_TEAM,
                now=now,
            )
            created = service.get_patient(conn, patient_id=patient_id, now=now)
        return PatientOut.model_validate(created, from_attributes=True)

    @api.router.get(
        "/patients/{patient_id}",
        tags=["patients"],
        response_model=PatientOut,
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def get_patient(principal: Caller, patient_id: UUID) -> Any:
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="patient"
        ) as conn:
            found = service.get_patient(conn, patient_id=patient_id, now=api.clock.now())
        return PatientOut.model_validate(found, from_attributes=True)

    @api.router.patch(
        "/patients/{patient_id}",
        tags=["patients"],
        response_model=PatientOut,
        openapi_extra=access(Permission.UPDATE_PATIENT, "patient"),
    )
    def update_patient(principal: Caller, patient_id: UUID, body: PatientUpdate) -> Any:
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.UPDATE_PATIENT,
            resource="patient",
            action=Action.UPDATE,
        ) as conn:
            service.do_update_patient(
                conn, patient_id=patient_id, changes=body.model_dump(exclude_unset=True)
            )
            found = service.get_patient(conn, patient_id=patient_id, now=api.clock.now())
        return PatientOut.model_validate(found, from_attributes=True)

    @api.router.get(
        "/patients/{patient_id}/care-teams",
        tags=["patients"],
        response_model=list[CareTeamOut],
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def patient_care_teams(principal: Caller, patient_id: UUID) -> Any:
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="care-teams"
        ) as conn:
            teams = people.teams_of_patient(conn, patient_id=patient_id, now=api.clock.now())
        return [CareTeamOut.model_validate(t, from_attributes=True) for t in teams]

    @api.router.post(
        "/patients/{patient_id}/care-teams",
        tags=["patients"],
        status_code=204,
        openapi_extra=access(Permission.MANAGE_TEAM_PATIENTS, "patient"),
    )
    def add_patient_to_team(principal: Caller, patient_id: UUID, body: TeamPatientIn) -> Response:
        """Let another team you belong to follow the patient too."""
        now = api.clock.now()
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.MANAGE_TEAM_PATIENTS,
            resource="care-teams",
            action=Action.UPDATE,
            team_id=body.team_id,
        ) as conn:
            people.do_add_team_patient(conn, team_id=body.team_id, patient_id=patient_id, since=now)
        return Response(status_code=204)

    @api.router.delete(
        "/patients/{patient_id}/care-teams/{team_id}",
        tags=["patients"],
        status_code=204,
        openapi_extra=access(Permission.MANAGE_TEAM_PATIENTS, "patient"),
    )
    def remove_patient_from_team(principal: Caller, patient_id: UUID, team_id: UUID) -> Response:
        """Only a member of the team takes a patient off it: another unit's team is not yours
        to change, even for a patient you share."""
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.MANAGE_TEAM_PATIENTS,
            resource="care-teams",
            action=Action.UPDATE,
            team_id=team_id,
        ) as conn:
            if not people.do_remove_team_patient(
                conn, team_id=team_id, patient_id=patient_id, now=api.clock.now()
            ):
                raise NotVisibleError
        return Response(status_code=204)

    @api.router.get(
        "/patients/{patient_id}/readings",
        tags=["patients"],
        response_model=list[ReadingOut],
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def patient_readings(
        principal: Caller,
        patient_id: UUID,
        since: Moment | None = None,
        until: Moment | None = None,
        code: Annotated[str | None, Query(max_length=64), STORABLE] = None,
    ) -> Any:
        """Readings in [since, until), oldest first; by default the last 30 days, at most 90."""
        now = api.clock.now()
        until = until or now
        since = since or until - timedelta(days=30)
        if until - since > timedelta(days=90):
            since = until - timedelta(days=90)
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="readings"
        ) as conn:
            rows = readings_for_patient(conn, patient_id=patient_id, since=since, until=until)
        return [
            ReadingOut.model_validate(r, from_attributes=True)
            for r in rows
            if code is None or r.code == code
        ]


def _care_plan_routes(api: Guard, Caller: Any) -> None:
    """Care plans."""

    @api.router.get(
        "/care-plan-templates",
        tags=["care plans"],
        response_model=list[TemplateOut],
        openapi_extra=access(Permission.READ_DIRECTORY, "none"),
    )
    def list_templates(principal: Caller) -> Any:
        with api.allowed(principal, Permission.READ_DIRECTORY):
            pass
        return [careplan.template_as_json(t) for t in TEMPLATES.values()]

    @api.router.get(
        "/patients/{patient_id}/care-plan",
        tags=["care plans"],
        response_model=CarePlanOut,
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def get_care_plan(principal: Caller, patient_id: UUID, response: Response) -> Any:
        """The care plan; its ``ETag`` goes into ``If-Match`` when you change it."""
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="care-plan"
        ) as conn:
            plan = careplan.get_care_plan(conn, patient_id=patient_id)
        if plan is None:
            raise NotVisibleError
        response.headers["ETag"] = _etag(plan.version)
        return careplan.care_plan_as_json(plan)

    @api.router.post(
        "/patients/{patient_id}/care-plan",
        tags=["care plans"],
        status_code=201,
        response_model=CarePlanOut,
        openapi_extra=access(Permission.WRITE_CARE_PLAN, "patient"),
    )
    def create_care_plan(
        principal: Caller, patient_id: UUID, body: CarePlanCreate, response: Response
    ) -> Any:
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.WRITE_CARE_PLAN,
            resource="care-plan",
            action=Action.CREATE,
        ) as conn:
            plan = careplan.do_create_care_plan(
                conn,
                patient_id=patient_id,
                template=body.template,
                author=principal.uuid,
                now=api.clock.now(),
            )
        response.headers["ETag"] = _etag(plan.version)
        return careplan.care_plan_as_json(plan)

    @api.router.patch(
        "/patients/{patient_id}/care-plan",
        tags=["care plans"],
        response_model=CarePlanOut,
        openapi_extra=access(Permission.WRITE_CARE_PLAN, "patient"),
        responses={
            412: problem_response("The plan changed since you read it (If-Match is stale)"),
            428: problem_response("If-Match is missing"),
        },
    )
    def update_care_plan(
        principal: Caller,
        patient_id: UUID,
        body: CarePlanUpdate,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
    ) -> Any:
        """Change thresholds, schedule, self-management text or SpO2 scale, with a reason.

        Send the ``ETag`` of the plan you read as ``If-Match``: two nurses never silently
        overwrite each other; the second gets 412 and reads the plan again.
        """
        expected = _version_from_etag(if_match)
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.WRITE_CARE_PLAN,
            resource="care-plan",
            action=Action.UPDATE,
        ) as conn:
            plan = careplan.do_update_care_plan(
                conn,
                patient_id=patient_id,
                expected_version=expected,
                author=principal.uuid,
                now=api.clock.now(),
                reason=body.reason,
                thresholds=None
                if body.thresholds is None
                else [t.to_limits() for t in body.thresholds],
                measurements=None
                if body.measurements is None
                else [ScheduledMeasurement(**m.model_dump()) for m in body.measurements],
                self_management=body.self_management,
                spo2_scale=body.spo2_scale,
            )
        response.headers["ETag"] = _etag(plan.version)
        return careplan.care_plan_as_json(plan)

    @api.router.get(
        "/patients/{patient_id}/care-plan/versions",
        tags=["care plans"],
        response_model=list[CarePlanVersionOut],
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def care_plan_versions(principal: Caller, patient_id: UUID) -> Any:
        """Every change: who, when, why, and the plan before and after (newest first)."""
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="care-plan"
        ) as conn:
            versions = careplan.care_plan_history(conn, patient_id=patient_id)
        return [CarePlanVersionOut.model_validate(v, from_attributes=True) for v in versions]


def _handover_routes(api: Guard, Caller: Any) -> None:
    """Responsibility over time, and proposing a hand-over."""

    @api.router.get(
        "/patients/{patient_id}/responsibility",
        tags=["responsibility"],
        response_model=list[ResponsibilityPeriodOut],
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def responsibility(principal: Caller, patient_id: UUID) -> Any:
        """Who was responsible (and back-up) when, oldest first; the open period is now."""
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="responsibility"
        ) as conn:
            periods = handover.responsibility_history(conn, patient_id=patient_id)
        return [ResponsibilityPeriodOut.model_validate(p, from_attributes=True) for p in periods]

    @api.router.put(
        "/patients/{patient_id}/backup-unit",
        tags=["responsibility"],
        status_code=204,
        openapi_extra=access(Permission.MANAGE_RESPONSIBILITY, "patient"),
    )
    def set_backup_unit(principal: Caller, patient_id: UUID, body: BackupUnitIn) -> Response:
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.MANAGE_RESPONSIBILITY,
            resource="responsibility",
            action=Action.UPDATE,
        ) as conn:
            if (
                body.organisation_id is not None
                and service.get_organisation(conn, organisation_id=body.organisation_id) is None
            ):
                raise _conflict("no such organisation")
            handover.do_set_backup_unit(
                conn,
                patient_id=patient_id,
                organisation_id=body.organisation_id,
                now=api.clock.now(),
            )
        return Response(status_code=204)

    @api.router.get(
        "/patients/{patient_id}/handovers",
        tags=["responsibility"],
        response_model=list[HandoverOut],
        openapi_extra=access(Permission.READ_PATIENT, "patient"),
    )
    def patient_handovers(principal: Caller, patient_id: UUID) -> Any:
        with api.patient_record(
            principal, patient_id, permission=Permission.READ_PATIENT, resource="handover"
        ) as conn:
            rows = handover.handovers_for_patient(conn, patient_id=patient_id)
        return [HandoverOut.model_validate(h, from_attributes=True) for h in rows]

    @api.router.post(
        "/patients/{patient_id}/handovers",
        tags=["responsibility"],
        status_code=201,
        response_model=HandoverOut,
        openapi_extra=access(Permission.PROPOSE_HANDOVER, "patient"),
    )
    def propose_handover(principal: Caller, patient_id: UUID, body: HandoverIn) -> Any:
        """Propose to hand the patient over; your unit stays responsible until acceptance."""
        now = api.clock.now()
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.PROPOSE_HANDOVER,
            resource="handover",
            action=Action.CREATE,
        ) as conn:
            sender = handover.responsible_unit(conn, patient_id=patient_id, at=now)
            if sender is None or not works_at(
                conn, staff_id=principal.uuid, organisation_id=sender, now=now
            ):
                raise ForbiddenError
            plan = careplan.get_care_plan(conn, patient_id=patient_id)
            created = handover.do_propose_handover(
                conn,
                patient_id=patient_id,
                to_organisation_id=body.to_organisation_id,
                proposed_by=principal.uuid,
                note=body.note,
                now=now,
                care_plan_version=None if plan is None else plan.version,
                from_organisation_id=sender,
            )
        return HandoverOut.model_validate(created, from_attributes=True)


def _handover_decision_routes(api: Guard, Caller: Any) -> None:
    """Hand-over proposals, seen from the receiving unit."""

    @api.router.get(
        "/handovers",
        tags=["responsibility"],
        response_model=list[HandoverOut],
        openapi_extra=access(Permission.DECIDE_HANDOVER, "patients"),
    )
    def pending_handovers(principal: Caller) -> Any:
        """Proposals waiting for an organisation you work for."""
        now = api.clock.now()
        with api.allowed(principal, Permission.DECIDE_HANDOVER) as conn:
            rows = [
                h
                for organisation in people.employers(conn, staff_id=principal.uuid, now=now)
                for h in handover.pending_handovers_to(conn, organisation_id=organisation)
            ]
            do_log_access(
                conn,
                principal=principal,
                patient_ids=[h.patient_id for h in rows],
                resource="handover",
                action=Action.READ,
                interface=Interface.API,
                reason=Reason.HANDOVER,
                now=now,
            )
        return [HandoverOut.model_validate(h, from_attributes=True) for h in rows]

    @contextmanager
    def handover_record(
        principal: Caller,
        handover_id: UUID,
        *,
        permission: Permission,
        action: Action,
        receiver: bool,
    ) -> Iterator[tuple[psycopg.Connection, handover.Handover]]:
        """A hand-over, for the sender's care team or (with `receiver`) the receiving unit."""
        with api.pool.connection() as conn:
            found = handover.get_handover(conn, handover_id=handover_id)
            if found is None:
                authorize(conn, principal=principal, permission=permission, now=api.clock.now())
                raise NotVisibleError
            do_access_patient(
                conn,
                principal=principal,
                permission=permission,
                patient_id=found.patient_id,
                organisation_id=found.to_organisation_id if receiver else None,
                resource="handover",
                action=action,
                interface=Interface.API,
                now=api.clock.now(),
            )
            yield conn, found

    @api.router.get(
        "/handovers/{handover_id}",
        tags=["responsibility"],
        response_model=HandoverOut,
        openapi_extra=access(Permission.READ_PATIENT, "handover"),
    )
    def get_handover(principal: Caller, handover_id: UUID) -> Any:
        """For the patient's care team and for the receiving unit."""
        receiver = _is_receiver(principal, handover_id)
        permission = Permission.DECIDE_HANDOVER if receiver else Permission.READ_PATIENT
        with handover_record(
            principal, handover_id, permission=permission, action=Action.READ, receiver=receiver
        ) as (_conn, found):
            return HandoverOut.model_validate(found, from_attributes=True)

    @api.router.post(
        "/handovers/{handover_id}/accept",
        tags=["responsibility"],
        response_model=HandoverOut,
        openapi_extra=access(Permission.DECIDE_HANDOVER, "handover"),
    )
    def accept_handover(principal: Caller, handover_id: UUID, body: HandoverDecisionIn) -> Any:
        """The receiving unit takes over now: from this moment alerts go to it."""
        with handover_record(
            principal,
            handover_id,
            permission=Permission.DECIDE_HANDOVER,
            action=Action.UPDATE,
            receiver=True,
        ) as (conn, _found):
            decided = handover.do_accept_handover(
                conn,
                handover_id=handover_id,
                decided_by=principal.uuid,
                now=api.clock.now(),
                note=body.note,
                sender_becomes_backup=body.sender_becomes_backup,
            )
        return HandoverOut.model_validate(decided, from_attributes=True)

    @api.router.post(
        "/handovers/{handover_id}/decline",
        tags=["responsibility"],
        response_model=HandoverOut,
        openapi_extra=access(Permission.DECIDE_HANDOVER, "handover"),
    )
    def decline_handover(principal: Caller, handover_id: UUID, body: HandoverDeclineIn) -> Any:
        """The sender stays responsible; the note says why."""
        with handover_record(
            principal,
            handover_id,
            permission=Permission.DECIDE_HANDOVER,
            action=Action.UPDATE,
            receiver=True,
        ) as (conn, _found):
            decided = handover.do_decline_handover(
                conn,
                handover_id=handover_id,
                decided_by=principal.uuid,
                now=api.clock.now(),
                note=body.note,
            )
        return HandoverOut.model_validate(decided, from_attributes=True)

    @api.router.post(
        "/handovers/{handover_id}/withdraw",
        tags=["responsibility"],
        response_model=HandoverOut,
        openapi_extra=access(Permission.PROPOSE_HANDOVER, "handover"),
    )
    def withdraw_handover(principal: Caller, handover_id: UUID) -> Any:
        """Only staff of the sending unit withdraw its proposal."""
        with handover_record(
            principal,
            handover_id,
            permission=Permission.PROPOSE_HANDOVER,
            action=Action.UPDATE,
            receiver=False,
        ) as (conn, found):
            if not works_at(
                conn,
                staff_id=principal.uuid,
                organisation_id=found.from_organisation_id,
                now=api.clock.now(),
            ):
                raise ForbiddenError
            decided = handover.do_withdraw_handover(
                conn, handover_id=handover_id, decided_by=principal.uuid, now=api.clock.now()
            )
        return HandoverOut.model_validate(decided, from_attributes=True)

    def _is_receiver(principal: Principal, handover_id: UUID) -> bool:
        """Whether the caller reads a hand-over as the receiving unit rather than the team."""
        if principal.kind != "staff":
            return False
        now = api.clock.now()
        with api.pool.connection() as conn:
            found = handover.get_handover(conn, handover_id=handover_id)
            return (
                found is not None
                and not can_see_patient(
                    conn, principal=principal, patient_id=found.patient_id, now=now
                )
                and works_at(
                    conn, staff_id=principal.uuid, organisation_id=found.to_organisation_id, now=now
                )
            )


def _rights_routes(api: Guard, Caller: Any) -> None:
    """The access log and the patient's rights."""

    @api.router.get(
        "/access-log",
        tags=["access log"],
        response_model=Page[AuditEntryOut],
        openapi_extra=access(Permission.READ_ACCESS_LOG, "none"),
    )
    def query_access_log(
        principal: Caller,
        *,
        patient_id: UUID | None = None,
        actor_id: Annotated[str | None, Query(max_length=200), STORABLE] = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Any:
        """For administrators' log follow-up; nobody can change the log through the app."""
        with api.allowed(principal, Permission.READ_ACCESS_LOG) as conn:
            entries = access_log(
                conn,
                patient_id=patient_id,
                actor_id=actor_id,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )
        return page(
            [AuditEntryOut.model_validate(e, from_attributes=True) for e in entries],
            limit=limit,
            offset=offset,
        )

    @api.router.get(
        "/patients/{patient_id}/export",
        tags=["patient rights"],
        openapi_extra=access(Permission.EXPORT_PATIENT, "patient"),
    )
    def export_patient(principal: Caller, patient_id: UUID) -> dict[str, Any]:
        """All of one patient's data as JSON (the right of access, GDPR art. 15)."""
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.EXPORT_PATIENT,
            resource="patient-export",
            action=Action.EXPORT,
        ) as conn:
            return rights.export_patient(conn, patient_id=patient_id, now=api.clock.now())

    @api.router.post(
        "/patients/{patient_id}/erasure",
        tags=["patient rights"],
        response_model=ErasureOut,
        openapi_extra=access(Permission.ERASE_PATIENT, "patient"),
    )
    def erase_patient(principal: Caller, patient_id: UUID, body: ErasureIn) -> Any:
        """Erase or anonymise on request. The access log keeps its rows (by law it outlives
        the record); everything else about the person goes."""
        with api.patient_record(
            principal,
            patient_id,
            permission=Permission.ERASE_PATIENT,
            resource="patient",
            action=Action.ERASE,
        ) as conn:
            readings = rights.do_forget_patient(
                conn, patient_id=patient_id, anonymise=body.mode == "anonymise"
            )
        return ErasureOut(patient_id=patient_id, mode=body.mode, readings=readings)


def _emergency_routes(api: Guard, Caller: Any) -> None:
    """Emergency access ("break the glass") and its review."""

    @api.router.post(
        "/patients/{patient_id}/emergency-access",
        tags=["emergency access"],
        status_code=201,
        response_model=EmergencyAccessOut,
        openapi_extra=access(Permission.OPEN_EMERGENCY_ACCESS, "patient"),
    )
    def open_emergency_access(principal: Caller, patient_id: UUID, body: EmergencyAccessIn) -> Any:
        """Read a patient outside your care teams, now, for a few hours, with a reason: the
        patient sees it, a coordinator reviews it, and every read through it is logged as
        `emergency`. Changing the record still takes a care team."""
        now = api.clock.now()
        with api.allowed(principal, Permission.OPEN_EMERGENCY_ACCESS) as conn:
            opened = do_open_emergency_access(
                conn,
                principal=principal,
                patient_id=patient_id,
                reason=body.reason,
                interface=Interface.API,
                now=now,
            )
        return EmergencyAccessOut.model_validate(opened, from_attributes=True)

    @api.router.get(
        "/emergency-access",
        tags=["emergency access"],
        response_model=Page[EmergencyAccessOut],
        openapi_extra=access(Permission.REVIEW_EMERGENCY_ACCESS, "patients"),
    )
    def review_emergency_access(principal: Caller, limit: Limit = 50, offset: Offset = 0) -> Any:
        """Emergency accesses opened for, or to patients of, the organisations you work for,
        newest first, for follow-up; one log row names the patients listed."""
        now = api.clock.now()
        with api.allowed(principal, Permission.REVIEW_EMERGENCY_ACCESS) as conn:
            rows = emergency_accesses_to_review(
                conn, reviewer=principal.uuid, now=now, limit=limit, offset=offset
            )
            do_log_access(
                conn,
                principal=principal,
                patient_ids=sorted({r.patient_id for r in rows}),
                resource="emergency-access",
                action=Action.READ,
                interface=Interface.API,
                reason=Reason.ADMINISTRATION,
                now=now,
            )
        return page(
            [EmergencyAccessOut.model_validate(r, from_attributes=True) for r in rows],
            limit=limit,
            offset=offset,
        )


def _organisation(organisation: service.Organisation) -> OrganisationOut:
    return OrganisationOut.model_validate(organisation, from_attributes=True)


def _etag(version: int) -> str:
    return f'"v{version}"'


def _version_from_etag(if_match: str | None) -> int:
    if if_match is None:
        raise HTTPException(428, "send the care plan's ETag as If-Match")
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.startswith("v") or not value[1:].isdigit():
        raise HTTPException(412, "If-Match does not name a version of this care plan")
    return int(value[1:])


def _conflict(error: object) -> Exception:
    return HTTPException(409, str(error))
