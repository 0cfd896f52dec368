"""The device registry page in a real browser (Debian's chromium, driven by Playwright), under
the server's Content-Security-Policy: a nurse registers a device, hands it to a patient, and
sees its first reading and its status on the patient's page."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from core.clock import ManualClock
from devices.status import StatusReport, do_record_status
from devices.tokens import do_issue_token
from heimvakt.auth import SESSION_COOKIE
from tests.dashboard import NOW, seed_patient, session_token, team_nurse
from tests.dashboard.test_browser import CHROMIUM, RECORD_VIOLATIONS, server, sync_api

pytestmark = pytest.mark.slow  # a chromium
__all__ = ["server"]  # the fixture, shared with the dashboard's browser tests

DEVICE = "ox-browser-1"


def test_a_nurse_registers_a_device_hands_it_out_and_sees_its_first_reading(
    server: tuple[str, ManualClock], pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    base, clock = server
    kari = seed_patient(conn, name="Kari Nordmann")
    nurse = session_token(pool, clock, staff_id=team_nurse(pool))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context()
            context.add_cookies(
                [{"name": SESSION_COOKIE, "value": nurse, "domain": "127.0.0.1", "path": "/"}]
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.add_init_script(RECORD_VIOLATIONS)
            page.goto(f"{base}/app/?lang=en")
            page.click("a.nav-devices", timeout=30_000)
            page.wait_for_selector("#device-new-id", timeout=30_000)
            page.fill("#device-new-id", DEVICE)
            page.click("#device-register")
            page.wait_for_selector(".broker-password", timeout=30_000)
            password = page.inner_text(".broker-password")
            assert len(password) >= 30, "the login is shown once, whole"

            row = page.locator("tr", has_text=DEVICE)
            row.locator("button.dash-dropdown").click()
            page.get_by_role("option", name="Kari Nordmann").click()
            row.locator("button.hand-out").click()
            page.wait_for_selector(f"text={DEVICE} now measures for the patient.", timeout=30_000)
            page.wait_for_selector(f"tr:has-text('{DEVICE}'):has-text('Kari Nordmann')")

            token = do_issue_token(conn, device_id=DEVICE, now=clock.now())
            measured = clock.now() + timedelta(minutes=1)
            sent = httpx.post(
                f"{base}/api/v1/devices/{DEVICE}/readings",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "msg_id": str(uuid.uuid4()),
                    "measured_at": measured.isoformat(),
                    "readings": [{"code": "spo2", "value": 94, "unit": "%"}],
                },
                timeout=30,
            )
            assert sent.status_code in {200, 201, 202}, sent.text
            report = StatusReport(online=True, battery=80)
            assert do_record_status(conn, device_id=DEVICE, report=report, received_at=NOW)

            page.goto(f"{base}/app/patients/{kari.patient_id}?lang=en")
            devices = page.locator("table.devices tr", has_text=DEVICE)
            devices.wait_for(timeout=30_000)
            assert "80\u00a0%" in devices.inner_text()  # a number and its unit never part
            assert "Online" in devices.inner_text()
            page.wait_for_selector("text=94", timeout=30_000)
            assert page.evaluate("window.__cspViolations") == []
            assert errors == []
        finally:
            browser.close()
