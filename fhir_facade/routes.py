"""The FHIR R4 REST interface under /fhir: read and search, ``$everything``, the
CapabilityStatement, and a gateway's transaction or batch Bundle of Observations.

Every interaction goes through the same check and access log as the REST API (care.guard's
dependencies, care.access), with interface ``fhir``: one log row per request, naming the
patients whose data the answer holds, included resources and paging links alike. Every error
is an OperationOutcome (`FhirRoute`), the access check's refusals included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Final, Protocol, TypeVar
from urllib.parse import urlencode
from uuid import UUID

import psycopg
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from alerts.queries import find_alert, find_alerts
from care import people, service
from care.access import (
    Action,
    ForbiddenError,
    Interface,
    NotAuthenticatedError,
    NotVisibleError,
    Permission,
    Reason,
    do_access_patient,
    visible_patients_filter,
)
from care.guard import Caller, Checked, GuardedRoute, PatientRecord, allowed, patient_record
from care.national_ids import bound_national_ids
from core.api import access, api_context
from core.auth import Principal
from fhir_facade import capability, queries, resources, scopes, search, transaction
from fhir_facade.resources import FHIR_JSON
from fhir_facade.search import SearchError
from ingest.decoding import Envelope, MalformedJsonError, load_json

log = logging.getLogger(__name__)

FHIR_PATH: Final = "/fhir"
_CHALLENGE: Final = 'Bearer realm="heimvakt"'
_TAGS: Final[list[str | Enum]] = ["fhir"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def _outcome(status: int, code: str, detail: str, **headers: str) -> FhirResponse:
    return FhirResponse(resources.outcome(code, detail), status_code=status, headers=headers)


_REFUSALS: Final[dict[type[Exception], tuple[int, str, str]]] = {
    NotAuthenticatedError: (401, "login", "a valid bearer token is required"),
    ForbiddenError: (403, "forbidden", "your role may not do this"),
    NotVisibleError: (404, "not-found", "not found, or not in your care"),
}
"""The access check's refusals, as the REST API answers them (care/routes/problems.py)."""


class ScopeError(ForbiddenError):
    """The token's SMART scopes do not cover the interaction (fhir_facade/scopes.py)."""


def _require(principal: Principal, resource_type: str, interaction: scopes.Interaction) -> None:
    if not scopes.permits(principal, resource_type, interaction):
        verb = "read" if interaction == "r" else "search"
        raise ScopeError(f"the token's SMART scopes do not allow to {verb} {resource_type}")


def _refusal(error: Exception) -> FhirResponse | None:
    """The OperationOutcome for an exception a request may end in, or None for a bug."""
    if isinstance(error, ScopeError):
        return _outcome(403, "forbidden", str(error))
    for kind, (status, code, detail) in _REFUSALS.items():
        if isinstance(error, kind):
            challenge = {"WWW-Authenticate": _CHALLENGE} if status == 401 else {}
            return _outcome(status, code, detail, **challenge)
    if isinstance(error, SearchError):
        return _outcome(400, error.code, str(error))
    if isinstance(error, RequestValidationError):
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _outcome(400, "invalid", detail)
    if isinstance(error, HTTPException):
        return _outcome(error.status_code, "processing", str(error.detail))
    return None


class FhirRoute(GuardedRoute):
    """A guarded route (caller first, declared access rule) whose every error, the access
    check's included, is answered as an OperationOutcome rather than problem+json."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def fhir_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                answer = _refusal(error)
                if answer is not None:
                    return answer
                log.error(
                    "unhandled error on %s %s", request.method, request.url.path, exc_info=error
                )
                return _outcome(
                    500, "exception", "an unexpected error occurred; it has been logged"
                )

        return fhir_handler


_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {
        "description": description,
        "content": {FHIR_JSON: {"schema": {"type": "object", "title": "OperationOutcome"}}},
    }
    for status, description in (
        (400, "An unsupported or invalid search parameter (OperationOutcome)"),
        (401, "No valid bearer token (OperationOutcome)"),
        (403, "Your role may not do this (OperationOutcome)"),
        (404, "Not found, or not in your care (OperationOutcome)"),
    )
}

router = APIRouter(
    prefix=FHIR_PATH,
    tags=_TAGS,
    route_class=FhirRoute,
    responses=_RESPONSES,
    default_response_class=FhirResponse,
)
public_router = APIRouter(prefix=FHIR_PATH, tags=_TAGS, default_response_class=FhirResponse)
"""The CapabilityStatement: open to anyone, as FHIR clients read it before they log in."""


def bind_fhir(
    app: FastAPI,
    *,
    public_url: str,
    ingest: transaction.FhirIngest,
) -> None:
    """Absolute links (Bundle.link, entry.fullUrl) are built from the configured public
    address, never from the request's Host header; Bundles posted by gateways go through
    `ingest`. Patients' national ids are opened with the keys `bind_national_ids` bound (the
    one interface that shows them, for matching records with other systems)."""
    app.state.fhir_base = public_url.rstrip("/") + FHIR_PATH
    app.state.fhir_ingest = ingest


def _base(request: Request) -> str:
    base = request.app.state.fhir_base
    assert isinstance(base, str), "the app factory binds the FHIR base"
    return base


def _fhir(resource: dict[str, Any]) -> FhirResponse:
    return FhirResponse(resource)


def _params(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _reason(checked: Checked) -> Reason:
    return Reason.OWN_DATA if checked.principal.kind == "patient" else Reason.CARE_TEAM


def _visible(checked: Checked) -> queries.Visible:
    return visible_patients_filter(checked.principal, now=checked.now)


def _link(request: Request, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{_base(request)}{request.url.path.removeprefix(FHIR_PATH)}" + (
        f"?{query}" if query else ""
    )


@public_router.get("/metadata", summary="The CapabilityStatement: what this server supports")
def metadata(request: Request) -> FhirResponse:
    return _fhir(capability.statement(_base(request)))


SearchPatients = Annotated[
    Checked, allowed(Permission.READ_PATIENT, "patients", interface=Interface.FHIR)
]
ReadPatient = Annotated[
    PatientRecord,
    patient_record(Permission.READ_PATIENT, resource="fhir:Patient", interface=Interface.FHIR),
]
PatientEverything = Annotated[
    PatientRecord,
    patient_record(
        Permission.READ_PATIENT, resource="fhir:Patient/$everything", interface=Interface.FHIR
    ),
]


@router.get("/Patient", summary="Search Patients in your care")
def search_patients(request: Request, checked: SearchPatients) -> FhirResponse:
    """Parameters: ``_id``, ``identifier`` (national identity number), ``_count``, and the
    ``_cursor`` of a ``next`` link."""
    _require(checked.principal, "Patient", "s")
    params = _params(request)
    search.only(params, capability.PATIENT_PARAMETERS)
    limit = search.count(params)
    ids = [
        search.patient_reference(v) for v in (search.single(params, "_id") or "").split(",") if v
    ]
    identifier = search.single(params, "identifier")
    national_id = None
    if identifier is not None:
        system, _, national_id = identifier.rpartition("|")
        if system not in ("", resources.NATIONAL_ID_SYSTEM):
            raise SearchError("not-supported", f"identifier system {system!r} is not searchable")
    after = search.single(params, "_cursor")
    rows = queries.patients(
        checked.conn,
        visible=_visible(checked),
        now=checked.now,
        national_ids=bound_national_ids(request),
        ids=ids or None,
        national_id=national_id,
        after=None if after is None else search.patient_reference(after),
        limit=limit + 1,
    )
    more, rows = len(rows) > limit, rows[:limit]
    checked.log_patients([r.id for r in rows], resource="fhir:Patient", reason=_reason(checked))
    next_url = _next_link(request, params, str(rows[-1].id)) if more else None
    return _fhir(
        resources.searchset(
            _base(request),
            [resources.patient(r) for r in rows],
            self_url=_link(request, params),
            next_url=next_url,
        )
    )


def _next_link(request: Request, params: list[tuple[str, str]], cursor: str) -> str:
    return _link(request, [*[p for p in params if p[0] != "_cursor"], ("_cursor", cursor)])


@router.get("/Patient/{patient_id}", summary="Read a Patient")
def read_patient(request: Request, record: ReadPatient) -> FhirResponse:
    _require(record.principal, "Patient", "r")
    visible = ("p.id = %(one)s", {"one": record.patient_id})
    [row] = queries.patients(
        record.conn, visible=visible, now=record.now, national_ids=bound_national_ids(request)
    )
    return _fhir(resources.patient(row))


@router.get("/Observation", summary="Search Observations")
def search_observations(request: Request, checked: SearchPatients) -> FhirResponse:
    """Parameters: ``patient`` (or ``subject``), ``code``, ``category``, ``date`` and
    ``_lastUpdated`` with ge, gt, le or lt, ``_sort`` (``date`` or ``-date``, the default),
    ``_count``, ``_include=Observation:device``, and the ``_cursor`` of a ``next`` link.
    Devices are included when the token may read them."""
    _require(checked.principal, "Observation", "s")
    params = _params(request)
    search.only(params, capability.OBSERVATION_PARAMETERS)
    subject = [v for n, v in params if n in ("patient", "subject")]
    if len(subject) > 1:
        raise SearchError("invalid", "give patient (or subject) once")
    includes = [v for n, v in params if n == "_include"]
    if any(v != "Observation:device" for v in includes):
        raise SearchError("not-supported", "_include may only be Observation:device")
    sort = search.single(params, "_sort") or "-date"
    if sort not in ("date", "-date"):
        raise SearchError("not-supported", "_sort may be date or -date")
    visible = _visible(checked)
    page = _observations(
        request,
        checked,
        params,
        visible,
        patient_id=search.patient_reference(subject[0]) if subject else None,
        codes=search.codes(
            [v for n, v in params if n == "code"], [v for n, v in params if n == "category"]
        ),
        measured=search.date_bounds([v for n, v in params if n == "date"], "date"),
        received=search.date_bounds([v for n, v in params if n == "_lastUpdated"], "_lastUpdated"),
        newest_first=sort == "-date",
    )
    patients = {r.patient_id for r in page.rows}
    included = []
    if includes and page.rows and scopes.permits(checked.principal, "Device", "r"):
        for device, _seen in queries.devices(
            checked.conn,
            visible=visible,
            now=checked.now,
            device_ids=sorted({r.device_id for r in page.rows}),
        ):
            included.append(resources.device(device))
            if device.patient_id is not None:
                patients.add(device.patient_id)
    checked.log_patients(sorted(patients), resource="fhir:Observation", reason=_reason(checked))
    return _fhir(
        resources.searchset(
            _base(request),
            [resources.observation(r) for r in page.rows],
            included,
            self_url=_link(request, params),
            next_url=page.next_url,
        )
    )


@dataclass(frozen=True, slots=True)
class _Page:
    rows: list[resources.ObservationRow]
    next_url: str | None


def _observations(
    request: Request,
    checked: Checked,
    params: list[tuple[str, str]],
    visible: queries.Visible,
    *,
    patient_id: UUID | None,
    codes: frozenset[str] | None = None,
    measured: list[tuple[str, datetime]] | None = None,
    received: list[tuple[str, datetime]] | None = None,
    newest_first: bool = True,
) -> _Page:
    """One page of Observations by keyset, within the snapshot the first page took."""
    limit = search.count(params)
    position = search.cursor(search.single(params, "_cursor"))
    received_by = checked.now if position is None else position.received_by
    rows = queries.observations(
        checked.conn,
        visible=visible,
        search=queries.ObservationFilter(
            patient_id=patient_id,
            codes=codes,
            measured=measured or [],
            received=received or [],
            received_by=received_by,
        ),
        newest_first=newest_first,
        after=None if position is None else position.after,
        limit=limit + 1,
    )
    if len(rows) <= limit:
        return _Page(rows, None)
    last = rows[limit - 1]
    cursor = search.Cursor(
        received_by, queries.Position(last.measured_at, last.device_id, last.code)
    )
    return _Page(rows[:limit], _next_link(request, params, cursor.encode()))


@router.get(
    "/Observation/{observation_id}",
    summary="Read an Observation",
    openapi_extra=access(Permission.READ_PATIENT, "patient"),
)
def read_observation(request: Request, observation_id: str, principal: Caller) -> FhirResponse:
    key = resources.parse_observation_id(observation_id)
    return _read_of_patient(
        request,
        principal,
        "Observation",
        find=lambda conn: None if key is None else queries.observation(conn, key=key),
        build=resources.observation,
    )


class _OfPatient(Protocol):
    @property
    def patient_id(self) -> UUID: ...


_Found = TypeVar("_Found", bound=_OfPatient)


def _read_of_patient(
    request: Request,
    principal: Principal,
    resource_type: str,
    *,
    find: Callable[[psycopg.Connection], _Found | None],
    build: Callable[[_Found], dict[str, Any]],
) -> FhirResponse:
    """One resource of a patient's record, by id: found, then checked and logged as a read of
    that patient's data; NotVisibleError (404) if it does not exist or is not yours to see."""
    _require(principal, resource_type, "r")
    context = api_context(request)
    with context.pool.connection() as conn:
        found = find(conn)
        if found is None:
            raise NotVisibleError
        do_access_patient(
            conn,
            principal=principal,
            permission=Permission.READ_PATIENT,
            patient_id=found.patient_id,
            resource=f"fhir:{resource_type}",
            action=Action.READ,
            interface=Interface.FHIR,
            now=context.clock.now(),
        )
        return _fhir(build(found))


@router.get("/Device/{device_resource_id}", summary="Read a Device")
def read_device(device_resource_id: str, checked: SearchPatients) -> FhirResponse:
    """A device ever assigned to a patient in your care; its current patient is shown only
    when that patient is in your care too."""
    _require(checked.principal, "Device", "r")
    found = queries.devices(
        checked.conn,
        visible=_visible(checked),
        now=checked.now,
        device_hash=device_resource_id.lower(),
    )
    if not found:
        raise NotVisibleError
    [(device, seen)] = found
    checked.log_patients(sorted(set(seen)), resource="fhir:Device", reason=_reason(checked))
    return _fhir(resources.device(device))


ReadDirectory = Annotated[Checked, allowed(Permission.READ_DIRECTORY, interface=Interface.FHIR)]
ReadStaff = Annotated[Checked, allowed(Permission.READ_STAFF, interface=Interface.FHIR)]


@router.get("/Organization", summary="Search the units (the directory)")
def search_organizations(request: Request, checked: ReadDirectory) -> FhirResponse:
    """No parameters: every unit, on one page (a health community has a few dozen)."""
    _require(checked.principal, "Organization", "s")
    params = _params(request)
    search.only(params, ())
    units = service.list_organisations(checked.conn)
    return _fhir(
        resources.searchset(
            _base(request),
            [resources.organization(u) for u in units],
            self_url=_link(request, params),
            next_url=None,
        )
    )


@router.get("/Organization/{organisation_id}", summary="Read a unit")
def read_organization(organisation_id: UUID, checked: ReadDirectory) -> FhirResponse:
    _require(checked.principal, "Organization", "r")
    unit = service.get_organisation(checked.conn, organisation_id=organisation_id)
    if unit is None:
        raise NotVisibleError
    return _fhir(resources.organization(unit))


@router.get("/Practitioner/{staff_id}", summary="Read a staff member")
def read_practitioner(staff_id: UUID, checked: ReadStaff) -> FhirResponse:
    """For administrators and coordinators, as the staff list of the REST API."""
    _require(checked.principal, "Practitioner", "r")
    person = people.get_staff(checked.conn, staff_id=staff_id)
    if person is None:
        raise NotVisibleError
    return _fhir(resources.practitioner(person))


@router.get("/Flag", summary="Search the open alerts, as Flags")
def search_flags(request: Request, checked: SearchPatients) -> FhirResponse:
    """Parameters: ``patient`` (or ``subject``). Every active Flag matching is on the one page:
    a patient's unresolved alerts are few."""
    _require(checked.principal, "Flag", "s")
    params = _params(request)
    search.only(params, capability.FLAG_PARAMETERS)
    subject = [v for n, v in params if n in ("patient", "subject")]
    if len(subject) > 1:
        raise SearchError("invalid", "give patient (or subject) once")
    alerts = find_alerts(
        checked.conn,
        visible=_visible(checked),
        patient_ids=[search.patient_reference(subject[0])] if subject else None,
    )
    checked.log_patients(
        sorted({a.patient_id for a in alerts}), resource="fhir:Flag", reason=_reason(checked)
    )
    return _fhir(
        resources.searchset(
            _base(request),
            [resources.flag(a) for a in alerts],
            self_url=_link(request, params),
            next_url=None,
        )
    )


@router.get(
    "/Flag/{alert_id}",
    summary="Read an alert as a Flag",
    openapi_extra=access(Permission.READ_PATIENT, "alert"),
)
def read_flag(request: Request, alert_id: int, principal: Caller) -> FhirResponse:
    return _read_of_patient(
        request,
        principal,
        "Flag",
        find=lambda conn: find_alert(conn, alert_id=alert_id),
        build=resources.flag,
    )


@router.get("/Patient/{patient_id}/$everything", summary="Everything about a patient, paged")
def everything(request: Request, record: PatientEverything) -> FhirResponse:
    """The Patient, their open alerts as Flags and the Devices assigned to them on the first
    page, then every Observation (newest first), paged by ``_count`` through ``next`` links.
    The guard has checked the patient and logged the request; every read below stays within
    that one patient. A token's SMART scopes leave out the types it may not read."""
    principal = record.principal
    _require(principal, "Patient", "r")
    params = _params(request)
    search.only(params, ("_count", "_cursor"))
    only_this = ("p.id = %(one)s", {"one": record.patient_id})
    first: list[dict[str, Any]] = []
    if search.single(params, "_cursor") is None:
        first = [
            resources.patient(p)
            for p in queries.patients(
                record.conn,
                visible=only_this,
                now=record.now,
                national_ids=bound_national_ids(request),
            )
        ]
        if scopes.permits(principal, "Flag", "r"):
            alerts = find_alerts(record.conn, patient_ids=[record.patient_id])
            first += [resources.flag(a) for a in alerts]
        if scopes.permits(principal, "Device", "r"):
            first += [
                resources.device(d)
                for d, _seen in queries.devices(
                    record.conn, visible=only_this, now=record.now, patient_id=record.patient_id
                )
            ]
    page = _Page([], None)
    if scopes.permits(principal, "Observation", "r"):
        page = _observations(request, record, params, only_this, patient_id=record.patient_id)
    return _fhir(
        resources.searchset(
            _base(request),
            [*first, *(resources.observation(r) for r in page.rows)],
            self_url=_link(request, params),
            next_url=page.next_url,
        )
    )


_BUNDLE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {
        "description": description,
        "content": {FHIR_JSON: {"schema": {"type": "object", "title": "OperationOutcome"}}},
    }
    for status, description in (
        (413, "The Bundle is larger than the ingest's limit"),
        (415, "The body is not FHIR JSON"),
        (422, "Nothing stored: the Bundle's readings were refused (and quarantined)"),
        (503, "The database is unavailable; send the Bundle again later"),
    )
}


@router.post(
    "",
    summary="A gateway's transaction or batch Bundle of Observations",
    responses=_BUNDLE_RESPONSES,
    openapi_extra={
        # A device writes its own readings only: the token names the device (ingest/http.py).
        **access("device:ingest", "none"),
        "requestBody": {
            "required": True,
            "content": {FHIR_JSON: {"schema": {"type": "object", "title": "Bundle"}}},
        },
    },
)
async def post_bundle(request: Request, principal: Caller) -> FhirResponse:
    """Observations from the gateway whose device token is sent, through the ingest's
    pipeline (validation, quarantine, dedupe, the rules); answered per entry."""
    if principal.kind != "device":
        raise ForbiddenError
    ingest = request.app.state.fhir_ingest
    assert isinstance(ingest, transaction.FhirIngest), "the app factory binds the FHIR ingest"
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media not in ("application/fhir+json", "application/json"):
        return _outcome(415, "not-supported", "send the Bundle as application/fhir+json")
    body = await request.body()
    if len(body) > ingest.limits.max_payload_bytes:
        limit = ingest.limits.max_payload_bytes
        return _outcome(413, "too-costly", f"the Bundle is larger than {limit} bytes")
    try:
        parsed = load_json(body)
    except MalformedJsonError as error:
        raise SearchError("invalid", str(error)) from None
    kind, found = transaction.entries(parsed)
    context = api_context(request)
    limits = ingest.limits
    envelope = Envelope(
        channel=transaction.CHANNEL,
        topic=None,
        device_id=principal.id,
        received_at=context.clock.now(),
        max_future=limits.max_future,
        max_age=limits.max_age,
        max_readings=limits.max_readings,
    )

    def work() -> tuple[int, dict[str, Any]]:
        with context.pool.connection() as conn:
            return transaction.process(
                conn, ingest, kind=kind, found=found, body=body, envelope=envelope
            )

    try:
        status, answer = await run_in_threadpool(work)
    except psycopg.OperationalError as error:
        log.warning("FHIR Bundle: database unavailable (%s)", error)
        return _outcome(
            503,
            "transient",
            "the database is unavailable; send the Bundle again later",
            **{"Retry-After": "5"},
        )
    return FhirResponse(answer, status_code=status)
