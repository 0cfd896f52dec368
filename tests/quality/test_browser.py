"""The figures page in a real browser (Debian's chromium, driven by Playwright), under the
server's Content-Security-Policy: a coordinator opens it, changes the period and downloads the
CSV; a nurse without the permission is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from core.clock import ManualClock
from heimvakt.auth import SESSION_COOKIE
from tests.dashboard import session_token
from tests.dashboard.test_browser import CHROMIUM, RECORD_VIOLATIONS, server, sync_api
from tests.quality.world import NOW, P, build_world

pytestmark = pytest.mark.slow  # a chromium
__all__ = ["server"]  # the fixture, shared with the dashboard's browser tests


def test_a_coordinator_changes_the_period_and_downloads_the_csv_a_nurse_is_refused(
    server: tuple[str, ManualClock], pool: ConnectionPool, tmp_path: Path
) -> None:
    base, clock = server
    clock.current = NOW
    with pool.connection() as conn:
        world = build_world(conn)
    coordinator = session_token(pool, clock, staff_id=world.staff["coordinator"])
    nurse = session_token(pool, clock, staff_id=world.staff["N1"])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(accept_downloads=True)
            context.add_cookies(
                [{"name": SESSION_COOKIE, "value": coordinator, "domain": "127.0.0.1", "path": "/"}]
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.add_init_script(RECORD_VIOLATIONS)
            page.goto(f"{base}/app/figures?lang=en&from={P.first}&to={P.last}")
            page.wait_for_selector("table.figures", timeout=30_000)
            assert "92.9" in page.inner_text("table.figures")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)

            page.click("a.period-previous")
            page.wait_for_url("**from=2026-11-02**", timeout=30_000)
            page.wait_for_selector(".period:has-text('2 Nov 2026')", timeout=30_000)
            with page.expect_download(timeout=30_000) as download:
                page.click("#download-figures")
            saved = tmp_path / download.value.suggested_filename
            download.value.save_as(saved)
            assert saved.name == "figures-2026-11-02-2026-11-29.csv"
            lines = saved.read_text(encoding="utf-8").splitlines()
            assert lines[0].startswith("period_from,period_to,unit_id,unit,condition,figure,value")
            assert any(
                "2026-11-02,2026-11-29" in line and "Adherence (%)" in line for line in lines
            )
            assert page.evaluate("window.__cspViolations") == []
            assert errors == []

            refused = browser.new_context()
            refused.add_cookies(
                [{"name": SESSION_COOKIE, "value": nurse, "domain": "127.0.0.1", "path": "/"}]
            )
            nurse_page = refused.new_page()
            nurse_page.goto(f"{base}/app/figures?lang=en")
            nurse_page.wait_for_selector(
                "text=You do not have access to this page.", timeout=30_000
            )
            assert "Figures for the health community" not in nurse_page.inner_text("body")
        finally:
            browser.close()
