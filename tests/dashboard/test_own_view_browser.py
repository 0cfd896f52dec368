"""The patient's own view in a real browser (Debian's chromium, driven by Playwright), on a
390 px phone screen: the patient logs in with the form, reads their own values in plain
Bokmål, switches to English, sends the daily check, and is refused another patient's page.
The page passes axe-core with no serious or critical violation and does not scroll sideways;
the story writes docs/screenshots/patient-own-view.png."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.engine import do_evaluate
from care.careplan import do_create_care_plan
from care.people import do_link_identity
from care.templates import PEF, PULSE, SPO2, ScheduledMeasurement
from core.clock import ManualClock
from core.limits import Limits
from core.local_accounts import do_create_local_account
from tests.browser_checks import (
    CHROMIUM,
    scrolls_sideways,
    serve_app,
    severe_accessibility_violations,
)
from tests.dashboard import (
    BASE,
    ISSUER,
    NOW,
    Seeded,
    dashboard_client,
    seed_patient,
    show,
)

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a chromium

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "patient-own-view.png"
PHONE = {"width": 390, "height": 844}
PASSWORD = "a long demo password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def _store(conn: psycopg.Connection, seeded: Seeded, code: str, values: list[float]) -> None:
    """Demo-like history: one reading a morning, the newest this morning, evaluated once."""
    days = len(values)
    moments = [NOW - timedelta(days=days - 1 - n, hours=4) for n in range(days)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
            " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (seeded.device_id, code, at, seeded.patient_id, value, "", at)
                for at, value in zip(moments, values, strict=True)
            ],
        )
    do_evaluate(conn, moments={seeded.patient_id: moments[-1:]}, now=NOW)


def _bjorn(conn: psycopg.Connection) -> Seeded:
    """Like the demo's Bjørn: COPD on a 88-92 % target whose saturation falls over a week."""
    bjorn = seed_patient(conn, name="Bjørn Prøvestad")
    do_create_care_plan(
        conn,
        patient_id=bjorn.patient_id,
        template="copd_hypercapnic",
        author=None,
        now=NOW - timedelta(days=60),
        limits=[Limits(SPO2, low=88, high=92, red_low=85), Limits(PULSE, low=51, high=110)],
        measurements=[
            ScheduledMeasurement(SPO2, every_hours=24, grace_hours=12),
            ScheduledMeasurement(PULSE, every_hours=24, grace_hours=12),
            ScheduledMeasurement(PEF, every_hours=24 * 7, grace_hours=24),
        ],
    )
    saturation = [91, 90, 91, 92, 90, 91, 90, 91, 92, 91] * 2 + [91, 90, 90, 89, 89, 88, 88, 87]
    _store(conn, bjorn, SPO2, [float(v) for v in saturation])
    _store(conn, bjorn, PULSE, [float(72 + (n % 5) * 2) for n in range(27)])
    return bjorn


def test_a_patient_reads_their_own_view_on_a_phone_and_sends_the_daily_check(
    browser: Any, pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    bjorn = _bjorn(conn)
    other = seed_patient(conn, name="Ola Nordmann")
    subject = do_create_local_account(conn, username="bjorn", password=PASSWORD)
    do_link_identity(conn, issuer=ISSUER, subject=str(subject), patient_id=bjorn.patient_id)
    nurse, _ = dashboard_client(pool)
    show(nurse, f"{BASE}patients/{bjorn.patient_id}")  # a nurse's look, for the access log

    with serve_app(pool, ManualClock(NOW)) as base:
        context = browser.new_context(viewport=PHONE, device_scale_factor=1)
        page = context.new_page()
        page.goto(f"{base}/app/")
        page.get_by_label("Brukernavn").fill("bjorn")
        page.get_by_label("Passord").fill(PASSWORD)
        page.get_by_role("button", name="Logg inn").click()

        page.wait_for_selector(".own-view .js-plotly-plot .main-svg", timeout=30_000)
        body = page.inner_text("main")
        assert "Min oppfølging" in body
        assert "Utenfor målet ditt" in body
        assert "Det er under målet behandlerne dine har satt for deg." in body
        assert "Følg punkt 4 i planen din:" in body
        assert "Ola Nordmann" not in body
        assert not scrolls_sideways(page), "no page-level horizontal scroll at 390 px"
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.get_by_text("KOLS-spørreskjema (CAT)").click()  # axe checks the CAT's form too
        assert severe_accessibility_violations(page) == []
        assert not scrolls_sideways(page)

        page.get_by_role("link", name="English").click()
        page.wait_for_selector("text=My follow-up")
        for question, answer in (
            ("Are you more short of breath than usual?", "Yes"),
            ("Are your legs or feet more swollen than usual?", "No"),
            ("Are you coughing more than usual?", "No"),
        ):
            button = page.get_by_role("group", name=question).get_by_role("button", name=answer)
            button.click()
            sync_api.expect(button).to_have_attribute("aria-pressed", "true")
        page.get_by_role("button", name="Send answers").click()
        page.wait_for_selector("text=Thank you. Your answers are saved.")
        assert conn.execute(
            "SELECT answers FROM questionnaire_responses WHERE patient_id = %s",
            (bjorn.patient_id,),
        ).fetchall() == [({"more_breathless": True, "more_swelling": False, "more_cough": False},)]

        page.goto(f"{base}/app/patients/{other.patient_id}?lang=en")
        page.wait_for_selector("text=Patient not found")
        assert "Ola Nordmann" not in page.inner_text("body")
        context.close()
