"""The dashboard goes through the same access check and access log as the API."""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.auth import ANONYMOUS, Principal
from tests.dashboard import BASE, NOW, dashboard_client, seed_patient, show, text


def _log(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT resource, interface, patient_ids FROM access_log ORDER BY id"
    ).fetchall()


def test_an_anonymous_visitor_gets_the_log_in_form_and_no_data(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool, principal=ANONYMOUS)
    page = show(client, BASE)
    assert "Kari Nordmann" not in text(page)
    assert "Logg inn" in text(page)
    assert _log(conn) == []


def test_a_nurse_sees_only_the_patients_of_her_care_teams_and_each_view_is_logged_once(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    elsewhere = do_create_organisation(
        conn, name="Annen kommune", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    stranger = do_create_patient(
        conn,
        display_name="Ukjent Person",
        conditions=[Condition.COPD],
        responsible_unit=elsewhere,
        since=NOW,
    )
    client, _ = dashboard_client(pool)
    worklist = text(show(client, BASE))
    assert "Kari Nordmann" in worklist
    assert "Ukjent Person" not in worklist
    assert "Fant ikke pasienten" in text(show(client, f"{BASE}patients/{stranger}"))
    show(client, f"{BASE}patients/{kari.patient_id}")
    show(client, f"{BASE}patients/{kari.patient_id}", trigger="refresh.n_intervals")
    assert _log(conn) == [
        ("worklist", "dashboard", [kari.patient_id]),
        ("patient-page", "dashboard", [kari.patient_id]),
    ]


def test_a_patient_sees_their_own_page_and_who_has_looked_at_it(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    other = seed_patient(conn, name="Ola Nordmann")
    nurse_client, _ = dashboard_client(pool)
    show(nurse_client, f"{BASE}patients/{kari.patient_id}")
    kari_principal = Principal(
        kind="patient", id=str(kari.patient_id), name="Kari Nordmann", role="patient"
    )
    client, _ = dashboard_client(pool, principal=kari_principal)
    own = text(show(client, BASE))
    assert "Kari Nordmann" in own
    assert "Hvem har sett opplysningene mine" in own
    assert "Test Sykepleier" in own
    assert "Medlem av behandlingsteamet ditt" in own
    assert "Fant ikke pasienten" in text(show(client, f"{BASE}patients/{other.patient_id}"))
