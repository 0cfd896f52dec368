"""The patient's own view, through the Dash callbacks the browser calls: plain-language
sentences tied to the patient's own targets and plan, today's schedule, the daily check, who
has looked (one row per look), and nothing from the nurse's working view."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from care.careplan import do_create_care_plan
from care.models import Condition
from care.templates import PEF, SPO2, ScheduledMeasurement
from core.limits import Limits
from dashboard.pages.own import (
    CHOSEN,
    QUESTIONS,
    REMIND_BY,
    REMINDER_ADDRESS,
    REMINDER_CHOICE,
    REMINDER_STATUS,
    SEND,
    STATUS,
)
from tests.dashboard import (
    BASE,
    NOW,
    Seeded,
    components,
    dashboard_client,
    figures,
    of_class,
    raise_red_alert,
    routing_request,
    seed_patient,
    show,
    store_reading,
    text,
    texts,
)

STAFF_ONLY = (
    "kvitter",  # "Ikke kvittert", "Kvitter"
    "varsel",
    "eskaler",
    "standardavvik",
    "acknowledge",
    "alert",
    "escalat",
    "standard deviation",
)


def _kari(conn: psycopg.Connection) -> Seeded:
    """Kari: COPD on a 88-92 % target (red below 85), measuring SpO2 daily and PEF weekly."""
    kari = seed_patient(conn, name="Kari Nordmann")
    do_create_care_plan(
        conn,
        patient_id=kari.patient_id,
        template="copd_hypercapnic",
        author=None,
        now=NOW - timedelta(days=40),
        limits=[Limits(SPO2, low=88, high=92, red_low=85)],
        measurements=[
            ScheduledMeasurement(SPO2, every_hours=24, grace_hours=12),
            ScheduledMeasurement(PEF, every_hours=24 * 7, grace_hours=24),
        ],
    )
    return kari


def _values(page: dict) -> dict[str, str]:
    """Each latest value's measurement name and the rest of its card, as read."""
    return {texts(card)[0]: text(card) for card in of_class(page, "my-value")}


@pytest.mark.parametrize(
    ("value", "nb", "en"),
    [
        (
            91,
            [
                "Innenfor målet ditt",
                "Det er innenfor målet behandlerne dine har satt for deg (88\u201392\u00a0%).",
            ],
            [
                "Within your target",
                "That is within the target your care team set for you (88\u201392\u00a0%).",
            ],
        ),
        (
            87,
            [
                "Utenfor målet ditt",
                "Det er under målet behandlerne dine har satt for deg.",
                "Følg punkt 4 i planen din:",
                "Blir du verre: Ved akutt tung pust: ring 113.",
            ],
            [
                "Outside your target",
                "That is below the target your care team set for you.",
                "Follow step 4 of your plan:",
                "If you get worse: Ved akutt tung pust: ring 113.",
            ],
        ),
        (
            83,
            [
                "Langt utenfor målet ditt",
                "Det er godt under målet ditt.",
                "Følg punkt 4 i planen din nå:",
            ],
            [
                "Far outside your target",
                "That is well below your target.",
                "Follow step 4 of your plan now:",
            ],
        ),
    ],
)
def test_each_value_is_said_against_the_patients_own_target_and_plan(
    pool: ConnectionPool, conn: psycopg.Connection, value: float, nb: list[str], en: list[str]
) -> None:
    kari = _kari(conn)
    store_reading(conn, kari, "spo2", value, NOW - timedelta(hours=2))
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)

    for search, expected in (("", nb), ("?lang=en", en)):
        cards = _values(show(client, BASE, search))
        [card] = cards.values()
        for sentence in expected:
            assert sentence in card, (search, card)
        if value != 91:
            # The step the page points to is the plan's own words.
            assert "Blir du tyngre i pusten" in card or "Blir du mer tung i pusten" in card


def test_a_weight_gain_over_the_plans_window_points_to_the_plan(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    ola = seed_patient(conn, name="Ola Nordmann", conditions=[Condition.HEART_FAILURE])
    do_create_care_plan(
        conn, patient_id=ola.patient_id, template="heart_failure", author=None, now=NOW
    )
    for days, kg in ((3, 80.0), (2, 80.6), (0, 82.1)):
        store_reading(conn, ola, "weight", kg, NOW - timedelta(days=days, hours=1))
    client, _ = dashboard_client(pool, patient_id=ola.patient_id)

    weight = _values(show(client, BASE, "?lang=en"))["Body weight"]

    assert "Outside your target" in weight
    assert "Your weight has gone up 2.1 kg in 3 days." in weight
    assert "Follow step 2 of your plan: Går vekten opp mer enn 2 kg på tre dager" in weight
    assert "If you get worse: Ved brystsmerter eller akutt tung pust: ring 113." in weight
    nb = _values(show(client, BASE))["Vekt"]
    assert "Vekten din har gått opp 2,1 kg på 3 dager." in nb


def test_the_patient_sees_no_nurse_only_state_or_statistic(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    store_reading(conn, kari, "spo2", 83, NOW - timedelta(hours=2))
    raise_red_alert(conn, kari, "spo2", 83)
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)

    for search in ("", "?lang=nn", "?lang=en"):
        page = show(client, BASE, search)
        [main] = [c for c in components(page) if c["type"] == "Main"]
        seen = text(main).lower()
        assert [word for word in STAFF_ONLY if word in seen] == [], search
        assert not [
            c
            for c in components(page)
            if c["type"] == "Button" and "acknowledge" in (c["props"].get("className") or "")
        ]
    [chart] = figures(page)
    legend = {trace["name"] for trace in chart["data"] if trace.get("showlegend") is not False}
    assert legend == {"Your target", "Your outer limits", "Outside the limits"}, (
        "the chart speaks to the patient of their own limits"
    )


def test_todays_schedule_says_what_is_done_and_what_is_still_missing(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    store_reading(conn, kari, "spo2", 90, NOW - timedelta(hours=3))  # today, Oslo time
    store_reading(conn, kari, "pef", 300, NOW - timedelta(days=8))  # a week ago and more
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)

    [today] = of_class(show(client, BASE, "?lang=en"), "my-today")

    assert texts(of_class(today, "summary")) == [
        "Still missing today: Peak expiratory flow, Daily check."
    ]
    items = [text(item) for item in of_class(today, "schedule")[0]["props"]["children"]]
    assert items == [
        "✓ Oxygen saturation \u2013 every day \u2013 done 3 hours ago",
        "○ Peak expiratory flow \u2013 every week \u2013 due now",
        "○ Daily check \u2013 every day \u2013 not done yet today",
    ]


def _send(client: TestClient, kind: str, answers: dict[str, str | None]) -> str:
    """Press Send under a questionnaire with these answers, as the browser posts it; the
    status shown."""
    status = {"type": STATUS, "kind": kind}
    body = {
        "output": f'{{"kind":["MATCH"],"type":"{STATUS}"}}.children',
        "outputs": {"id": status, "property": "children"},
        "inputs": [{"id": {"type": SEND, "kind": kind}, "property": "n_clicks", "value": 1}],
        "changedPropIds": [f'{{"kind":"{kind}","type":"{SEND}"}}.n_clicks'],
        "state": [
            [
                {
                    "id": {"kind": kind, "question": q, "type": CHOSEN},
                    "property": "data",
                    "value": answers.get(q),
                }
                for q in QUESTIONS[kind]
            ],
            {"id": "url", "property": "search", "value": "?lang=en"},
        ],
    }
    response = client.post(f"{BASE}_dash-update-component", json=body)
    assert response.status_code == 200, response.text
    [update] = response.json()["response"].values()
    return text(update["children"])


def test_the_daily_check_is_stored_and_evaluated_and_a_missing_answer_is_said(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    client, clock = dashboard_client(pool, patient_id=kari.patient_id)
    clock.advance(timedelta(minutes=1))

    refused = _send(client, "daily_symptoms", {"more_breathless": "yes", "more_swelling": "no"})
    assert refused == "Please answer every question before you send."
    assert conn.execute("SELECT count(*) FROM questionnaire_responses").fetchone() == (0,)

    saved = _send(
        client,
        "daily_symptoms",
        {"more_breathless": "yes", "more_swelling": "no", "more_cough": "no"},
    )

    assert saved == "Thank you. Your answers are saved. Your care team will see them."
    assert conn.execute(
        "SELECT kind, answers FROM questionnaire_responses WHERE patient_id = %s",
        (kari.patient_id,),
    ).fetchall() == [
        ("daily_symptoms", {"more_breathless": True, "more_swelling": False, "more_cough": False})
    ]
    assert conn.execute(
        "SELECT severity FROM alerts WHERE patient_id = %s AND rule_id = 'daily_symptoms'",
        (kari.patient_id,),
    ).fetchall() == [("yellow",)], "evaluated by the rule engine, as the API's answers are"
    assert conn.execute(
        "SELECT resource, action, reason_code FROM access_log WHERE resource = 'questionnaire'"
    ).fetchall() == [("questionnaire", "create", "own_data")]
    [check] = of_class(show(client, BASE, "?lang=en"), "my-check")
    assert "You have answered today." in text(check)


def test_one_row_per_look_with_role_and_organisation(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    nurse, clock = dashboard_client(pool)
    show(nurse, BASE)
    show(nurse, f"{BASE}patients/{kari.patient_id}")
    show(nurse, f"{BASE}patients/{kari.patient_id}", "?lang=en")
    clock.advance(timedelta(hours=2))
    show(nurse, f"{BASE}patients/{kari.patient_id}")
    patient, _ = dashboard_client(pool, patient_id=kari.patient_id, now=NOW + timedelta(hours=3))

    [looked] = of_class(show(patient, BASE), "looked-at-by")

    rows = [texts(row) for row in of_class(looked, "look-row")]
    person = [
        "Hvem",
        "Test Sykepleier",
        "Rolle",
        "Sykepleier",
        "Virksomhet",
        "Sykehuset Innlandet",
        "Hvorfor",
        "Medlem av behandlingsteamet ditt",
    ]
    assert [row[1:] for row in rows] == [person, person], "two looks, two hours apart"
    assert rows[0][0].endswith("kl. 15:00"), "newest first, at the time the look began"
    assert rows[1][0].endswith("kl. 13:00")


def test_a_patient_asking_for_another_patients_page_is_told_it_does_not_exist(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    ola = seed_patient(conn, name="Ola Nordmann")
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)

    other = show(client, f"{BASE}patients/{ola.patient_id}")
    unknown = show(client, f"{BASE}patients/00000000-0000-4000-8000-000000000000")

    assert texts(other) == texts(unknown)
    assert "Fant ikke pasienten" in text(other)
    assert "Ola Nordmann" not in text(other)
    assert "Min oppfølging" in text(show(client, f"{BASE}patients/{kari.patient_id}"))


def test_a_copd_patient_answers_the_cat_and_its_total_is_stored(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)
    [check] = of_class(show(client, BASE, "?lang=en"), "my-check")
    assert "COPD questionnaire (CAT)" in text(check)
    assert "0 = I never cough" in text(check)
    answers: dict[str, str | None] = {f"q{n}": str(n % 6) for n in range(1, 9)}

    assert _send(client, "cat", {**answers, "q8": None}) == (
        "Please answer every question before you send."
    )
    assert _send(client, "cat", answers) == (
        "Thank you. Your answers are saved. Your care team will see them."
    )
    assert conn.execute(
        "SELECT kind, total, answers->>'q5' FROM questionnaire_responses WHERE patient_id = %s",
        (kari.patient_id,),
    ).fetchall() == [("cat", 1 + 2 + 3 + 4 + 5 + 0 + 1 + 2, "5")]


def test_the_own_view_is_not_redrawn_under_a_patients_half_given_answers(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)
    show(client, BASE)

    response = client.post(
        f"{BASE}_dash-update-component",
        json=routing_request(BASE, trigger="refresh.n_intervals"),
    )

    assert response.status_code == 200
    assert "page" not in response.json()["response"], "the periodic refresh leaves the page be"
    assert conn.execute(
        "SELECT count(*) FROM access_log WHERE resource = 'own-page'"
    ).fetchone() == (1,)


def _remind_by(client: TestClient, channel: str, address: str) -> dict:
    """Press one of the reminder choice's buttons with `address` typed, as the browser does."""
    ways = ("email", "apprise", "none")
    [spec] = [
        c
        for c in client.get(f"{BASE}_dash-dependencies").json()
        if c["inputs"] and REMIND_BY in c["inputs"][0]["id"]
    ]
    pressed = {"channel": channel, "type": REMIND_BY}
    response = client.post(
        f"{BASE}_dash-update-component",
        json={
            "output": spec["output"],
            "outputs": [
                {"id": REMINDER_STATUS, "property": "children"},
                {"id": REMINDER_CHOICE, "property": "children"},
            ],
            "inputs": [
                [
                    {
                        "id": {"channel": way, "type": REMIND_BY},
                        "property": "n_clicks",
                        "value": 1 if way == channel else None,
                    }
                    for way in ways
                ]
            ],
            "changedPropIds": [json.dumps(pressed, sort_keys=True, separators=(",", ":"))
                               + ".n_clicks"],
            "state": [
                {"id": REMINDER_ADDRESS, "property": "value", "value": address},
                {"id": "url", "property": "search", "value": "?lang=en"},
            ],
        },
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["response"]


def test_the_patient_chooses_how_to_be_reminded_and_a_bad_address_is_said(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = _kari(conn)
    client, _ = dashboard_client(pool, patient_id=kari.patient_id)
    [section] = of_class(show(client, BASE, "?lang=en"), "my-reminders")
    assert "You get no reminders. If a measurement is missing, your care team calls." in text(
        section
    )

    refused = _remind_by(client, "email", "kari at example")
    assert text(refused[REMINDER_STATUS]["children"]) == (
        "That address cannot receive reminders. Please check it."
    )
    saved = _remind_by(client, "email", " kari@example.org ")
    assert text(saved[REMINDER_STATUS]["children"]) == "Saved. Reminders go to kari@example.org."
    assert "Reminders go by e-mail to kari@example.org." in text(saved[REMINDER_CHOICE]["children"])
    channel = "SELECT channel, address FROM reminder_channels WHERE patient_id = %s"
    assert conn.execute(channel, (kari.patient_id,)).fetchall() == [("email", "kari@example.org")]
    assert conn.execute(
        "SELECT action, interface, reason_code FROM access_log WHERE resource = 'reminder_channel'"
    ).fetchall() == [("update", "dashboard", "own_data")]

    _remind_by(client, "none", "kari@example.org")
    assert conn.execute(channel, (kari.patient_id,)).fetchall() == []
