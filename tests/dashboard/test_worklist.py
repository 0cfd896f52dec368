"""The nurse's worklist: every patient, the most urgent first, with the latest values."""

from __future__ import annotations

import re
from datetime import timedelta

import fastapi
import psycopg
from psycopg_pool import ConnectionPool

from care.models import Condition
from core.auth import ANONYMOUS
from core.clock import ManualClock
from dashboard import create_dashboard
from tests.dashboard import (
    BASE,
    NOW,
    TestClient,
    components,
    dashboard_client,
    of_class,
    raise_red_alert,
    routing_request,
    seed_patient,
    show,
    store_reading,
    text,
    texts,
)

NBSP = "\u00a0"


def worklist_rows(page: dict) -> list[dict]:
    return of_class(page, "worklist-row")


def test_the_index_page_is_served_at_the_url_base_with_local_resources_only(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool)
    response = client.get(BASE)
    assert response.status_code == 200
    assert "<title>Heimvakt</title>" in response.text
    addresses = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert addresses
    assert all(address.startswith(BASE) for address in addresses), addresses
    assert f"{BASE}assets/heimvakt.css" in " ".join(addresses)
    assert client.get(f"{BASE}assets/heimvakt.css").status_code == 200


def test_a_deep_link_to_a_patient_page_serves_the_index_page(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool)
    response = client.get(f"{BASE}patients/{kari.patient_id}?lang=nn")
    assert response.status_code == 200
    assert "<title>Heimvakt</title>" in response.text


def test_the_layout_refreshes_every_five_seconds(pool: ConnectionPool) -> None:
    client, _ = dashboard_client(pool)
    layout = client.get(f"{BASE}_dash-layout").json()
    intervals = [c for c in components(layout) if c["type"] == "Interval"]
    assert [i["props"]["interval"] for i in intervals] == [5000]


def test_each_patient_shows_name_conditions_unit_latest_values_and_when_last_measured(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(
        conn,
        name="Kari Nordmann",
        conditions=[Condition.COPD, Condition.HEART_FAILURE],
        unit="Hjemmetjenesten Gjøvik",
    )
    store_reading(conn, kari, "weight", 81.44, NOW - timedelta(hours=3))
    store_reading(conn, kari, "spo2", 92, NOW - timedelta(hours=2))
    store_reading(conn, kari, "spo2", 93, NOW - timedelta(minutes=12))
    client, _ = dashboard_client(pool)

    [row] = worklist_rows(show(client, BASE, "?lang=nb"))

    assert texts(row) == [
        "Grønn",
        "Kari Nordmann",
        "KOLS, hjertesvikt",
        "Hjemmetjenesten Gjøvik",
        "Ingen åpne varsler",
        "Oksygenmetning",
        f"93{NBSP}%",
        "Vekt",
        f"81,4{NBSP}kg",
        "Sist målt",
        "for 12 min siden",
    ]


def test_english_shows_english_names_units_and_decimal_points(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", conditions=[Condition.HEART_FAILURE])
    store_reading(conn, kari, "weight", 81.45, NOW - timedelta(hours=3, minutes=5))
    store_reading(conn, kari, "temp", 37.05, NOW - timedelta(hours=3))
    client, _ = dashboard_client(pool)

    page = show(client, BASE, "?lang=en")

    assert "Worklist" in texts(page)
    [row] = worklist_rows(page)
    assert texts(row) == [
        "Green",
        "Kari Nordmann",
        "heart failure",
        "Lungeavdelingen",
        "No unresolved alerts",
        "Body weight",
        f"81.5{NBSP}kg",
        "Body temperature",
        f"37.1{NBSP}°C",
        "Latest reading",
        "3 hours ago",
    ]


def test_nynorsk_is_its_own_language(pool: ConnectionPool, conn: psycopg.Connection) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", conditions=[Condition.HEART_FAILURE])
    store_reading(conn, kari, "spo2", 95, NOW - timedelta(days=2, hours=1))
    client, _ = dashboard_client(pool)

    [row] = worklist_rows(show(client, BASE, "?lang=nn"))

    assert texts(row) == [
        "Grøn",
        "Kari Nordmann",
        "hjartesvikt",
        "Lungeavdelingen",
        "Ingen opne varsel",
        "Oksygenmetting",
        f"95{NBSP}%",
        "Sist målt",
        "for 2 dagar sidan",
    ]


def test_a_patient_without_readings_shows_dashes(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    seed_patient(conn, name="Ola Nordmann")
    client, _ = dashboard_client(pool)

    [row] = worklist_rows(show(client, BASE))

    assert texts(of_class(row, "wl-values")) == ["\u2013"]
    assert texts(of_class(row, "wl-when"))[-1] == "\u2013"


def test_patients_with_red_then_yellow_alerts_come_first_and_the_badge_names_the_colour(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    calm = seed_patient(conn, name="Anne Andersen", limits={"spo2": (90, None)})
    yellow = seed_patient(conn, name="Berit Berg", limits={"spo2": (90, None)})
    red = seed_patient(conn, name="Carl Carlsen", limits={"spo2": (90, None)})
    store_reading(conn, calm, "spo2", 95, NOW - timedelta(hours=1))
    store_reading(conn, yellow, "spo2", 88, NOW - timedelta(hours=1))
    store_reading(conn, red, "spo2", 84, NOW - timedelta(hours=1))
    raise_red_alert(conn, red, "spo2", 84)
    client, _ = dashboard_client(pool)

    page = show(client, BASE, "?lang=nb")

    rows = worklist_rows(page)
    assert [texts(row)[:2] for row in rows] == [
        ["Rød", "Carl Carlsen"],
        ["Gul", "Berit Berg"],
        ["Grønn", "Anne Andersen"],
    ]
    assert [of_class(row, "badge")[0]["props"]["className"] for row in rows] == [
        "badge badge-red",
        "badge badge-yellow",
        "badge badge-green",
    ]
    assert "3 pasienter · Rød: 1 · Gul: 1" in text(of_class(page, "summary"))


def test_a_value_under_an_alert_carries_an_arrow_not_only_a_colour(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    berit = seed_patient(conn, name="Berit Berg", limits={"weight": (60, 70)})
    store_reading(conn, berit, "weight", 72.3, NOW - timedelta(hours=1))
    client, _ = dashboard_client(pool)

    [alerted] = of_class(show(client, BASE, "?lang=en"), "alerted")

    assert texts(alerted) == ["Body weight", f"72.3{NBSP}kg", "↑"]
    [arrow] = of_class(alerted, "arrow")
    assert arrow["props"]["title"] == "above the upper limit"


def test_each_row_links_to_the_patient_page_in_the_same_language(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    client, _ = dashboard_client(pool)

    [row] = worklist_rows(show(client, BASE, "?lang=en"))

    [link] = [c for c in components(row) if c["type"] == "Link"]
    assert link["props"]["href"] == f"{BASE}patients/{kari.patient_id}?lang=en"
    assert link["props"]["children"] == "Kari Nordmann"


def test_the_language_switcher_offers_the_other_languages_for_the_same_page(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool)

    [switcher] = of_class(show(client, BASE, "?lang=nn"), "languages")

    assert texts(switcher) == ["Bokmål", "Nynorsk", "English"]
    links = {c["props"]["children"]: c["props"].get("href") for c in list(components(switcher))[1:]}
    assert links == {
        "Bokmål": f"{BASE}?lang=nb",
        "Nynorsk": None,
        "English": f"{BASE}?lang=en",
    }


def test_without_a_language_or_with_an_unknown_one_the_page_is_in_bokmal(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool)

    assert "Arbeidsliste" in texts(show(client, BASE))
    assert "Arbeidsliste" in texts(show(client, BASE, "?lang=de"))
    assert "Arbeidsliste" in texts(show(client, BASE.rstrip("/"), "?lang="))
    assert "Worklist" in texts(show(client, BASE, "?x=1&lang=en"))


def test_a_patient_name_with_markup_is_plain_text(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    seed_patient(conn, name="<script>alert(1)</script>", unit="<b>Avd</b>")
    client, _ = dashboard_client(pool)

    page = show(client, BASE)

    [row] = worklist_rows(page)
    assert "<script>alert(1)</script>" in texts(row)
    assert "<b>Avd</b>" in texts(row)
    assert not [c for c in components(page) if c["type"] == "Markdown"]
    assert not [c for c in components(page) if "dangerously_allow_html" in c["props"]]


def test_the_refresh_shows_new_readings_and_moves_the_relative_time_with_the_clock(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", limits={"spo2": (90, None)})
    store_reading(conn, kari, "spo2", 95, NOW - timedelta(minutes=5))
    client, clock = dashboard_client(pool)
    before = show(client, BASE, "?lang=en")

    clock.advance(timedelta(minutes=10))
    store_reading(conn, kari, "spo2", 86, clock.now() - timedelta(minutes=1))
    after = show(client, BASE, "?lang=en", trigger="refresh.n_intervals")

    [row_before], [row_after] = worklist_rows(before), worklist_rows(after)
    assert texts(of_class(row_before, "wl-values")) == ["Oxygen saturation", f"95{NBSP}%"]
    assert texts(of_class(row_before, "wl-when"))[-1] == "5 min ago"
    assert texts(row_after)[0] == "Yellow"
    assert texts(of_class(row_after, "wl-values")) == ["Oxygen saturation", f"86{NBSP}%", "↓"]
    assert texts(of_class(row_after, "wl-when"))[-1] == "1 min ago"


def test_an_unknown_address_under_the_base_says_the_page_was_not_found(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool)

    assert "Page not found" in texts(show(client, f"{BASE}settings", "?lang=en"))
    assert "Fant ikke siden" in texts(show(client, "/elsewhere", "?lang=nb"))


def test_when_the_database_cannot_be_reached_the_shown_page_stays_and_a_notice_says_so(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool)
    pool.close()

    response = client.post(f"{BASE}_dash-update-component", json=routing_request(BASE, "?lang=en"))

    assert response.status_code == 200
    update = response.json()["response"]
    assert "page" not in update
    assert text(update["status"]["children"]) == (
        "The data could not be loaded. Trying again in a few seconds."
    )


def test_while_the_server_runs_other_unknown_addresses_stay_not_found(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    app = fastapi.FastAPI()
    create_dashboard(
        app,
        pool=pool,
        clock=ManualClock(NOW),
        principal_of=lambda token: ANONYMOUS,
        session_cookie="session",
    )

    with TestClient(app) as client:  # runs the server's startup, as uvicorn does
        assert client.get("/api/no-such-thing").status_code == 404
        assert client.get(f"{BASE}patients/{kari.patient_id}").status_code == 200
        assert client.get(BASE).status_code == 200
        assert client.get(f"{BASE}login").status_code == 200
