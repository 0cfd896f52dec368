"""The worklist a nurse works from, and every step on an alert from the screen, through the
Dash callbacks as the browser calls them: the order, why each patient is flagged, who is on it,
the filters, each step and its refusals, and notes shown as text."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from care.handover import do_propose_handover
from care.models import Condition, OrganisationKind
from care.people import do_add_team_member
from care.service import do_create_organisation
from dashboard.pages.worklist import FILTER_NAME
from tests.dashboard import (
    BASE,
    NOW,
    NURSE,
    Seeded,
    components,
    dashboard_client,
    employed_staff,
    of_class,
    press,
    raise_red_alert,
    routing_request,
    seed_patient,
    show,
    store_reading,
    take_step,
    team_nurse,
    text,
    texts,
)
from tests.support import insert_episode, scalar

NBSP = "\u00a0"
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"


def rows(page: Any) -> list[dict]:
    return of_class(page, "worklist-row")


def names(page: Any) -> list[str]:
    return [texts(of_class(row, "name"))[0] for row in rows(page)]


def row_of(page: Any, name: str) -> dict:
    [row] = [row for row in rows(page) if texts(of_class(row, "name"))[0] == name]
    return row


def raise_missing_measurement(conn: psycopg.Connection, seeded: Seeded, *, hours_ago: int) -> None:
    """A missing-measurement alert (adherence), as the sweep writes one after reminding the
    patient (alerts/reminders.py)."""
    at = NOW - timedelta(hours=hours_ago)
    conn.execute(
        """
        INSERT INTO alerts (patient_id, rule_id, rule_version, severity, category, code,
                            first_measured_at, last_measured_at, occurrences, details,
                            created_at, updated_at, episode_id)
        VALUES (%(patient)s, 'missing_measurement:29463-7', 1, 'yellow', 'adherence',
                '29463-7', %(at)s, %(at)s, 1, %(details)s, %(at)s, %(at)s, %(episode)s)
        """,
        {
            "patient": seeded.patient_id,
            "at": at,
            "details": json.dumps(
                {"last_reading_at": (at - timedelta(days=2)).isoformat(), "reminded": True}
            ),
            "episode": insert_episode(conn, patient=seeded.patient_id, severity="yellow", at=at),
        },
    )


@pytest.fixture
def ward(conn: psycopg.Connection) -> dict[str, Seeded]:
    """Five patients, one of each standing, two yellow ones raised at different times."""
    limits: dict[str, tuple[float | None, ...]] = {"spo2": (90, None)}
    seeded = {
        "Anne Andersen": seed_patient(conn, name="Anne Andersen", limits=limits),
        "Berit Berg": seed_patient(conn, name="Berit Berg", limits=limits),
        "Bodil Bakke": seed_patient(
            conn, name="Bodil Bakke", limits=limits, conditions=[Condition.HEART_FAILURE]
        ),
        "Carl Carlsen": seed_patient(conn, name="Carl Carlsen", limits=limits, unit="Hjertepost"),
        "Mona Mo": seed_patient(conn, name="Mona Mo", limits=limits),
    }
    store_reading(conn, seeded["Anne Andersen"], "spo2", 95, NOW - timedelta(hours=1))
    store_reading(conn, seeded["Bodil Bakke"], "spo2", 88, NOW - timedelta(hours=1))
    store_reading(conn, seeded["Berit Berg"], "spo2", 87, NOW - timedelta(hours=3))
    raise_red_alert(conn, seeded["Carl Carlsen"], "spo2", 84)
    raise_missing_measurement(conn, seeded["Mona Mo"], hours_ago=5)
    return seeded


def alert_of(conn: psycopg.Connection, seeded: Seeded) -> int:
    return scalar(conn, "SELECT min(id) FROM alerts WHERE patient_id = %s", (seeded.patient_id,))


def test_red_then_yellow_then_missing_data_then_green_and_the_longest_wait_first(
    pool: ConnectionPool, ward: dict[str, Seeded]
) -> None:
    client, _ = dashboard_client(pool)

    page = show(client, BASE, "?lang=en")

    assert names(page) == ["Carl Carlsen", "Berit Berg", "Bodil Bakke", "Mona Mo", "Anne Andersen"]
    assert [texts(of_class(row, "badge"))[0] for row in rows(page)] == [
        "Red",
        "Yellow",
        "Yellow",
        "Missing data",
        "Green",
    ]
    assert text(of_class(page, "summary")[0]) == (
        "5 patients · Red: 1 · Yellow: 2 · Missing data: 1"
    )


def test_the_reason_names_the_rule_and_its_values_and_a_partial_news2_says_so(
    pool: ConnectionPool, conn: psycopg.Connection, ward: dict[str, Seeded]
) -> None:
    store_reading(conn, ward["Berit Berg"], "pulse", 115, NOW - timedelta(minutes=30))
    store_reading(conn, ward["Anne Andersen"], "spo2", 94, NOW - timedelta(days=2))
    client, _ = dashboard_client(pool)

    page = show(client, BASE, "?lang=en")

    berit = texts(of_class(row_of(page, "Berit Berg"), "wl-reason"))
    assert f"Outside the limits: Oxygen saturation 87{NBSP}%, limit 90{NBSP}%" in berit
    [news2] = [reason for reason in berit if reason.startswith("NEWS2 (partial): ")]
    assert news2.startswith("NEWS2 (partial): partial score 5 from ")
    assert f"Pulse 115{NBSP}/min (2)" in news2
    assert "news2_partial" not in text(page)
    assert texts(of_class(row_of(page, "Mona Mo"), "wl-reason")) == [
        "Missing measurement: Body weight: last reading 2 days ago; the patient was reminded"
    ]
    assert texts(of_class(row_of(page, "Anne Andersen"), "wl-reason")) == ["No unresolved alerts"]
    [sparkline] = [c for c in components(row_of(page, "Anne Andersen")) if c["type"] == "Img"]
    assert sparkline["props"]["src"].startswith("data:image/svg+xml;base64,")


def test_the_state_says_who_acknowledged_and_holds_it_the_escalation_and_any_hand_over(
    pool: ConnectionPool, conn: psycopg.Connection, ward: dict[str, Seeded]
) -> None:
    berit = ward["Berit Berg"]
    conn.execute(
        "UPDATE alert_episodes SET escalation_level = 1, route = 'backup' WHERE patient_id = %s",
        (berit.patient_id,),
    )
    receiver = do_create_organisation(
        conn, name="Hjemmetjenesten Hamar", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    do_propose_handover(
        conn,
        patient_id=berit.patient_id,
        to_organisation_id=receiver,
        proposed_by=team_nurse(pool),
        note="Utskrevet",
        now=NOW - timedelta(hours=2),
    )
    client, _ = dashboard_client(pool)
    before = row_of(show(client, BASE, "?lang=en"), "Berit Berg")

    answer = take_step(client, "acknowledge", alert_of(conn, berit), search="?lang=en")

    assert texts(of_class(before, "wl-state")) == [
        "New, waiting 3 hours",
        "Escalated, step 1: Back-up unit",
    ]
    assert "Hand-over to Hjemmetjenesten Hamar proposed 2 hours ago" in texts(before)
    assert text(answer["action-status"]["children"]) == "Alert acknowledged."
    after = row_of(answer["page"]["children"], "Berit Berg")
    assert texts(of_class(after, "wl-state")) == [
        "Open for 3 hours",
        f"Acknowledged by {NURSE}, just now",
        f"Assigned to {NURSE}",
        "Escalated, step 1: Back-up unit",
    ]


def test_each_filter_and_the_search_narrow_the_list_and_live_in_the_address(
    pool: ConnectionPool, conn: psycopg.Connection, ward: dict[str, Seeded]
) -> None:
    client, _ = dashboard_client(pool)
    take_step(client, "acknowledge", alert_of(conn, ward["Carl Carlsen"]))
    unit = scalar(conn, "SELECT id FROM organisations WHERE name = 'Hjertepost'")

    def listed(search: str) -> list[str]:
        return names(show(client, BASE, f"?lang=en&{search}"))

    assert listed("standing=yellow") == ["Berit Berg", "Bodil Bakke"]
    assert listed("standing=missing") == ["Mona Mo"]
    assert listed("state=acknowledged") == ["Carl Carlsen"]
    assert listed("state=new") == ["Berit Berg", "Bodil Bakke", "Mona Mo"]
    assert listed("unacknowledged=1") == ["Berit Berg", "Bodil Bakke", "Mona Mo"]
    assert listed("mine=1") == ["Carl Carlsen"]
    assert listed("state=unassigned&standing=yellow") == ["Berit Berg", "Bodil Bakke"]
    assert listed("condition=heart_failure") == ["Bodil Bakke"]
    assert listed(f"unit={unit}") == ["Carl Carlsen"]
    assert listed("name=BER") == ["Berit Berg"]
    assert listed("name=%25") == []
    assert listed("standing=nonsense") == names(show(client, BASE, "?lang=en"))
    page = show(client, BASE, "?lang=en&name=zzz")
    assert "No patients match." in texts(page)
    first_two = show(client, BASE, "?lang=en&shown=2")
    assert names(first_two) == ["Carl Carlsen", "Berit Berg"]
    [more] = of_class(first_two, "more")
    assert texts(more) == ["Showing 2 of 5.", " ", "Show more"]
    assert [c["props"]["href"] for c in components(more) if c["type"] == "Link"] == [
        f"{BASE}?lang=en&shown=52"
    ]

    filtered = show(client, BASE, "?lang=en&standing=red&unacknowledged=1")
    chips = {texts(c)[0]: c for c in of_class(filtered, "chip")}
    red = chips["Red"]
    assert red["props"]["className"] == "chip chip-on"
    assert "".join(texts(red)) == "Red (chosen)"  # in words, not by look alone
    assert "".join(texts(chips["Yellow"])) == "Yellow"
    assert chips["Yellow"]["props"]["href"] == f"{BASE}?lang=en&standing=yellow&unacknowledged=1"
    assert chips["Not acknowledged"]["props"]["href"] == f"{BASE}?lang=en&standing=red"  # off again
    typed = press(
        client,
        FILTER_NAME,
        {("worklist-name", "value"): " Kari ", ("url", "search"): "?lang=en&standing=red"},
        prop="value",
    )
    assert typed["url"]["search"] == "?lang=en&standing=red&name=Kari"


def test_every_step_from_the_worklist_goes_through_the_alert_actions_and_is_logged(
    pool: ConnectionPool, conn: psycopg.Connection, ward: dict[str, Seeded]
) -> None:
    berit = ward["Berit Berg"]
    colleague = employed_staff(conn, name="Kollega Kari", organisation="Sykehuset")
    team = scalar(conn, "SELECT id FROM care_teams WHERE name = 'Dashboard-teamet'")
    do_add_team_member(conn, team_id=team, staff_id=colleague, since=NOW - timedelta(days=30))
    alert = alert_of(conn, berit)
    client, _ = dashboard_client(pool)

    def said(answer: dict) -> str:
        return text(answer["action-status"]["children"])

    assert said(take_step(client, "assign-me", alert, search="?lang=en")) == (
        "The alert is assigned to you."
    )
    answer = take_step(client, "assign", alert, search="?lang=en", alert_assignee=str(colleague))
    assert said(answer) == "The alert is assigned."
    assert "Assigned to Kollega Kari" in texts(row_of(answer["page"]["children"], "Berit Berg"))
    answer = take_step(client, "note", alert, search="?lang=en", alert_note="Ringte, ok.")
    assert said(answer) == "Note saved."
    assert "Ringte, ok." in texts(row_of(answer["page"]["children"], "Berit Berg"))
    answer = take_step(
        client,
        "snooze",
        alert,
        search="?lang=en",
        alert_snooze_reason="Kjent lav metning",
        alert_snooze_hours=4,
    )
    assert said(answer) == "Alert snoozed."
    assert "Snoozed until 15 Jan 2025 at 17:00: Kjent lav metning" in texts(
        of_class(row_of(answer["page"]["children"], "Berit Berg"), "wl-state")
    )
    answer = take_step(
        client,
        "resolve",
        alert,
        search="?lang=en",
        alert_outcome="contacted_patient",
        alert_resolution_note="Snakket med pasienten.",
    )
    assert said(answer) == "Alert resolved."
    assert texts(of_class(row_of(answer["page"]["children"], "Berit Berg"), "wl-reason")) == [
        "No unresolved alerts"
    ]

    assert conn.execute(
        "SELECT state, assigned_to, outcome, resolution_note FROM alerts WHERE id = %s", (alert,)
    ).fetchone() == ("resolved", colleague, "contacted_patient", "Snakket med pasienten.")
    assert scalar(conn, "SELECT reason FROM alert_snoozes WHERE patient_id = %s",
                  (berit.patient_id,)) == "Kjent lav metning"  # fmt: skip
    logged = [
        row[0]
        for row in conn.execute(
            "SELECT resource FROM access_log WHERE interface = 'dashboard'"
            " AND resource LIKE 'alert:%%' ORDER BY id"
        )
    ]
    assert logged == ["alert:assign", "alert:assign", "alert:note", "alert:snooze", "alert:resolve"]


REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("resolve", {"alert_resolution_note": "Ok"}, "Choose the outcome before resolving."),
    ("resolve", {"alert_outcome": "referred"}, "Write what was done before resolving."),
    ("snooze", {"alert_snooze_hours": 4}, "A snooze needs a reason."),
    ("snooze", {"alert_snooze_reason": "Kjent"}, "Choose how long to snooze."),
    ("note", {"alert_note": "   "}, "Write the note first."),
    ("assign", {}, "Choose whom to assign the alert to."),
]


def test_an_incomplete_step_is_refused_with_a_clear_message_and_changes_nothing(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", limits={"spo2": (90, None)})
    store_reading(conn, kari, "spo2", 86, NOW - timedelta(hours=1))
    client, _ = dashboard_client(pool)
    events = "SELECT count(*) FROM alert_events"
    before = scalar(conn, events)

    for step, fields, message in REFUSALS:
        answer = take_step(client, step, alert_of(conn, kari), search="?lang=en", **fields)

        assert text(answer["action-status"]["children"]) == message
        assert "page" not in answer
    assert scalar(conn, events) == before


def test_a_nurse_outside_the_patients_care_is_refused_and_nothing_is_written(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", limits={"spo2": (90, None)})
    store_reading(conn, kari, "spo2", 86, NOW - timedelta(hours=1))
    outsider = employed_staff(conn, name="Ola Utenfor", organisation="Annet sykehus")
    client, _ = dashboard_client(pool, staff_id=outsider)

    answer = take_step(
        client,
        "resolve",
        alert_of(conn, kari),
        search="?lang=en",
        alert_outcome="false_alarm",
        alert_resolution_note="Ikke min pasient",
    )

    assert text(answer["action-status"]["children"]) == "You may not act on this alert."
    assert conn.execute("SELECT state FROM alerts").fetchone() == ("open",)
    assert scalar(conn, "SELECT count(*) FROM access_log WHERE resource LIKE 'alert:%%'") == 0


def test_a_note_with_markup_shows_as_text_on_the_worklist_and_the_patient_page(
    pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann", limits={"spo2": (90, None)})
    store_reading(conn, kari, "spo2", 86, NOW - timedelta(hours=1))
    client, _ = dashboard_client(pool)
    note = f"{SCRIPT} {IMAGE}"

    answer = take_step(client, "note", alert_of(conn, kari), alert_note=note)
    patient = show(client, f"{BASE}patients/{kari.patient_id}")

    for page in (answer["page"]["children"], patient):
        assert note in texts(of_class(page, "note-text"))
        kinds = {c["type"] for c in components(page)}
        assert kinds.isdisjoint({"Script", "Markdown", "Iframe"})
        assert not [c for c in components(page) if "dangerously_allow_html" in c["props"]]
        assert not [
            c for c in components(page) if c["type"] == "Img" and c["props"].get("src") == "x"
        ]


def test_a_failed_refresh_keeps_the_page_and_says_from_when_its_data_is(
    pool: ConnectionPool,
) -> None:
    client, _ = dashboard_client(pool)
    pool.close()

    response = client.post(
        f"{BASE}_dash-update-component",
        json=routing_request(
            BASE, "?lang=en", trigger="refresh.n_intervals", shown_at=NOW.isoformat()
        ),
    )

    update = response.json()["response"]
    assert "page" not in update
    assert text(update["status"]["children"]) == (
        "Data from 13:00; could not refresh. Trying again in a few seconds."
    )


def test_the_forms_of_the_episode_named_in_the_address_open_and_the_refresh_leaves_them_be(
    pool: ConnectionPool, conn: psycopg.Connection, ward: dict[str, Seeded]
) -> None:
    """A refresh redrawing the forms under the nurse's hands could lose what she types, or
    take a button away between press and release: while forms are open the page is redrawn
    by her own steps only."""
    alert = alert_of(conn, ward["Berit Berg"])
    client, _ = dashboard_client(pool)
    closed = row_of(show(client, BASE, "?lang=en"), "Berit Berg")
    [opener] = [c for c in components(closed) if c["type"] == "Link" and "handle=" in str(c)]
    assert opener["props"]["href"] == f"{BASE}?lang=en&handle={alert}"

    opened = show(client, BASE, f"?lang=en&handle={alert}")
    [steps] = of_class(row_of(opened, "Berit Berg"), "alert-steps-open")
    assert [texts(c)[0] for c in components(steps) if c["type"] == "H3"] == [
        "Assign to a colleague",
        "Add a note",
        "Snooze",
        "Resolve",
    ]
    assert not of_class(row_of(opened, "Bodil Bakke"), "alert-steps-open")

    refresh = routing_request(BASE, f"?lang=en&handle={alert}", trigger="refresh.n_intervals")
    answer = client.post(f"{BASE}_dash-update-component", json=refresh)
    assert answer.status_code in {200, 204}
    assert "page" not in (answer.json()["response"] if answer.status_code == 200 else {})
