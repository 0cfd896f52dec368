"""The care plan page: the plan in force and its history, a limit changed with a reason (and a
conflict shown, not lost), responsibility and hand-overs proposed and answered from the screen,
each through the one access check and log."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from care.careplan import do_create_care_plan, do_update_care_plan, get_care_plan
from care.people import do_add_employment
from core.limits import Limits
from tests.dashboard import (
    NOW,
    Seeded,
    dashboard_client,
    employed_staff,
    press,
    seed_patient,
    show,
    team_nurse,
    text,
)

SPO2 = "59408-5"
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


@pytest.fixture
def kari(conn: psycopg.Connection, pool: ConnectionPool) -> Seeded:
    """A COPD patient with the template's plan, whose responsible unit employs the team's
    nurse (she may propose a hand-over)."""
    kari = seed_patient(conn, name="Kari Nordmann", unit="Lungeavdelingen")
    do_create_care_plan(conn, patient_id=kari.patient_id, template="copd", author=None, now=NOW)
    unit = conn.execute(
        "SELECT organisation_id FROM patient_responsibility WHERE patient_id = %s",
        (kari.patient_id,),
    ).fetchone()
    assert unit is not None
    do_add_employment(
        conn,
        staff_id=team_nurse(pool),
        organisation_id=unit[0],
        since=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return kari


def _path(patient_id: UUID) -> str:
    return f"/app/patients/{patient_id}/care-plan"


def _change(
    pool: ConnectionPool, patient_id: UUID, version: int, *, reason: str, low: float = 90
) -> dict[str, dict]:
    client, _clock = dashboard_client(pool)
    path = _path(patient_id)
    return press(
        client,
        "limit-save",
        {
            ("limit-code", "data"): SPO2,
            ("limit-red-low", "value"): 85,
            ("limit-low", "value"): low,
            ("limit-reason", "value"): reason,
            ("plan-version", "data"): version,
            ("url", "pathname"): path,
            ("url", "search"): "?lang=en",
        },
    )


def test_the_page_shows_the_schedule_limits_self_management_text_and_history(
    pool: ConnectionPool, kari: Seeded
) -> None:
    client, _clock = dashboard_client(pool)
    page = text(show(client, _path(kari.patient_id), "?lang=en"))
    assert "Plan in force: version 1" in page
    assert "Oxygen saturation" in page
    assert "Self-management plan" in page
    assert "Plan created from the template copd." in page
    assert "Lungeavdelingen" in page  # responsible now


def test_a_limit_changed_with_a_reason_is_a_new_version_with_who_why_old_and_new(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    answer = _change(pool, kari.patient_id, 1, reason="Lower target agreed with the lung doctor")
    assert "Limit saved: the care plan is now version 2." in text(
        answer["action-status"]["children"]
    )
    page = text(answer["page"]["children"])
    assert "Plan in force: version 2" in page
    assert "Lower target agreed with the lung doctor" in page
    assert "red < 85, yellow < 90" in page  # the new limits, in the history's words
    assert "Test Sykepleier" in page  # who
    plan = get_care_plan(conn, patient_id=kari.patient_id)
    assert plan is not None
    assert next(t for t in plan.thresholds if t.code == SPO2).low == 90
    logged = conn.execute(
        "SELECT action, interface FROM access_log WHERE resource = 'care-plan' ORDER BY id"
    ).fetchall()
    assert logged == [("update", "dashboard"), ("read", "dashboard")]  # the change, the redraw


def test_a_change_without_a_reason_is_refused_and_saves_nothing(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    answer = _change(pool, kari.patient_id, 1, reason="  ")
    assert "Say why" in text(answer["action-status"]["children"])
    assert get_care_plan(conn, patient_id=kari.patient_id).version == 1  # type: ignore[union-attr]


def test_limits_that_do_not_rise_are_refused_in_words(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    answer = _change(pool, kari.patient_id, 1, reason="typo", low=80)  # yellow below red
    assert "limits that rise" in text(answer["action-status"]["children"])
    assert get_care_plan(conn, patient_id=kari.patient_id).version == 1  # type: ignore[union-attr]


def test_a_change_to_a_plan_changed_meanwhile_shows_the_conflict_and_what_was_not_saved(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    do_update_care_plan(
        conn,
        patient_id=kari.patient_id,
        expected_version=1,
        author=team_nurse(pool),
        now=NOW,
        reason="A colleague was first",
        thresholds=[Limits(SPO2, low=91, red_low=86)],
    )
    answer = _change(pool, kari.patient_id, 1, reason="My own reason")
    status = text(answer["action-status"]["children"])
    assert "Someone else changed the care plan" in status
    assert "85 / 90" in status
    assert "My own reason" in status
    page = text(answer["page"]["children"])
    assert "Plan in force: version 2" in page  # the plan as it is now
    assert "A colleague was first" in page
    assert get_care_plan(conn, patient_id=kari.patient_id).version == 2  # type: ignore[union-attr]


def test_reasons_and_notes_show_as_text_never_as_markup(pool: ConnectionPool, kari: Seeded) -> None:
    answer = _change(pool, kari.patient_id, 1, reason=XSS)
    page = answer["page"]["children"]
    assert XSS in text(page)  # a text child: React escapes it


def test_a_hand_over_proposed_from_the_screen_is_declined_then_accepted_by_the_receiver(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    receiver = employed_staff(conn, name="Heidi Hjemmetjeneste", organisation="Hjemmetjenesten")
    unit = conn.execute("SELECT id FROM organisations WHERE name = 'Hjemmetjenesten'").fetchone()
    assert unit is not None
    nurse, _clock = dashboard_client(pool)
    path = _path(kari.patient_id)
    where = {("url", "pathname"): path, ("url", "search"): "?lang=en"}
    proposed = press(
        nurse,
        "handover-propose",
        {("handover-to", "data"): str(unit[0]), ("handover-note", "value"): XSS, **where},
    )
    assert "Hand-over proposed" in text(proposed["action-status"]["children"])
    assert "Waiting for an answer" in text(proposed["page"]["children"])

    heidi, _clock = dashboard_client(pool, staff_id=receiver)
    # The receiving unit reads what it is asked to take on, though not yet in the care team.
    assert XSS in text(show(heidi, path, "?lang=en"))
    refused = press(heidi, "handover-decline", {("decision-note", "value"): " ", **where})
    assert "Write why you decline" in text(refused["action-status"]["children"])
    declined = press(heidi, "handover-decline", {("decision-note", "value"): "Full", **where})
    assert "Hand-over declined." in text(declined["action-status"]["children"])

    press(
        nurse,
        "handover-propose",
        {("handover-to", "data"): str(unit[0]), ("handover-note", "value"): "Again", **where},
    )
    accepted = press(heidi, "handover-accept", {("decision-note", "value"): "", **where})
    assert "your unit is responsible from now on" in text(accepted["action-status"]["children"])
    responsible = conn.execute(
        "SELECT o.name FROM patient_responsibility r JOIN organisations o"
        " ON o.id = r.organisation_id WHERE r.patient_id = %s AND r.role = 'responsible'"
        " AND r.valid_to IS NULL",
        (kari.patient_id,),
    ).fetchone()
    assert responsible == ("Hjemmetjenesten",)


def test_staff_outside_the_care_team_and_patients_do_not_see_the_plan(
    pool: ConnectionPool, conn: psycopg.Connection, kari: Seeded
) -> None:
    stranger = employed_staff(conn, name="Ola Utenfor", organisation="Et annet sykehus")
    client, _clock = dashboard_client(pool, staff_id=stranger)
    assert "Patient not found" in text(show(client, _path(kari.patient_id), "?lang=en"))
    patient, _clock = dashboard_client(pool, patient_id=kari.patient_id)
    assert "Self-management plan" not in text(show(patient, _path(kari.patient_id), "?lang=en"))
    allowed = _change(pool, kari.patient_id, 1, reason="x")  # the team's nurse may
    assert "version 2" in text(allowed["action-status"]["children"])
    stranger_change = press(
        client,
        "limit-save",
        {
            ("limit-code", "data"): SPO2,
            ("limit-low", "value"): 93,
            ("limit-reason", "value"): "not mine to change",
            ("plan-version", "data"): 2,
            ("url", "pathname"): _path(kari.patient_id),
            ("url", "search"): "?lang=en",
        },
    )
    assert "You do not have access" in text(stranger_change["action-status"]["children"])
    assert get_care_plan(conn, patient_id=kari.patient_id).version == 2  # type: ignore[union-attr]
