"""Who may see what on the dashboard: the log-in, the one access check and the access log the
API goes through too, and names shown as text whoever typed them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from care.access import Interface
from care.emergency import do_open_emergency_access
from care.models import Condition, OrganisationKind
from care.people import (
    do_add_team_member,
    do_add_team_patient,
    do_create_care_team,
    do_link_identity,
    principal_for,
)
from care.service import do_create_organisation, do_create_patient
from core.local_accounts import do_create_local_account
from dashboard.data.viewing import LOG_COVERS
from heimvakt.auth import SESSION_COOKIE
from tests.care.conftest import LOCAL_ISSUER, build_app, local_issuer
from tests.dashboard import (
    BASE,
    ISSUER,
    NOW,
    NURSE,
    components,
    dashboard_client,
    employed_staff,
    of_class,
    routing_request,
    seed_patient,
    show,
    store_reading,
    take_step,
    team_nurse,
    text,
    texts,
)
from tests.support import scalar

SINCE = datetime(2024, 1, 1, tzinfo=UTC)
XSS = "<img src=x onerror=alert(1)>"


def access_rows(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT resource, interface, action, reason_code, actor_name, patient_ids"
        " FROM access_log ORDER BY id"
    ).fetchall()


def other_team_nurse(conn: psycopg.Connection, name: str = "Annen Sykepleier") -> UUID:
    """A nurse in a care team that follows none of the seeded patients."""
    nurse = employed_staff(conn, name=name, organisation=f"Enheten til {name}")
    team = do_create_care_team(conn, name=f"Team til {name}").id
    do_add_team_member(conn, team_id=team, staff_id=nurse, since=SINCE)
    return nurse


def stranger(conn: psycopg.Connection) -> UUID:
    """A patient no care team of the test nurse follows."""
    elsewhere = do_create_organisation(
        conn, name="Annen kommune", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    return do_create_patient(
        conn,
        display_name="Ukjent Person",
        conditions=[Condition.COPD],
        responsible_unit=elsewhere,
        since=SINCE,
    )


def refresh(client: Any, pathname: str, search: str = "") -> dict:
    return show(client, pathname, search, trigger="refresh.n_intervals")


# --- log-in ------------------------------------------------------------------------------------


def test_an_anonymous_visitor_gets_the_log_in_form_and_no_data(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool, anonymous=True)

    for path in (BASE, f"{BASE}patients/{kari.patient_id}", f"{BASE}login"):
        page = show(client, path)
        assert "Kari Nordmann" not in text(page)
        assert "Lungeavdelingen" not in text(page)
        [form] = [c for c in components(page) if c["type"] == "Form"]
        assert form["props"]["action"] == "/auth/login"  # no language chosen here
        assert form["props"]["method"] == "POST"
        fields = {
            c["props"]["name"]: c["props"]["type"] for c in components(form) if "name" in c["props"]
        }
        assert fields == {"username": "text", "password": "password"}
        assert "Logg inn" in texts(form)
        assert of_class(page, "user") == []
    assert access_rows(conn) == []


def test_after_a_refused_log_in_the_form_says_so_in_the_chosen_language(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool, anonymous=True)

    assert "Feil brukernavn eller passord" in text(show(client, f"{BASE}login", "?failed=1"))
    assert "Wrong user name or password" in text(show(client, f"{BASE}login", "?lang=en&failed=1"))
    assert "Feil brukernavn eller passord" not in text(show(client, f"{BASE}login"))
    assert "Feil brukernavn eller passord" not in text(show(client, f"{BASE}login", "?failed=10"))


@pytest.mark.parametrize(
    "token", ["not-a-token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "x" * 9000]
)
def test_a_token_that_does_not_hold_is_nobody(
    pool: ConnectionPool, conn: psycopg.Connection, token: str
) -> None:
    seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool, anonymous=True)
    client.cookies.set(SESSION_COOKIE, token)

    page = show(client, BASE)

    assert "Kari Nordmann" not in text(page)
    assert "Økten din er avsluttet. Logg inn på nytt." in text(page)
    assert access_rows(conn) == []


def test_when_the_session_has_expired_the_next_refresh_shows_the_log_in_form(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    seed_patient(conn, name="Kari Nordmann")
    client, clock = dashboard_client(pool)
    assert "Kari Nordmann" in text(show(client, BASE))

    clock.advance(timedelta(hours=9))
    page = refresh(client, BASE)

    assert "Kari Nordmann" not in text(page)
    assert "Logg inn" in text(page)


def test_the_header_names_who_is_logged_in_and_as_what_with_a_log_out_button(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool)

    page = show(client, BASE)

    [user] = of_class(page, "user")
    assert texts(user) == [NURSE, "Sykepleier"]
    [logout] = [c for c in components(page) if c["type"] == "Form"]
    assert logout["props"]["action"] == "/auth/logout"
    assert logout["props"]["method"] == "POST"
    assert texts(logout) == ["Logg ut"]
    assert texts(of_class(show(client, BASE, "?lang=en"), "user")) == [NURSE, "Nurse"]


def test_the_log_in_form_sets_the_session_the_dashboard_reads_and_log_out_ends_it(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    """End to end through the app: the form's POST, the cookie, the dashboard's callback."""
    seed_patient(conn, name="Kari Nordmann")
    subject = do_create_local_account(conn, username="dash-nurse", password="a long password")
    do_link_identity(conn, issuer=LOCAL_ISSUER, subject=str(subject), staff_id=team_nurse(pool))
    local_issuer(pool).ensure_signing_key()

    with build_app(pool, local_issuer(pool)) as client:
        refused = client.post(
            "/auth/login",
            data={"username": "dash-nurse", "password": "wrong password"},
            follow_redirects=False,
        )
        assert refused.status_code == 303
        assert refused.headers["location"] == f"{BASE}login?failed=1"
        assert "Kari Nordmann" not in text(show(client, BASE))

        login = client.post(
            "/auth/login?lang=en",
            data={"username": "dash-nurse", "password": "a long password"},
            follow_redirects=False,
        )
        assert login.status_code == 303
        assert login.headers["location"] == f"{BASE}?lang=en", "the language survives log-in"
        assert client.cookies.get(SESSION_COOKIE)
        assert "Kari Nordmann" in text(show(client, BASE))

        logout = client.post("/auth/logout", follow_redirects=False)
        assert logout.status_code == 303
        assert "Kari Nordmann" not in text(show(client, BASE))


# --- who sees whom -----------------------------------------------------------------------------


def test_a_patient_lands_in_the_language_of_their_record_unless_they_chose_one(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    conn.execute("UPDATE patients SET preferred_language = 'en' WHERE id = %s", (kari.patient_id,))
    subject = do_create_local_account(conn, username="kari", password="a long password")
    do_link_identity(conn, issuer=LOCAL_ISSUER, subject=str(subject), patient_id=kari.patient_id)
    local_issuer(pool).ensure_signing_key()
    form = {"username": "kari", "password": "a long password"}
    with build_app(pool, local_issuer(pool)) as client:
        own = client.post("/auth/login", data=form, follow_redirects=False)
        assert own.headers["location"] == f"{BASE}?lang=en"
        chosen = client.post("/auth/login?lang=nn", data=form, follow_redirects=False)
        assert chosen.headers["location"] == f"{BASE}?lang=nn"


def test_the_log_in_form_carries_a_language_the_visitor_chose(pool: ConnectionPool) -> None:
    client, _ = dashboard_client(pool, anonymous=True)
    [chosen] = [
        c for c in components(show(client, f"{BASE}login", "?lang=nn")) if c["type"] == "Form"
    ]
    assert chosen["props"]["action"] == "/auth/login?lang=nn"


def test_a_nurse_sees_only_the_patients_of_her_care_teams(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    seed_patient(conn, name="Kari Nordmann")
    seed_patient(conn, name="Ola Nordmann")
    stranger(conn)
    client, _ = dashboard_client(pool)

    worklist = show(client, BASE)

    names = texts(of_class(worklist, "name"))
    assert names == ["Kari Nordmann", "Ola Nordmann"]
    assert "Ukjent Person" not in text(worklist)

    other, _ = dashboard_client(pool, staff_id=other_team_nurse(conn))
    assert of_class(show(other, BASE), "name") == []
    assert "Kari Nordmann" not in text(show(other, BASE))


def test_a_patient_outside_her_care_teams_is_not_found_and_leaves_no_trace_of_its_data(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool, staff_id=other_team_nurse(conn))

    for request in (show, refresh):
        page = request(client, f"{BASE}patients/{kari.patient_id}")
        assert "Fant ikke pasienten" in text(page)
        assert "Kari Nordmann" not in text(page)
        assert "Lungeavdelingen" not in text(page)
    unknown = show(client, f"{BASE}patients/00000000-0000-4000-8000-000000000000")
    assert texts(unknown) == texts(show(client, f"{BASE}patients/{kari.patient_id}")), (
        "someone else's patient looks like one who does not exist"
    )
    assert access_rows(conn) == [], "a refused look reads nothing, so there is nothing to log"


def test_a_nurse_removed_from_the_team_loses_the_open_page_at_the_next_refresh(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    client, clock = dashboard_client(pool)
    path = f"{BASE}patients/{kari.patient_id}"
    assert "Kari Nordmann" in text(show(client, path))

    conn.execute(
        "UPDATE care_team_patients SET valid_to = %s WHERE patient_id = %s",
        (NOW + timedelta(minutes=1), kari.patient_id),
    )
    clock.advance(timedelta(minutes=2))

    assert "Fant ikke pasienten" in text(refresh(client, path))
    assert "Kari Nordmann" not in text(refresh(client, BASE))


def test_a_patient_sees_only_themself_and_who_has_looked_at_their_data(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    ola = seed_patient(conn, name="Ola Nordmann")
    nurse, _ = dashboard_client(pool)
    show(nurse, BASE)
    show(nurse, f"{BASE}patients/{kari.patient_id}")
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)

    own = show(client, BASE)

    assert "Kari Nordmann" in text(own)
    assert "Ola Nordmann" not in text(own)
    assert texts(of_class(own, "user")) == ["Kari Nordmann", "Pasient"]
    assert of_class(own, "back") == [], "a patient has no worklist to go back to"
    [looked] = of_class(own, "looked-at-by")
    assert texts(looked)[0] == "Hvem har sett opplysningene mine"
    assert [texts(row)[1:] for row in of_class(looked, "look-row")] == [
        [
            *("Hvem", NURSE, "Rolle", "Sykepleier"),
            *("Virksomhet", "Sykehuset Innlandet", "Hvorfor", "Medlem av behandlingsteamet ditt"),
        ]
    ], "the nurse's worklist and page are one look; her own looks are not listed"
    english = text(show(client, BASE, "?lang=en"))
    assert "Who has looked at my data" in english
    assert "Member of your care team" in english

    for path in (f"{BASE}patients/{ola.patient_id}", f"{BASE}patients/{ola.patient_id}/"):
        other = show(client, path)
        assert "Fant ikke pasienten" in text(other)
        assert "Ola Nordmann" not in text(other)
    assert "Hvem har sett opplysningene mine" not in text(
        show(nurse, f"{BASE}patients/{kari.patient_id}")
    ), "the access log section is the patient's own"


# --- the access log ----------------------------------------------------------------------------


def test_each_page_load_leaves_one_access_log_row_and_refreshes_do_not_flood_it(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    ola = seed_patient(conn, name="Ola Nordmann")
    client, clock = dashboard_client(pool)
    both = sorted([kari.patient_id, ola.patient_id], key=str)
    kari_page = f"{BASE}patients/{kari.patient_id}"

    show(client, BASE)
    for _ in range(3):
        refresh(client, BASE)
    show(client, kari_page)
    refresh(client, kari_page)
    show(client, kari_page, "?lang=en")  # another page load, though of the same patient

    rows = access_rows(conn)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("worklist", "dashboard", "read", "care_team", NURSE),
        ("patient-page", "dashboard", "read", "care_team", NURSE),
        ("patient-page", "dashboard", "read", "care_team", NURSE),
    ]
    assert sorted(rows[0][5], key=str) == both, "the row names every patient listed"
    assert rows[1][5] == rows[2][5] == [kari.patient_id]

    clock.advance(LOG_COVERS + timedelta(seconds=5))
    refresh(client, kari_page)
    assert len(access_rows(conn)) == 4, "a screen left open is logged again after a while"


def test_a_refresh_without_a_logged_page_load_is_logged(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    """The browser says what triggered the callback; claiming a refresh hides nothing."""
    kari = seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool)

    refresh(client, f"{BASE}patients/{kari.patient_id}")
    refresh(client, BASE)

    assert [r[0] for r in access_rows(conn)] == ["patient-page", "worklist"]


def test_a_patient_who_joins_the_worklist_during_a_refresh_is_logged(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool)
    show(client, BASE)

    ola = seed_patient(conn, name="Ola Nordmann")
    assert "Ola Nordmann" in text(refresh(client, BASE))
    refresh(client, BASE)

    rows = access_rows(conn)
    assert rows[0][5] == [kari.patient_id]
    assert sorted(rows[1][5], key=str) == sorted([kari.patient_id, ola.patient_id], key=str)
    assert len(rows) == 2


def test_when_the_access_log_cannot_be_written_no_data_is_shown(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool)
    conn.execute(
        "ALTER TABLE access_log ADD CONSTRAINT dashboard_rows_fail CHECK (interface <> 'dashboard')"
    )

    for path in (BASE, f"{BASE}patients/{kari.patient_id}"):
        response = client.post(f"{BASE}_dash-update-component", json=routing_request(path))
        assert response.status_code == 200
        update = response.json()["response"]
        assert "page" not in update
        assert "Kari Nordmann" not in response.text
        assert text(update["status"]["children"]) == (
            "Kunne ikke hente dataene. Prøver igjen om noen sekunder."
        )
    assert access_rows(conn) == []


def test_a_patient_sees_an_emergency_access_to_their_data_and_its_reason(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    outsider = other_team_nurse(conn)
    nurse, _ = dashboard_client(pool, staff_id=outsider)
    assert "Kari Nordmann" not in text(show(nurse, f"{BASE}patients/{kari.patient_id}"))
    principal = principal_for(
        conn, issuer=ISSUER, subject=f"staff-{outsider}", kind="any", hpr_number=None, now=NOW
    )
    assert principal is not None
    do_open_emergency_access(
        conn,
        principal=principal,
        patient_id=kari.patient_id,
        reason="Legevakt: pasienten kom inn med tung pust",
        interface=Interface.DASHBOARD,
        now=NOW,
    )
    assert "Kari Nordmann" in text(show(nurse, f"{BASE}patients/{kari.patient_id}"))
    patient, _ = dashboard_client(pool, patient_id=kari.patient_id)

    [looked] = of_class(show(patient, BASE), "looked-at-by")

    rows = [texts(row)[1:] for row in of_class(looked, "look-row")]
    emergency = ["Akuttilgang", "Legevakt: pasienten kom inn med tung pust"]
    assert rows == [
        [
            *("Hvem", "Annen Sykepleier", "Rolle", "Sykepleier"),
            *("Virksomhet", "Enheten til Annen Sykepleier", "Hvorfor", *emergency),
        ]
    ], "the opening and the page read through it are one look, with the reason"


# --- names are text ----------------------------------------------------------------------------


def test_a_name_that_looks_like_markup_is_shown_as_text(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    patient = seed_patient(conn, name=XSS)
    staff = employed_staff(
        conn, name=f"<script>alert(1)</script>{XSS}", organisation="Enheten for markup"
    )
    team = conn.execute("SELECT id FROM care_teams WHERE name = 'Dashboard-teamet'").fetchone()
    assert team is not None
    do_add_team_member(conn, team_id=team[0], staff_id=staff, since=SINCE)
    nurse, _ = dashboard_client(pool, staff_id=staff)

    worklist = show(nurse, BASE)

    [name] = of_class(worklist, "name")
    [link] = [c for c in components(name) if c["type"] == "Link"]
    assert link["props"]["children"] == XSS, "a string child: React renders it as text"
    assert {c["type"] for c in components(worklist)}.isdisjoint({"Img", "Script", "Markdown"})
    assert texts(of_class(worklist, "user"))[0] == f"<script>alert(1)</script>{XSS}"

    client, _ = dashboard_client(pool, patient_id=patient.patient_id)
    own = show(client, BASE)
    assert f"<script>alert(1)</script>{XSS}" in texts(of_class(own, "looked-at-by"))
    assert {c["type"] for c in components(own)}.isdisjoint({"Img", "Script", "Markdown"})


def test_the_dashboard_never_renders_raw_html() -> None:
    sources = Path(__file__).resolve().parents[2] / "dashboard"
    for path in sources.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for marker in ("dangerously", "Markdown", "Iframe", "srcDoc"):
            assert marker not in source, f"{path.name} uses {marker}"


def test_a_second_team_adds_its_patients_to_the_list(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    seed_patient(conn, name="Kari Nordmann")
    other = stranger(conn)
    second = do_create_care_team(conn, name="Andre teamet").id
    do_add_team_member(conn, team_id=second, staff_id=team_nurse(pool), since=SINCE)
    do_add_team_patient(conn, team_id=second, patient_id=other, since=SINCE)
    client, _ = dashboard_client(pool)

    assert texts(of_class(show(client, BASE), "name")) == ["Kari Nordmann", "Ukjent Person"]


def test_a_nurse_acknowledges_an_alert_from_the_patient_page_and_it_is_logged(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", limits={"spo2": (92, None)})
    store_reading(conn, kari, "spo2", 88, NOW)
    alert_id = scalar(conn, "SELECT id FROM alerts")
    client, _ = dashboard_client(pool)
    page = show(client, f"{BASE}patients/{kari.patient_id}")
    assert "Kvitter" in text(page)

    answer = take_step(
        client, "acknowledge", alert_id, pathname=f"{BASE}patients/{kari.patient_id}"
    )

    assert text(answer["action-status"]["children"]) == "Varselet er kvittert."
    assert conn.execute("SELECT state FROM alerts").fetchone() == ("acknowledged",)
    logged = conn.execute(
        "SELECT resource, interface, patient_ids FROM access_log ORDER BY id"
    ).fetchall()
    assert ("alert:acknowledge", "dashboard", [kari.patient_id]) in logged


def test_a_patient_sees_no_acknowledge_button_and_cannot_acknowledge(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", limits={"spo2": (92, None)})
    store_reading(conn, kari, "spo2", 88, NOW)
    alert_id = scalar(conn, "SELECT id FROM alerts")
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)
    assert "Kvitter" not in text(show(client, f"{BASE}patients/{kari.patient_id}"))
    answer = take_step(client, "acknowledge", alert_id)
    assert text(answer["action-status"]["children"]) == (
        "Du har ikke tilgang til å håndtere dette varselet."
    )
    assert "page" not in answer
    assert conn.execute("SELECT state FROM alerts").fetchone() == ("open",)
