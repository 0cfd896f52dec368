"""Every figure's value on a seeded world with known events (tests/quality/world.py), the
previous period beside it, small cells withheld, the deviations named only for those who may
see the patient, and the API's JSON, CSV and refusals."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from care.access import ForbiddenError, Interface
from core.auth import Principal, TokenVerifier
from core.clock import ManualClock
from heimvakt.app import create_app
from quality.deviations import load_deviations
from quality.figures import FIGURE_KEYS, Figures, Period, load_figures
from tests.dashboard import dashboard_client, issuer_for, session_token, show, text
from tests.dashboard import figures as dashboard_figures
from tests.ingest.conftest import TEST_LIMITS
from tests.quality.world import NOW, P, World, build_world


@dataclass(frozen=True)
class Seeded:
    world: World
    pool: ConnectionPool
    figures: Figures


def _coordinator(world: World) -> Principal:
    return Principal(
        kind="staff", id=str(world.staff["coordinator"]), name="Koordinator", role="coordinator"
    )


@pytest.fixture(scope="module")
def seeded(module_database_url: str) -> Iterator[Seeded]:
    with ConnectionPool(module_database_url, min_size=1, max_size=4) as pool:
        with pool.connection() as conn:
            world = build_world(conn)
        with pool.connection() as conn:
            found = load_figures(
                conn,
                principal=_coordinator(world),
                period=P,
                now=NOW,
                interface=Interface.DASHBOARD,
            )
        yield Seeded(world=world, pool=pool, figures=found)


def _cell(seeded: Seeded, unit: str, condition: str = "all", period: str = "current") -> dict:
    unit_id = "all" if unit == "all" else str(seeded.world.units[unit])
    t = seeded.figures.table
    rows = t[(t.period == period) & (t.unit_id == unit_id) & (t.condition == condition)]
    return {
        r.figure: (r.value, r.numerator, r.denominator, r.suppressed) for r in rows.itertuples()
    }


def _values(cell: dict) -> dict[str, Any]:
    return {key: (None if v[0] != v[0] else v[0]) for key, v in cell.items()}


H_CURRENT = {
    "patients_followed": 7.0,  # p1-p7
    "patients_new": 1.0,  # p7
    "patients_ended": 1.0,  # p6, handed over to M
    "patient_days": 155.67,  # 5 x 28 + p6 1 2/3 + p7 14
    "adherence": 92.9,  # 26 / 28
    "questionnaire_completion": 12.9,  # 20 / (140 + 1 + 14)
    "alerts": 2.6,  # 4 per 155.67 patient-days
    "alerts_red": 0.6,
    "alerts_yellow": 1.9,
    "alerts_clinical": 1.3,
    "alerts_adherence": 0.6,
    "alerts_technical": 0.6,
    "acknowledge_minutes_median": 30.0,  # 10, 30, 50
    "acknowledge_minutes_p90": 46.0,
    "resolve_minutes_median": 120.0,  # 60, 120, 240
    "resolve_minutes_p90": 216.0,
    "alerts_outside_opening_hours": 50.0,  # a2 Saturday, a3 20:00
    "escalations_to_backup": 1.0,
    "escalations_to_on_call": 1.0,
    "notifications_delivered": 2.0,
    "notifications_retried": 2.0,
    "notifications_dead": 1.0,
    "reminders_sent": 2.0,  # p1, p3; p2's was never sent
    "reminders_followed": 1.0,  # p1's
    "handovers_proposed": 0.0,  # hand-overs count for the receiving unit
    "handovers_accepted": 0.0,
    "handovers_declined": 0.0,
    "handover_accept_hours_median": None,
    "patients_per_nurse": 3.0,  # 6 at the end / N1, N2
}


def test_every_figure_of_a_unit_has_its_known_value(seeded: Seeded) -> None:
    assert set(H_CURRENT) == set(FIGURE_KEYS)
    cell = _cell(seeded, "H")
    assert _values(cell) == H_CURRENT
    assert cell["adherence"][1:3] == (26.0, 28.0)
    assert cell["questionnaire_completion"][1:3] == (20.0, 155.0)


def test_the_receiving_unit_counts_the_hand_overs(seeded: Seeded) -> None:
    values = _values(_cell(seeded, "M"))
    assert {k: values[k] for k in ("patients_followed", "patients_new", "patients_ended")} == {
        "patients_followed": 5.0,
        "patients_new": 1.0,
        "patients_ended": 0.0,
    }
    assert values["handovers_proposed"] == 3.0
    assert values["handovers_accepted"] == 1.0
    assert values["handovers_declined"] == 1.0
    assert values["handover_accept_hours_median"] == 6.0
    assert values["patients_per_nurse"] == 5.0
    assert values["adherence"] is None  # no schedule: nothing expected


def test_across_units_a_hand_over_neither_starts_nor_ends_a_follow_up(seeded: Seeded) -> None:
    values = _values(_cell(seeded, "all"))
    assert values["patients_followed"] == 14.0
    assert values["patients_new"] == 1.0
    assert values["patients_ended"] == 0.0
    assert values["patients_per_nurse"] == 4.7  # 14 / 3


def test_the_previous_period_stands_beside(seeded: Seeded) -> None:
    values = _values(_cell(seeded, "H", period="previous"))
    assert values["patients_followed"] == 6.0
    assert values["adherence"] == 100.0  # 28 / 28
    assert values["acknowledge_minutes_median"] == 20.0
    assert values["resolve_minutes_median"] == 40.0
    assert values["alerts"] == 0.6  # 1 per 168 patient-days
    assert values["patient_days"] == 168.0


def test_a_period_from_a_wednesday_counts_the_same_readings_and_answers(seeded: Seeded) -> None:
    # Weeks from a Wednesday are no Norwegian weeks: the readings and answers themselves are
    # counted, not their weekly counts.
    with seeded.pool.connection() as conn:
        found = load_figures(
            conn,
            principal=_coordinator(seeded.world),
            period=Period(date(2026, 12, 2), date(2026, 12, 29)),
            now=NOW,
            interface=Interface.DASHBOARD,
        )
    h = str(seeded.world.units["H"])
    t = found.table
    cell = t[(t.period == "current") & (t.unit_id == h) & (t.condition == "all")]
    values = {r.figure: (r.value, r.numerator, r.denominator) for r in cell.itertuples()}
    # p1: Dec 2-27 but Dec 3 and 10 of 28 expected; p3's plan from Dec 28 09:00: one expected.
    assert values["adherence"] == (82.8, 24.0, 29.0)
    # p1 answered Dec 2-19; whole days followed: p1-p5 28 each, p7 16 (from Dec 14).
    assert values["questionnaire_completion"] == (11.5, 18.0, 156.0)


def test_cells_of_fewer_than_five_patients_are_withheld(seeded: Seeded) -> None:
    for unit, condition, period in (
        ("S", "all", "current"),  # three patients
        ("H", "heart_failure", "current"),  # p6 alone
        ("M", "copd", "current"),  # nobody
        ("M", "all", "previous"),  # m1-m4
    ):
        cell = _cell(seeded, unit, condition, period)
        assert all(v[3] for v in cell.values()), (unit, condition, period)
        assert all(v[0] != v[0] and v[1] != v[1] for v in cell.values())
    assert not any(v[3] for v in _cell(seeded, "M").values())
    assert _values(_cell(seeded, "H", "copd"))["patients_followed"] == 6.0


def test_the_weekly_trend_adds_up_to_the_period(seeded: Seeded) -> None:
    w = seeded.figures.weekly
    h = str(seeded.world.units["H"])
    alerts = w[(w.unit_id == h) & (w.condition == "all") & (w.figure == "alerts")]
    assert alerts["numerator"].tolist() == [2.0, 1.0, 1.0, 0.0]
    assert [d.isoformat() for d in alerts["week"]] == [
        "2026-11-30",
        "2026-12-07",
        "2026-12-14",
        "2026-12-21",
    ]


def test_deviations_name_only_the_patients_in_the_viewers_care(seeded: Seeded) -> None:
    w = seeded.world
    with seeded.pool.connection() as conn:
        found = load_deviations(
            conn, principal=_coordinator(w), period=P, now=NOW, interface=Interface.API
        )
        logged = conn.execute(
            "SELECT patient_ids FROM access_log WHERE resource = 'deviations'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert sorted(d.kind for d in found) == [
        "acknowledgement_deadline_breached",
        "device_silent",
        "escalated_to_on_call",
        "handover_unanswered",
        "no_care_plan",
        "no_responsible_unit",
        "notification_dead",
        "reminder_dead",
    ]
    named = [d for d in found if d.patient is not None]
    assert [(d.kind, d.patient_id) for d in named] == [("no_care_plan", w.patients["m4"])]
    assert named[0].link() == f"/app/patients/{w.patients['m4']}"
    assert all(d.link() is None for d in found if d.patient is None)
    assert logged == ([w.patients["m4"]],)


def test_viewing_the_figures_is_logged_without_names(seeded: Seeded) -> None:
    with seeded.pool.connection() as conn:
        row = conn.execute(
            "SELECT actor_id, patient_ids, action, interface FROM access_log"
            " WHERE resource = 'figures' ORDER BY id LIMIT 1"
        ).fetchone()
    assert row == (str(seeded.world.staff["coordinator"]), [], "read", "dashboard")


def test_a_nurse_may_not_see_the_figures(seeded: Seeded) -> None:
    nurse = Principal(kind="staff", id=str(seeded.world.staff["N1"]), name="N1", role="nurse")
    with seeded.pool.connection() as conn, pytest.raises(ForbiddenError):
        load_figures(conn, principal=nurse, period=P, now=NOW, interface=Interface.DASHBOARD)


@pytest.fixture(scope="module")
def api(seeded: Seeded) -> Iterator[tuple[TestClient, dict[str, str]]]:
    clock = ManualClock(NOW)
    issuer = issuer_for(seeded.pool, clock)
    app = create_app(
        pool=seeded.pool,
        clock=clock,
        broker_connected=lambda: True,
        after_store=[],
        limits=TEST_LIMITS,
        verifier=TokenVerifier([], local=issuer),
        public_url="http://testserver",
        local_issuer=issuer,
        secure_cookie=False,
    )
    tokens = {
        who: session_token(seeded.pool, clock, staff_id=seeded.world.staff[who])
        for who in ("coordinator", "N1")
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens


def _get(api: tuple[TestClient, dict[str, str]], who: str, url: str) -> Any:
    client, tokens = api
    return client.get(url, headers={"Authorization": f"Bearer {tokens[who]}"})


def test_the_api_answers_the_same_figures_as_json_and_csv(
    seeded: Seeded, api: tuple[TestClient, dict[str, str]]
) -> None:
    h = str(seeded.world.units["H"])
    query = f"from={P.first}&to={P.last}"
    body = _get(api, "coordinator", f"/api/v1/figures?{query}").json()
    assert body["period"] == {"from": "2026-11-30", "to": "2026-12-27"}
    assert body["previous_period"] == {"from": "2026-11-02", "to": "2026-11-29"}
    row = next(
        f
        for f in body["figures"]
        if (f["unit_id"], f["condition"], f["figure"]) == (h, "all", "adherence")
    )
    assert row["current"] == {
        "value": 92.9,
        "numerator": 26.0,
        "denominator": 28.0,
        "suppressed": False,
    }
    assert row["previous"]["value"] == 100.0
    response = _get(api, "coordinator", f"/api/v1/figures?{query}&format=csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    adherence = next(
        r for r in rows if (r["unit_id"], r["condition"], r["figure"]) == (h, "all", "adherence")
    )
    assert (adherence["value"], adherence["previous_value"]) == ("92.9", "100")
    deviations = _get(api, "coordinator", f"/api/v1/figures/deviations?{query}&format=csv")
    assert deviations.text.count("\r\n") == 9  # header and eight deviations


def test_the_api_refuses_a_nurse_and_a_bad_period(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    for url in ("/api/v1/figures", "/api/v1/figures/deviations"):
        refused = _get(api, "N1", url)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
    backwards = _get(api, "coordinator", "/api/v1/figures?from=2026-12-27&to=2026-11-30")
    assert backwards.status_code == 422
    assert backwards.headers["content-type"] == "application/problem+json"


def test_the_page_shows_the_figures_to_a_coordinator_and_refuses_a_nurse(seeded: Seeded) -> None:
    w = seeded.world
    search = f"?lang=en&from={P.first}&to={P.last}"
    client, _clock = dashboard_client(seeded.pool, NOW, staff_id=w.staff["coordinator"])
    page = show(client, "/app/figures", search)
    shown = text(page)
    assert "Figures for the health community" in shown
    assert "Adherence (%)" in shown
    assert "92.9" in shown
    assert "before: 100" in shown
    assert "Pasient m4" in shown
    assert "Pasient p1" not in shown
    assert "Scheduled measurements received divided by those expected" in shown
    assert len(dashboard_figures(page)) == 8  # 3 side by side, 5 weekly trends
    nurse, _clock = dashboard_client(seeded.pool, NOW, staff_id=w.staff["N1"])
    refused = text(show(nurse, "/app/figures", search))
    assert "You do not have access to this page." in refused
    assert "92.9" not in refused
