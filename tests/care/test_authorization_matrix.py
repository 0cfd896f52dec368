"""The authorization matrix: every route in the OpenAPI document x every role x {own patient,
patient of another team, patient of another organisation}.

Routes come from the app's OpenAPI document, so a new route fails
`test_every_route_has_an_expectation` until someone states who may use it. Expected allows
must succeed (2xx); every other case must be refused (401, 403 or 404) and change nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.api import ACCESS_EXTENSION
from dashboard.pages.own import QUESTIONS
from fhir_facade.resources import ObservationKey, device_resource_id
from heimvakt.auth import SESSION_COOKIE
from tests.care.conftest import WorldClient, build_app, local_issuer
from tests.care.test_proxies import withdraw
from tests.care.world import (
    CONSENT_VARIANTS,
    MEASURED,
    RELATIVES,
    ROLES,
    SCENARIOS,
    SPARE_DEVICE,
    Scenario,
    World,
)
from tests.dashboard import BASE, show, step_request, text
from tests.dashboard.test_own_view import send_request
from tests.support import scalar

Expectation = Callable[[str, str], bool]
"""(role, scenario) -> allowed."""

TEAM_A = ("hospital_nurse", "municipal_nurse", "physician", "coordinator")
ALL_STAFF = (*TEAM_A, "administrator")
REFUSALS = {401, 403, 404}


def anywhere(*roles: str) -> Expectation:
    return lambda role, scenario: role in roles


def own(*roles: str) -> Expectation:
    return lambda role, scenario: role in roles and scenario == "own"


def either(*expectations: Expectation) -> Expectation:
    return lambda role, scenario: any(e(role, scenario) for e in expectations)


P = "/api/v1/patients/{patient_id}"
DEVICE_KEEPERS = ("administrator", "coordinator", "hospital_nurse", "municipal_nurse")
EXPECTED: dict[tuple[str, str], Expectation] = {
    ("GET", "/api/v1/me"): anywhere("patient", *ALL_STAFF),
    ("GET", "/api/v1/me/access-log"): anywhere("patient"),
    ("GET", "/api/v1/organisations"): anywhere(*ALL_STAFF),
    ("POST", "/api/v1/organisations"): anywhere("administrator"),
    ("GET", "/api/v1/organisations/{organisation_id}"): anywhere(*ALL_STAFF),
    ("GET", "/api/v1/staff"): anywhere("administrator", "coordinator"),
    ("POST", "/api/v1/staff"): anywhere("administrator"),
    ("GET", "/api/v1/staff/{staff_id}"): anywhere("administrator", "coordinator"),
    ("GET", "/api/v1/staff/{staff_id}/memberships"): anywhere("administrator", "coordinator"),
    ("POST", "/api/v1/staff/{staff_id}/employments"): anywhere("administrator"),
    ("DELETE", "/api/v1/staff/{staff_id}/employments/{membership_id}"): anywhere("administrator"),
    ("POST", "/api/v1/staff/{staff_id}/identities"): anywhere("administrator"),
    ("GET", "/api/v1/care-teams"): anywhere(*ALL_STAFF),
    ("POST", "/api/v1/care-teams"): anywhere("administrator", "coordinator"),
    ("GET", "/api/v1/care-teams/{team_id}"): anywhere(*ALL_STAFF),
    ("POST", "/api/v1/care-teams/{team_id}/members"): either(
        anywhere("administrator"), own("coordinator")
    ),
    ("DELETE", "/api/v1/care-teams/{team_id}/members/{membership_id}"): either(
        anywhere("administrator"), own("coordinator")
    ),
    ("GET", "/api/v1/patients"): anywhere("patient", *ALL_STAFF),
    ("POST", "/api/v1/patients"): own("coordinator"),
    ("GET", P): own("patient", *TEAM_A),
    ("PATCH", P): own("coordinator", "hospital_nurse", "municipal_nurse"),
    ("GET", f"{P}/care-teams"): own("patient", *TEAM_A),
    ("POST", f"{P}/care-teams"): own("coordinator"),
    ("DELETE", f"{P}/care-teams/{{team_id}}"): own("coordinator"),
    ("GET", f"{P}/readings"): own("patient", *TEAM_A),
    ("GET", f"{P}/quarantine"): own(*TEAM_A),
    ("POST", f"{P}/quarantine/{{entry_id}}/accept"): own(*TEAM_A),
    ("POST", f"{P}/quarantine/{{entry_id}}/reject"): own(*TEAM_A),
    ("GET", "/api/v1/care-plan-templates"): anywhere(*ALL_STAFF),
    ("GET", f"{P}/care-plan"): own("patient", *TEAM_A),
    ("POST", f"{P}/care-plan"): own("hospital_nurse", "municipal_nurse", "physician"),
    ("PATCH", f"{P}/care-plan"): own("hospital_nurse", "municipal_nurse", "physician"),
    ("GET", f"{P}/care-plan/versions"): own("patient", *TEAM_A),
    ("GET", f"{P}/responsibility"): own("patient", *TEAM_A),
    ("PUT", f"{P}/backup-unit"): own("coordinator"),
    ("PUT", f"{P}/national-id"): own("coordinator"),
    ("GET", f"{P}/handovers"): own("patient", *TEAM_A),
    # Only staff of the unit responsible now (the hospital) hand a patient over.
    ("POST", f"{P}/handovers"): own("hospital_nurse", "physician"),
    ("GET", "/api/v1/handovers"): anywhere(*TEAM_A),
    ("GET", "/api/v1/handovers/{handover_id}"): own(*TEAM_A),
    # Only staff of the receiving unit (the municipality) decide.
    ("POST", "/api/v1/handovers/{handover_id}/accept"): own("municipal_nurse", "coordinator"),
    ("POST", "/api/v1/handovers/{handover_id}/decline"): own("municipal_nurse", "coordinator"),
    ("POST", "/api/v1/handovers/{handover_id}/withdraw"): own("hospital_nurse", "physician"),
    ("GET", "/api/v1/access-log"): anywhere("administrator"),
    ("GET", f"{P}/export"): own("patient", "coordinator"),
    ("POST", f"{P}/erasure"): own("coordinator"),
    ("POST", "/api/v1/devices/{device_id}/readings"): own("device"),
    ("GET", "/api/v1/alerts"): anywhere("patient", *ALL_STAFF),
    ("GET", "/api/v1/alerts/{alert_id}"): own("patient", *TEAM_A),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): own(*TEAM_A),
    ("POST", "/api/v1/alerts/{alert_id}/assign"): own(*TEAM_A),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): own(*TEAM_A),
    ("POST", "/api/v1/alerts/{alert_id}/snooze"): own(*TEAM_A),
    ("POST", "/api/v1/alerts/{alert_id}/notes"): own(*TEAM_A),
    ("GET", f"{P}/triage"): own("patient", *TEAM_A),
    ("GET", "/api/v1/rules"): anywhere(*ALL_STAFF),
    # Administrators anywhere; a coordinator only for a unit she works for (M, not H).
    ("GET", "/api/v1/organisations/{organisation_id}/escalation-policy"): anywhere("administrator"),
    ("PUT", "/api/v1/organisations/{organisation_id}/escalation-policy"): anywhere("administrator"),
    ("GET", "/api/v1/me/notification-subscriptions"): anywhere(*ALL_STAFF),
    ("POST", "/api/v1/me/notification-subscriptions"): anywhere(*ALL_STAFF),
    ("DELETE", "/api/v1/me/notification-subscriptions/{subscription_id}"): own("hospital_nurse"),
    # A relative answers for the patient whose valid consent allows it, and no one else.
    ("POST", f"{P}/questionnaires"): own(
        "patient", "hospital_nurse", "municipal_nurse", "relative"
    ),
    # Relatives as proxies (care/proxies.py): the patient, or a nurse recording the patient's
    # consent, invites one and withdraws a consent; the care team reads them. A relative
    # manages none, their own consent included.
    ("GET", f"{P}/relatives"): own("patient", *TEAM_A),
    ("POST", f"{P}/relatives"): own("patient", "hospital_nurse", "municipal_nurse"),
    ("POST", f"{P}/relatives/{{consent_id}}/withdraw"): own(
        "patient", "hospital_nurse", "municipal_nurse"
    ),
    # Where a patient's reminders go: read as the record is, chosen by the patient alone.
    ("GET", f"{P}/reminder-channel"): own("patient", *TEAM_A),
    ("PUT", f"{P}/reminder-channel"): own("patient"),
    # Break the glass: any clinician, to any patient (logged, shown to the patient, reviewed).
    ("POST", f"{P}/emergency-access"): anywhere(*TEAM_A),
    ("GET", "/api/v1/emergency-access"): anywhere("coordinator"),
    # Figures and deviations: the coordinator's (care.access.Permission.READ_FIGURES).
    ("GET", "/api/v1/figures"): anywhere("coordinator"),
    ("GET", "/api/v1/figures/deviations"): anywhere("coordinator"),
    # FHIR: searches answer 200 with what the caller may see (tests/fhir checks the content);
    # reads of one patient's data, as the REST API's.
    ("GET", "/fhir/Patient"): anywhere("patient", *ALL_STAFF),
    ("GET", "/fhir/Patient/{patient_id}"): own("patient", *TEAM_A),
    ("GET", "/fhir/Patient/{patient_id}/$everything"): own("patient", *TEAM_A),
    ("GET", "/fhir/Observation"): anywhere("patient", *ALL_STAFF),
    ("GET", "/fhir/Observation/{observation_id}"): own("patient", *TEAM_A),
    ("GET", "/fhir/Device/{device_resource_id}"): own("patient", *TEAM_A),
    ("GET", "/fhir/Flag"): anywhere("patient", *ALL_STAFF),
    ("GET", "/fhir/Organization"): anywhere(*ALL_STAFF),
    ("GET", "/fhir/Organization/{organisation_id}"): anywhere(*ALL_STAFF),
    ("GET", "/fhir/Practitioner/{staff_id}"): anywhere("administrator", "coordinator"),
    ("GET", "/fhir/Flag/{alert_id}"): own("patient", *TEAM_A),
    # A gateway's Bundle: its token names the device, so no scenario reaches another's.
    ("POST", "/fhir"): anywhere("device"),
    # The device registry: administrators, coordinators and nurses (Permission.MANAGE_DEVICES);
    # handing a device to a patient, or taking it back, is work on the patient's record.
    ("GET", "/api/v1/devices"): anywhere(*DEVICE_KEEPERS),
    # A device's status is its patient's data: read as the patient's record is.
    ("GET", "/api/v1/devices/{device_id}/status"): own("patient", *TEAM_A),
    ("POST", "/api/v1/devices"): anywhere(*DEVICE_KEEPERS),
    ("POST", "/api/v1/devices/{device_id}/revoke"): anywhere(*DEVICE_KEEPERS),
    ("POST", "/api/v1/devices/{device_id}/broker-password"): anywhere(*DEVICE_KEEPERS),
    ("POST", f"{P}/devices"): own("coordinator", "hospital_nurse", "municipal_nurse"),
    ("DELETE", f"{P}/devices/{{device_id}}"): own(
        "coordinator", "hospital_nurse", "municipal_nurse"
    ),
}

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/auth/token"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/fhir/metadata"),
    # Log-in through HelseID and ID-porten: the client's public keys, the start of a log-in
    # and the issuer's answer (heimvakt/oidc_login.py); the answer opens a session only for
    # the person the issuer proved, and only through a log-in this browser started.
    ("GET", "/auth/oidc/jwks.json"),
    ("GET", "/auth/oidc/{issuer_name}/login"),
    ("GET", "/auth/oidc/{issuer_name}/callback"),
}
"""Routes that touch no one's data and are open to anyone."""

Body = Callable[[World, Scenario], Any]
BODIES: dict[tuple[str, str], Body] = {
    ("POST", "/api/v1/devices"): lambda w, s: {
        "id": f"ox-{uuid.uuid4().hex[:8]}",
        "kind": "pulse_oximeter",
        "measurements": ["spo2", "pulse"],
    },
    ("POST", f"{P}/devices"): lambda w, s: {"device_id": SPARE_DEVICE},
    ("POST", "/api/v1/organisations"): lambda w, s: {"name": "Legekontoret", "kind": "gp_office"},
    ("POST", "/api/v1/staff"): lambda w, s: {"display_name": "Ny Ansatt", "role": "nurse"},
    ("POST", "/api/v1/staff/{staff_id}/employments"): lambda w, s: {
        "organisation_id": str(w.organisations["X2"])
    },
    ("POST", "/api/v1/staff/{staff_id}/identities"): lambda w, s: {
        "issuer": "https://helseid-sts.test.nhn.no",
        "subject": str(uuid.uuid4()),
    },
    ("POST", "/api/v1/care-teams"): lambda w, s: {"name": "Nytt team"},
    ("POST", "/api/v1/care-teams/{team_id}/members"): lambda w, s: {
        "staff_id": str(w.staff["newcomer"])
    },
    ("POST", "/api/v1/patients"): lambda w, s: {
        "display_name": "Ny Pasient",
        "conditions": ["heart_failure"],
        "responsible_unit_id": str(s.organisation),
        "team_id": str(s.team),
    },
    ("PATCH", P): lambda w, s: {"phone": "+47 400 00 000"},
    ("POST", f"{P}/care-teams"): lambda w, s: {"team_id": str(w.teams["D"])},
    ("POST", f"{P}/care-plan"): lambda w, s: {"template": "copd"},
    ("PATCH", f"{P}/care-plan"): lambda w, s: {
        "reason": "Habitual SpO2 89-91 % when stable",
        "thresholds": [{"code": "59408-5", "low": 88, "red_low": 85}],
    },
    ("PUT", f"{P}/backup-unit"): lambda w, s: {"organisation_id": str(w.organisations["M"])},
    ("PUT", f"{P}/national-id"): lambda w, s: {"national_id": f"{uuid.uuid4().int % 10**11:011d}"},
    ("POST", f"{P}/handovers"): lambda w, s: {
        "to_organisation_id": str(w.organisations["M"]),
        "note": "Utskrevet; kommunen følger opp",
    },
    ("POST", "/api/v1/handovers/{handover_id}/accept"): lambda w, s: {},
    ("POST", "/api/v1/handovers/{handover_id}/decline"): lambda w, s: {"note": "Ikke kapasitet"},
    ("POST", f"{P}/erasure"): lambda w, s: {"mode": "erase", "reason": "Pasientens ønske"},
    ("POST", f"{P}/relatives"): lambda w, s: {
        "display_name": "Ny Pårørende",
        "valid_to": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
        "consent_note": "Samtykke gitt muntlig ved hjemmebesøk",
    },
    ("POST", f"{P}/quarantine/{{entry_id}}/accept"): lambda w, s: {"note": "Sen opplasting"},
    ("POST", f"{P}/quarantine/{{entry_id}}/reject"): lambda w, s: {"note": "Ny eier"},
    ("POST", f"{P}/emergency-access"): lambda w, s: {"reason": "Innlagt akutt, bevisstløs"},
    ("POST", "/api/v1/alerts/{alert_id}/assign"): lambda w, s: {
        "staff_id": str(w.staff["hospital_nurse"])
    },
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): lambda w, s: {
        "outcome": "contacted_patient",
        "note": "Ringt; bedre i dag",
    },
    ("POST", "/api/v1/alerts/{alert_id}/snooze"): lambda w, s: {
        "reason": "Kjent lav metning om morgenen",
        "minutes": 120,
    },
    ("POST", "/api/v1/alerts/{alert_id}/notes"): lambda w, s: {
        "note": "Ringt; måler igjen i kveld"
    },
    ("PUT", "/api/v1/organisations/{organisation_id}/escalation-policy"): lambda w, s: {
        "red_minutes": 10
    },
    ("POST", "/api/v1/me/notification-subscriptions"): lambda w, s: {
        "channel": "email",
        "address": "vakt@example.org",
    },
    ("PUT", f"{P}/reminder-channel"): lambda w, s: {
        "channel": "email",
        "address": "pasient@example.org",
    },
    ("POST", f"{P}/questionnaires"): lambda w, s: {
        "kind": "daily_symptoms",
        "answered_at": datetime.now(UTC).isoformat(),
        "more_breathless": False,
        "more_swelling": False,
        "more_cough": True,
    },
    ("POST", "/fhir"): lambda w, s: {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "59408-5"}]},
                    "effectiveDateTime": datetime.now(UTC).isoformat(),
                    "valueQuantity": {
                        "value": 95,
                        "system": "http://unitsofmeasure.org",
                        "code": "%",
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    },
    ("POST", "/api/v1/devices/{device_id}/readings"): lambda w, s: {
        "msg_id": str(uuid.uuid4()),
        "measured_at": datetime.now(UTC).isoformat(),
        "readings": [{"code": "spo2", "value": 95, "unit": "%"}],
    },
}
HEADERS: dict[tuple[str, str], dict[str, str]] = {("PATCH", f"{P}/care-plan"): {"If-Match": '"v1"'}}
PATIENT_FOR = {("POST", f"{P}/care-plan"): "own_no_plan"}
"""Routes whose own-scenario case needs another patient of team A (one without a plan)."""


def openapi() -> dict[str, Any]:
    """The app's OpenAPI document; building it needs no database."""
    pool = ConnectionPool("postgresql://unused", open=False)
    app = build_app(pool, local_issuer(pool)).app
    assert isinstance(app, FastAPI)
    return app.openapi()


def _operations() -> list[tuple[str, str]]:
    schema = openapi()
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


OPERATIONS = _operations()


def _scopes() -> dict[tuple[str, str], str]:
    """Each route's declared compartment (core.api.AccessRule)."""
    return {
        (method.upper(), path): operation[ACCESS_EXTENSION]["scope"]
        for path, item in openapi()["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and ACCESS_EXTENSION in operation
    }


SCOPES = _scopes()
PROTECTED = [operation for operation in OPERATIONS if operation not in PUBLIC]


ROUTE_CASES = [
    (role, scenario)
    for role in ROLES
    for scenario in SCENARIOS
    if role not in CONSENT_VARIANTS or scenario == "own"
]
"""The (role, scenario) pairs each route is sent: the relative with a valid consent about every
scenario (another team's or organisation's patient gave her none), the variants of her
consent (none, ended, withdrawn) about the own patient, whose consent it is."""
CASES = len(PROTECTED) * len(ROUTE_CASES)
"""Every (route, role, scenario) the matrix sends; docs/security.md states the number."""


def test_every_route_has_an_expectation() -> None:
    assert {op for op in OPERATIONS if op not in PUBLIC} == set(EXPECTED)


def test_the_security_document_states_the_case_count() -> None:
    security = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    stated = re.search(r"\*\*(\d[\d,]*) cases\*\*", security)
    assert stated is not None, "docs/security.md names the matrix's case count as **N cases**"
    counts = f"{len(PROTECTED)} routes x {len(ROUTE_CASES)} (role, scenario) pairs"
    assert int(stated.group(1).replace(",", "")) == CASES, f"the matrix has {CASES}: {counts}"


def _url(operation: tuple[str, str], world: World, scenario: str) -> str:
    ids = world.scenarios[scenario]
    patient = ids.patient
    if scenario == "own" and operation in PATIENT_FOR:
        patient = world.patients[PATIENT_FOR[operation]]
    membership = ids.team_membership if "care-teams" in operation[1] else ids.employment
    return operation[1].format(
        patient_id=patient,
        team_id=ids.team,
        handover_id=ids.handover,
        organisation_id=ids.organisation,
        staff_id=ids.staff,
        membership_id=membership,
        device_id=ids.device,
        alert_id=ids.alert,
        subscription_id=ids.subscription,
        entry_id=ids.quarantined,
        consent_id=ids.consent,
        observation_id=ObservationKey(device_resource_id(ids.device), "85354-9", MEASURED).id,
        device_resource_id=device_resource_id(ids.device),
    )


def _send(
    client: TestClient, operation: tuple[str, str], world: World, role: str, scenario: str
) -> httpx.Response:
    headers = dict(HEADERS.get(operation, {}))
    if role != "anonymous":
        headers["Authorization"] = f"Bearer {world.tokens[role]}"
    body = BODIES.get(operation)
    content = None
    if body is not None:
        content = json.dumps(body(world, world.scenarios[scenario])).encode()
        headers["Content-Type"] = "application/json"
    return client.request(
        operation[0], _url(operation, world, scenario), content=content, headers=headers
    )


def _fingerprint(conn: psycopg.Connection) -> dict[str, str]:
    """Every table's content, hashed: a refused request must leave all of them as they were."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
    ]
    return {
        table: scalar(
            conn,
            "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
            f' FROM "{table}" t',
        )
        for table in tables
    }


@pytest.mark.parametrize("operation", PROTECTED, ids=lambda op: f"{op[0]} {op[1]}")
def test_only_the_expected_roles_reach_the_route(
    operation: tuple[str, str], world: World, world_client: WorldClient
) -> None:
    expected = EXPECTED[operation]
    refused = [case for case in ROUTE_CASES if not expected(*case)]
    allowed = [case for case in ROUTE_CASES if expected(*case)]
    leaks, denials = [], []

    def check_allowed(client: TestClient, role: str, scenario: str) -> None:
        response = _send(client, operation, world, role, scenario)
        if not 200 <= response.status_code < 300:
            denials.append((role, scenario, response.status_code, response.text[:300]))

    with world_client() as (client, conn):
        before = _fingerprint(conn)
        for role, scenario in refused:
            response = _send(client, operation, world, role, scenario)
            if response.status_code not in REFUSALS:
                leaks.append((role, scenario, response.status_code, response.text[:200]))
        assert _fingerprint(conn) == before, "a refused request changed data"
        if operation[0] == "GET":
            for role, scenario in allowed:
                check_allowed(client, role, scenario)
    if operation[0] != "GET":
        # A change in a fresh world each; where the route touches no compartment, or only
        # the caller's own, the scenarios cannot differ, and one of them stands for all.
        alike = SCOPES.get(operation) in {"none", "self"}
        changes = [c for c in allowed if not alike or c[1] == "own"]
        for role, scenario in changes:
            with world_client() as (client, _conn):
                check_allowed(client, role, scenario)
    assert not leaks, f"refused cases that got through: {leaks}"
    assert not denials, f"allowed cases that failed: {denials}"


def test_relatives_reach_through_the_dashboards_callbacks_only_what_their_consent_opens(
    world: World, world_client: WorldClient
) -> None:
    """The four relatives over the dashboard's callbacks, for each scenario's patient: the
    page router (the patient's page, their care plan, the figures, the device registry), the
    questionnaire, the withdraw button and an alert's step. Only the relative with a valid
    consent reaches the own patient's page and questionnaire; every other case shows nothing
    of the patient and changes nothing."""
    answers: dict[str, str | None] = dict.fromkeys(QUESTIONS["daily_symptoms"], "no")
    leaks = []
    steps: dict[int, dict] = {}

    def visit(client: TestClient, relative: str, scenario: str) -> None:
        ids = world.scenarios[scenario]
        name = f"Pasient {scenario}"
        client.cookies.set(SESSION_COOKIE, world.tokens[relative])
        allowed = relative == "relative" and scenario == "own"
        patient_page = f"{BASE}patients/{ids.patient}"
        # The figures and the registry name no one patient: asked once per relative.
        others = (f"{BASE}figures", f"{BASE}devices") if scenario == "own" else ()
        for path in (patient_page, f"{patient_page}/care-plan", *others):
            shown = text(show(client, path, "?lang=en"))
            if (name in shown) != (allowed and path == patient_page):
                leaks.append((relative, scenario, path))
        response = client.post(
            f"{BASE}_dash-update-component",
            json=send_request("daily_symptoms", answers, pathname=patient_page),
        )
        if ("Thank you" in response.text) != allowed:
            leaks.append((relative, scenario, "questionnaire"))
        withdrawn = withdraw(client, str(ids.consent))["action-status"]["children"]
        if text(withdrawn) != "The consent could not be withdrawn. Try again.":
            leaks.append((relative, scenario, "withdraw"))
        if ids.alert not in steps:  # the request, built once: the callbacks are the app's
            steps[ids.alert] = step_request(
                client, "acknowledge", ids.alert, pathname=patient_page, search="?lang=en"
            )
        step = client.post(f"{BASE}_dash-update-component", json=steps[ids.alert]).json()
        if "You may not act on this alert." not in text(
            step["response"]["action-status"]["children"]
        ):
            leaks.append((relative, scenario, "acknowledge"))

    with world_client() as (client, conn):
        before = _fingerprint(conn)
        for relative, scenario in ROUTE_CASES:
            if relative in RELATIVES and (relative, scenario) != ("relative", "own"):
                visit(client, relative, scenario)
        assert _fingerprint(conn) == before, "a refused callback changed data"
        visit(client, "relative", "own")
    assert not leaks, f"dashboard callbacks that did not hold: {leaks}"
