"""A municipal nurse's shift in a real browser (Debian's chromium, driven by Playwright), under
the server's Content-Security-Policy: she logs in, reads the worklist in its order with why each
patient is flagged, narrows it to what nobody has acknowledged, and takes a red patient's alert
from new to resolved, from the patient page and from the worklist row, without a reload; then
she changes a limit of the patient's care plan with a reason and finds it in the history. The
page fits a tablet (800 px), a note written as markup stays text, and axe-core finds no serious
or critical violation on the worklist, the patient page and the care plan. The test also writes
the screenshots docs/screenshots/worklist.png and docs/screenshots/care-plan.png."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Final
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from care.models import Condition, OrganisationKind
from care.people import do_add_team_member, do_link_identity
from core.clock import ManualClock
from core.local_accounts import do_create_local_account
from devices.status import StatusReport, do_record_status
from tests.browser_checks import severe_accessibility_violations
from tests.dashboard import (
    ISSUER,
    NOW,
    Seeded,
    employed_staff,
    seed_patient,
    store_reading,
    team_nurse,
)
from tests.dashboard.test_browser import CHROMIUM, RECORD_VIOLATIONS, server, sync_api
from tests.support import insert_episode, scalar

pytestmark = pytest.mark.slow  # a chromium
__all__ = ["server"]  # the fixture, shared with the dashboard's other browser tests

SCREENSHOTS: Final = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOT: Final = SCREENSHOTS / "worklist.png"
MUNICIPAL_NURSE: Final = "Marte Kommune"
USER: Final = "marte"
PASSWORD: Final = "et langt demopassord"
NOTE: Final = "Ringte. <script>alert(1)</script> <img src=x onerror=alert(1)>"
FIRMWARE: Final = "2.1<script>alert(3)</script><img src=x onerror=alert(4)>"
WAIT: Final = 30_000


def readings(
    conn: psycopg.Connection, seeded: Seeded, alias: str, values: list[float], *, hours: int = 0
) -> None:
    """One reading a day, the last `hours` before now, oldest first, as the devices send them."""
    for days_ago, value in zip(range(len(values) - 1, -1, -1), values, strict=True):
        store_reading(conn, seeded, alias, value, NOW - timedelta(days=days_ago, hours=hours))


def demo_ward(conn: psycopg.Connection, *, hospital_nurse: UUID) -> dict[str, Seeded]:
    """Invented patients as the demo has them: one red, two yellow, one with a missing
    measurement, three calm. The red alert waits for the hospital's nurse."""
    copd: dict[str, tuple[float | None, ...]] = {
        "spo2": (90, None, 85, None),
        "pulse": (50, 110),
    }
    heart: dict[str, tuple[float | None, ...]] = {"weight": (None, 84), "pulse": (50, 110)}
    ward = {
        "Bjørn Prøvestad": seed_patient(conn, name="Bjørn Prøvestad", limits=copd),
        "Frode Syntetisk": seed_patient(conn, name="Frode Syntetisk", limits=copd),
        "Dagfinn Fiktiv": seed_patient(
            conn,
            name="Dagfinn Fiktiv",
            limits=heart,
            conditions=[Condition.HEART_FAILURE],
            unit="Hjemmetjenesten Gjøvik",
        ),
        "Gunn Eksempel": seed_patient(conn, name="Gunn Eksempel", limits=copd),
        "Kari Nordmann": seed_patient(conn, name="Kari Nordmann", limits=copd),
        "Liv Testesen": seed_patient(
            conn,
            name="Liv Testesen",
            limits=heart,
            conditions=[Condition.COPD, Condition.HEART_FAILURE],
            unit="Hjemmetjenesten Gjøvik",
        ),
        "Ola Normann": seed_patient(conn, name="Ola Normann", limits=copd),
    }
    readings(conn, ward["Bjørn Prøvestad"], "spo2", [94, 92, 91, 84], hours=1)
    readings(conn, ward["Frode Syntetisk"], "spo2", [95, 94, 93, 88], hours=3)
    readings(conn, ward["Frode Syntetisk"], "pulse", [78, 84, 96, 115], hours=3)
    readings(conn, ward["Dagfinn Fiktiv"], "weight", [81.2, 81.9, 83.4, 85.1], hours=2)
    readings(conn, ward["Gunn Eksempel"], "spo2", [93, 94, 93], hours=50)
    readings(conn, ward["Kari Nordmann"], "spo2", [96, 95, 96, 95], hours=4)
    readings(conn, ward["Liv Testesen"], "weight", [70.2, 70.4, 70.1, 70.3], hours=5)
    readings(conn, ward["Ola Normann"], "pulse", [72, 75, 70, 74], hours=6)
    missing_at = NOW - timedelta(hours=26)
    conn.execute(
        """
        INSERT INTO alerts (patient_id, rule_id, rule_version, severity, category, code,
                            first_measured_at, last_measured_at, occurrences, details,
                            created_at, updated_at, episode_id)
        VALUES (%(patient)s, 'missing_measurement:59408-5', 1, 'yellow', 'adherence',
                '59408-5', %(at)s, %(at)s, 1, %(details)s, %(at)s, %(at)s, %(episode)s)
        """,
        {
            "patient": ward["Gunn Eksempel"].patient_id,
            "at": missing_at,
            "details": json.dumps({"last_reading_at": (NOW - timedelta(hours=50)).isoformat()}),
            "episode": insert_episode(
                conn, patient=ward["Gunn Eksempel"].patient_id, severity="yellow", at=missing_at
            ),
        },
    )
    # The oximeter reports a firmware string written as markup: the page must show it as text.
    do_record_status(
        conn,
        device_id=ward["Bjørn Prøvestad"].device_id,
        report=StatusReport(online=True, battery=61, firmware=FIRMWARE),
        received_at=NOW - timedelta(hours=1),
    )
    for table in ("alert_episodes", "alerts"):
        conn.execute(
            f"UPDATE {table} SET assigned_to = %s WHERE patient_id = %s",
            (hospital_nurse, ward["Bjørn Prøvestad"].patient_id),
        )
    return ward


def enrol_municipal_nurse(conn: psycopg.Connection) -> None:
    """A nurse of the municipality's home care, in the team that follows the ward, with a
    password log-in on the built-in issuer."""
    nurse = employed_staff(conn, name=MUNICIPAL_NURSE, organisation="Gjøvik kommune")
    conn.execute(
        "UPDATE organisations SET kind = %s WHERE name = 'Gjøvik kommune'",
        (OrganisationKind.MUNICIPAL_SERVICE,),
    )
    team = scalar(conn, "SELECT id FROM care_teams WHERE name = 'Dashboard-teamet'")
    do_add_team_member(conn, team_id=team, staff_id=nurse, since=NOW - timedelta(days=300))
    subject = do_create_local_account(conn, username=USER, password=PASSWORD)
    do_link_identity(conn, issuer=ISSUER, subject=str(subject), staff_id=nurse)


def test_a_municipal_nurse_works_a_red_alert_from_new_to_resolved_without_a_reload(
    server: tuple[str, ManualClock], pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    base, _clock = server
    demo_ward(conn, hospital_nurse=team_nurse(pool))
    enrol_municipal_nurse(conn)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
            page.add_init_script(RECORD_VIOLATIONS)

            page.goto(f"{base}/app/login?lang=en")
            page.get_by_label("User name").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_selector(".worklist-row .wl-values img", timeout=WAIT)
            page.evaluate("window.__sameDocument = true")  # gone after any reload

            names = page.locator(".worklist-row .name").all_inner_texts()
            assert names == [
                "Bjørn Prøvestad",
                "Dagfinn Fiktiv",  # yellow for a day: waited longest
                "Frode Syntetisk",
                "Gunn Eksempel",
                "Kari Nordmann",
                "Liv Testesen",
                "Ola Normann",
            ]
            reasons = page.locator(".worklist-row").first.locator(".wl-reason").inner_text()
            assert "Outside the limits: Oxygen saturation 84" in reasons
            frode = page.locator(".worklist-row", has_text="Frode Syntetisk")
            assert "NEWS2 (partial): partial score" in frode.locator(".wl-reason").inner_text()
            assert "news2_partial" not in page.inner_text("main")
            assert severe_accessibility_violations(page) == []
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.set_viewport_size({"width": 800, "height": 1000})
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")

            page.get_by_role("link", name="Not acknowledged").click()
            page.wait_for_url("**unacknowledged=1**", timeout=WAIT)
            page.locator(".worklist-row", has_text="Kari Nordmann").wait_for(
                state="detached", timeout=WAIT
            )
            assert page.locator(".worklist-row").count() == 4

            page.get_by_role("link", name="Bjørn Prøvestad").click()
            card = page.locator(".alert").first
            card.wait_for(timeout=WAIT)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=WAIT)
            # The care plan's yellow and red bands are drawn behind the readings.
            assert page.locator(".js-plotly-plot .shapelayer path").count() > 0
            assert page.locator("table.devices td", has_text=FIRMWARE).count() == 1
            assert severe_accessibility_violations(page) == []
            card.get_by_role("button", name="Acknowledge").click()
            page.wait_for_selector("text=Alert acknowledged.", timeout=WAIT)
            page.locator(".alert-who", has_text="Acknowledged by").wait_for(timeout=WAIT)
            card.get_by_role("button", name="Assign to me").click()
            page.wait_for_selector("text=The alert is assigned to you.", timeout=WAIT)
            who = page.locator(".alert-who").first.inner_text()
            assert f"Acknowledged by {MUNICIPAL_NURSE}" in who
            assert f"Assigned to {MUNICIPAL_NURSE}" in who
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")

            page.get_by_role("link", name="Worklist").click()
            row = page.locator(".worklist-row", has_text="Bjørn Prøvestad")
            row.locator(".wl-state", has_text=f"Acknowledged by {MUNICIPAL_NURSE}").wait_for(
                timeout=WAIT
            )
            assert f"Assigned to {MUNICIPAL_NURSE}" in row.locator(".wl-state").inner_text()

            row.get_by_role("link", name="Note, assign, snooze or resolve").click()
            row.get_by_label("Note", exact=True).fill(NOTE)
            row.get_by_role("button", name="Save note").click()
            page.wait_for_selector("text=Note saved.", timeout=WAIT)
            row.locator(".note-text", has_text=NOTE).first.wait_for(timeout=WAIT)

            row.get_by_label("Contacted the patient").check()
            row.get_by_label("What was done").fill("Snakket med Bjørn; ny måling i kveld.")
            row.get_by_role("button", name="Resolve").click()
            page.wait_for_selector("text=Alert resolved.", timeout=WAIT)
            row.locator(".wl-reason", has_text="No unresolved alerts").wait_for(timeout=WAIT)
            assert page.locator(".worklist-row .name").first.inner_text() == "Dagfinn Fiktiv"

            page.get_by_role("link", name="Bjørn Prøvestad").click()
            page.get_by_role("link", name="Care plan and responsibility").click()
            page.wait_for_selector("text=Plan in force: version 1", timeout=WAIT)
            assert severe_accessibility_violations(page) == []
            page.get_by_label("Yellow below").fill("91")
            page.get_by_label("Why (shown in the history)").fill("Agreed with the lung doctor")
            page.get_by_role("button", name="Save the change").click()
            page.wait_for_selector("text=Plan in force: version 2", timeout=WAIT)
            history = page.locator("section", has_text="Version history").inner_text()
            assert "Agreed with the lung doctor" in history
            assert "yellow < 91" in history
            assert MUNICIPAL_NURSE in history
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=str(SCREENSHOTS / "care-plan.png"), full_page=True)

            assert page.evaluate("window.__sameDocument") is True
            assert page.evaluate("window.__cspViolations") == []
            assert problems == []
        finally:
            browser.close()
    assert scalar(conn, "SELECT count(*) FROM alerts WHERE state = 'resolved'") >= 1
