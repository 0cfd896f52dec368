"""The patient page: who the patient is, what is unresolved and why, and the last seven days."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.library.catalogue import RULES_BY_ID
from care.models import Condition
from dashboard.formatting import NO_VALUE
from devices.service import do_assign_device, do_register_device
from devices.status import StatusReport, do_record_status
from tests.dashboard import (
    BASE,
    NOW,
    Seeded,
    components,
    dashboard_client,
    figures,
    of_class,
    seed_patient,
    show,
    store_reading,
    texts,
)

NBSP = "\u00a0"


@pytest.fixture
def kari(conn: psycopg.Connection) -> Seeded:
    """A COPD patient whose oxygen saturation fell below her limit twice in the last two days."""
    kari = seed_patient(
        conn,
        name="Kari Nordmann",
        conditions=[Condition.COPD],
        unit="Lungeavdelingen",
        limits={"spo2": (90, None), "pulse": (50, 110)},
    )
    store_reading(conn, kari, "weight", 80.0, NOW - timedelta(days=8))
    store_reading(conn, kari, "spo2", 95, NOW - timedelta(days=3))
    store_reading(conn, kari, "spo2", 88, NOW - timedelta(days=2))
    store_reading(conn, kari, "pulse", 72, NOW - timedelta(days=1))
    store_reading(conn, kari, "spo2", 87, NOW - timedelta(hours=1))
    return kari


def patient_path(seeded: Seeded) -> str:
    return f"{BASE}patients/{seeded.patient_id}"


def test_the_page_names_the_patient_conditions_and_responsible_unit(
    pool: ConnectionPool, kari: Seeded
) -> None:
    client, _ = dashboard_client(pool)

    page = show(client, patient_path(kari), "?lang=nb")

    [heading] = [c for c in components(page) if c["type"] == "H1"]
    assert heading["props"]["children"] == "Kari Nordmann"
    assert texts(of_class(page, "patient-heading")) == ["Kari Nordmann", "Gul"]
    assert texts(of_class(page, "facts")[0]) == [
        "Diagnoser",
        "KOLS",
        "Ansvarlig enhet",
        "Lungeavdelingen",
    ]


def test_an_unresolved_alert_is_explained_in_bokmal_with_values_and_local_times(
    pool: ConnectionPool, kari: Seeded
) -> None:
    client, _ = dashboard_client(pool)

    [alert] = of_class(show(client, patient_path(kari), "?lang=nb"), "alert")

    [steps] = of_class(alert, "alert-steps")
    assert texts(alert)[: -len(texts(steps))] == [
        "Gul",
        "Oksygenmetning",
        "↓",
        " ",
        "under nedre grense",
        "Ikke kvittert",
        "Nytt, venter 2 dager",
        RULES_BY_ID["threshold"].explanation["nb"],
        "Utenfor grensene",
        f"Oksygenmetning 87{NBSP}%, grense 90{NBSP}%",
        "Antall ganger",
        "2",
        "Første",
        "13. jan. 2025 kl. 13:00",
        "Siste",
        "15. jan. 2025 kl. 12:00 (for 1 time siden)",
    ]
    [steps] = of_class(alert, "alert-steps")
    assert texts(of_class(steps, "step-quick")) == [
        "Kvitter",
        "Tildel meg",
        "Notat, tildeling, utsettelse eller avslutning",
    ]


def test_the_same_alert_in_english_and_nynorsk(pool: ConnectionPool, kari: Seeded) -> None:
    client, _ = dashboard_client(pool)

    [english] = of_class(show(client, patient_path(kari), "?lang=en"), "alert")
    [nynorsk] = of_class(show(client, patient_path(kari), "?lang=nn"), "alert")

    assert texts(english)[:8] == [
        "Yellow",
        "Oxygen saturation",
        "↓",
        " ",
        "below the lower limit",
        "Not acknowledged",
        "New, waiting 2 days",
        RULES_BY_ID["threshold"].explanation["en"],
    ]
    assert "15 Jan 2025 at 12:00 (1 hour ago)" in texts(english)
    assert texts(of_class(english, "step-quick"))[:2] == ["Acknowledge", "Assign to me"]
    assert texts(nynorsk)[:8] == [
        "Gul",
        "Oksygenmetting",
        "↓",
        " ",
        "under nedre grense",
        "Ikkje kvittert",
        "Nytt, ventar 2 dagar",
        RULES_BY_ID["threshold"].explanation["nn"],
    ]


def test_an_acknowledged_alert_still_shows_and_says_so(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    conn.execute("UPDATE alerts SET state = 'acknowledged'")
    conn.execute("UPDATE alert_episodes SET state = 'acknowledged'")
    client, _ = dashboard_client(pool)

    [alert] = of_class(show(client, patient_path(kari), "?lang=nb"), "alert")

    assert "Kvittert" in texts(alert)


def test_a_resolved_alert_is_not_shown(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    conn.execute("UPDATE alerts SET state = 'resolved'")
    client, _ = dashboard_client(pool)

    page = show(client, patient_path(kari), "?lang=nb")

    assert of_class(page, "alert") == []
    assert "Ingen uløste varsler." in texts(page)
    assert texts(of_class(page, "patient-heading")) == ["Kari Nordmann", "Grønn"]


def test_the_trend_has_one_chart_per_measurement_of_the_last_seven_days(
    pool: ConnectionPool, kari: Seeded
) -> None:
    client, _ = dashboard_client(pool)

    [figure] = figures(show(client, patient_path(kari), "?lang=nb"))

    readings = [trace for trace in figure["data"] if trace["mode"] == "lines+markers"]
    assert [(trace["name"], trace["y"]) for trace in readings] == [
        ("Oksygenmetning", [95.0, 88.0, 87.0]),
        ("Puls", [72.0]),
    ]
    titles = [annotation["text"] for annotation in figure["layout"]["annotations"]]
    assert titles == ["Varsler og notater", "Oksygenmetning (%)", "Puls (/min)"]
    # Oslo wall-clock time (CET in January), on one shared axis spanning the seven days.
    assert readings[0]["x"][0] == "2025-01-12T13:00:00"
    assert figure["layout"]["xaxis"]["matches"] == "x3"
    assert figure["layout"]["xaxis3"]["range"] == ["2025-01-08T13:00:00", "2025-01-15T13:00:00"]


def test_the_patients_limits_are_dashed_lines_and_readings_outside_them_are_marked(
    pool: ConnectionPool, kari: Seeded
) -> None:
    client, _ = dashboard_client(pool)

    [figure] = figures(show(client, patient_path(kari), "?lang=en"))

    limits = [trace for trace in figure["data"] if trace.get("legendgroup") == "limits"]
    assert [(trace["yaxis"], trace["y"]) for trace in limits] == [
        ("y2", [90.0, 90.0]),
        ("y3", [50.0, 50.0]),
        ("y3", [110.0, 110.0]),
    ]
    assert {trace["line"]["dash"] for trace in limits} == {"dash"}
    assert [trace["showlegend"] for trace in limits] == [True, False, False]
    assert limits[0]["name"] == "Patient's limits"
    [outside] = [trace for trace in figure["data"] if trace.get("legendgroup") == "outside"]
    assert outside["name"] == "Outside the limits"
    assert outside["y"] == [88.0, 87.0]
    assert outside["x"] == ["2025-01-13T13:00:00", "2025-01-15T12:00:00"]


def test_the_care_plans_red_limits_are_dotted_lines_apart_from_the_yellow_ones(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    ola = seed_patient(conn, name="Ola Nordmann", limits={"pulse": (50, 110, 40, 130)})
    store_reading(conn, ola, "pulse", 72, NOW - timedelta(hours=2))
    client, _ = dashboard_client(pool)

    [figure] = figures(show(client, patient_path(ola), "?lang=en"))

    yellow = [trace for trace in figure["data"] if trace.get("legendgroup") == "limits"]
    red = [trace for trace in figure["data"] if trace.get("legendgroup") == "red-limits"]
    assert [trace["y"] for trace in yellow] == [[50.0, 50.0], [110.0, 110.0]]
    assert [trace["y"] for trace in red] == [[40.0, 40.0], [130.0, 130.0]]
    assert {trace["line"]["dash"] for trace in red} == {"dot"}
    assert [trace["showlegend"] for trace in red] == [True, False]
    assert red[0]["name"] == "Patient's red limits"
    assert "Lower red limit" in red[0]["hovertemplate"]


def test_without_readings_in_the_range_a_message_replaces_the_chart(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    ola = seed_patient(conn, name="Ola Nordmann")
    store_reading(conn, ola, "weight", 80.0, NOW - timedelta(days=8))
    client, _ = dashboard_client(pool)

    page = show(client, patient_path(ola), "?lang=nb")

    assert figures(page) == []
    assert "Ingen målinger i dette tidsrommet." in texts(page)
    assert "Ingen uløste varsler." in texts(page)


def test_a_new_reading_appears_on_the_next_refresh(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    client, clock = dashboard_client(pool)
    show(client, patient_path(kari), "?lang=nb")

    clock.advance(timedelta(minutes=5))
    store_reading(conn, kari, "spo2", 85, clock.now())
    page = show(client, patient_path(kari), "?lang=nb", trigger="refresh.n_intervals")

    [figure] = figures(page)
    [spo2] = [trace for trace in figure["data"] if trace.get("name") == "Oksygenmetning"]
    assert spo2["y"] == [95.0, 88.0, 87.0, 85.0]
    [alert] = of_class(page, "alert")
    assert f"Oksygenmetning 85{NBSP}%, grense 90{NBSP}%" in texts(alert)
    assert "3" in texts(alert)


@pytest.mark.parametrize(
    ("patient", "search", "message"),
    [
        ("0e5f2d1c-5a47-4f9e-9d3b-6c1a2b3c4d5e", "?lang=nb", "Fant ikke pasienten"),
        ("7b9e4c2a-1d3f-4a6b-8c5d-9e0f1a2b3c4d", "?lang=nn", "Fann ikkje pasienten"),
        ("not-a-patient-id", "?lang=en", "Patient not found"),
        ("", "?lang=en", "Patient not found"),
        ("1; DROP TABLE patients", "", "Fant ikke pasienten"),
    ],
)
def test_an_unknown_or_malformed_patient_id_is_a_friendly_not_found(
    pool: ConnectionPool, patient: str, search: str, message: str
) -> None:
    client, _ = dashboard_client(pool)

    page = show(client, f"{BASE}patients/{patient}", search)

    assert message in texts(page)
    [back] = [c for c in components(of_class(page, "not-found")) if c["type"] == "Link"]
    assert back["props"]["href"].startswith(f"{BASE}?lang=")


def test_links_from_the_patient_page_keep_the_patient_and_the_language(
    pool: ConnectionPool, kari: Seeded
) -> None:
    client, _ = dashboard_client(pool)

    page = show(client, patient_path(kari), "?lang=en")

    hrefs = {texts(c)[-1]: c["props"]["href"] for c in components(page) if c["type"] == "Link"}
    assert hrefs["Worklist"] == f"{BASE}?lang=en"
    assert hrefs["Bokmål"] == f"{patient_path(kari)}?lang=nb"
    assert hrefs["Nynorsk"] == f"{patient_path(kari)}?lang=nn"


def test_a_patient_name_with_markup_is_plain_text_on_the_patient_page(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    mallory = seed_patient(conn, name='<img src=x onerror="alert(1)">')
    client, _ = dashboard_client(pool)

    page = show(client, patient_path(mallory))

    [heading] = [c for c in components(page) if c["type"] == "H1"]
    assert heading["props"]["children"] == '<img src=x onerror="alert(1)">'
    assert not [c for c in components(page) if c["type"] == "Markdown"]


PAYLOAD = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def test_the_devices_table_has_kind_id_connection_battery_firmware_and_last_heard_from(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    """Kind and id in columns of their own; a firmware string is the device's own text and
    reaches the page as plain text (React escapes it), never as markup."""
    do_register_device(conn, device_id="ox-kari", kind="pulse_oximeter")
    do_assign_device(conn, device_id="ox-kari", patient_id=kari.patient_id, valid_from=NOW)
    do_record_status(
        conn,
        device_id="ox-kari",
        report=StatusReport(online=False, battery=14, firmware=PAYLOAD),
        received_at=NOW - timedelta(hours=3),
    )
    client, _ = dashboard_client(pool)

    page = show(client, patient_path(kari), "?lang=nb")

    [devices] = of_class(page, "devices")
    assert texts(devices) == [
        "Apparat",
        "Apparat-id",
        "Tilkobling",
        "Batteri",
        "Fastvare",
        "Sist hørt fra",
        "gateway",
        kari.device_id,
        NO_VALUE,
        NO_VALUE,
        NO_VALUE,
        "Ikke hørt fra ennå",
        "Pulsoksymeter",
        "ox-kari",
        "Frakoblet",
        f"14{NBSP}%",
        PAYLOAD,
        "for 3 timer siden",
    ]
    [firmware] = [c for c in of_class(devices, "firmware") if c["props"]["children"] == PAYLOAD]
    assert firmware["type"] == "Td"
    assert not [c for c in components(page) if c["type"] in ("Markdown", "Script", "Img")]


def test_one_card_per_episode_names_every_rule_and_the_partial_news2_in_words(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    store_reading(conn, kari, "pulse", 115, NOW - timedelta(minutes=30))
    client, _ = dashboard_client(pool)

    [card] = of_class(show(client, patient_path(kari), "?lang=nb"), "alert")

    shown = texts(card)
    titles = [texts(part)[1] for part in of_class(card, "alert-title")]
    titles += [texts(part)[1] for part in of_class(card, "alert-part-title")]
    assert sorted(titles) == sorted(["Puls", "Oksygenmetning", "NEWS2 (delvis)"])
    score = shown[shown.index("NEWS2 (delvis)", shown.index("NEWS2 (delvis)") + 1) + 1]
    assert score.startswith("delvis skår 5 fra ")
    assert f"Oksygenmetning 87{NBSP}% (3)" in score
    assert f"Puls 115{NBSP}/min (2)" in score
    assert score.endswith(
        "ikke målt: Kroppstemperatur, Systolisk blodtrykk, Respirasjonsfrekvens, bevissthet"
    )
    assert "news2_partial" not in shown
    assert shown.count("Kvitter") == 1, "one acknowledgement for the episode"
