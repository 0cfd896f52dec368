"""The dashboard and the API docs in a real browser (Debian's chromium, driven by Playwright),
under the server's Content-Security-Policy: the pages draw (a patient's page with its Plotly
charts, Swagger UI) and the browser reports no CSP violation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from care.careplan import do_update_care_plan
from core.clock import ManualClock
from core.limits import Limits
from core.weeks import COUNT_READINGS
from heimvakt.auth import SESSION_COOKIE
from tests.browser_checks import CHROMIUM, serve_app
from tests.dashboard import (
    NOW,
    Seeded,
    code_of,
    seed_patient,
    session_token,
    store_reading,
    team_nurse,
)
from tests.support import plan_with_limits

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a chromium per test

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@pytest.fixture
def server(pool: ConnectionPool) -> Iterator[tuple[str, ManualClock]]:
    """The whole app on a real port, as `heimvakt up` serves it."""
    clock = ManualClock(NOW)
    with serve_app(pool, clock) as base:
        yield base, clock


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
YEAR_OF_READINGS = """
WITH stored AS (
    INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, received_at)
    SELECT %(device)s, m.code, at, %(patient)s,
           m.typical + m.step * (2 * sin(d / 9.0) + CASE h WHEN 8 THEN -1 ELSE 1 END
                                 + CASE WHEN d %% 60 < 5 THEN -4 ELSE 0 END),
           m.unit, at
      FROM (VALUES ('59408-5', '%%', 94.0, 1.0), ('8867-4', '/min', 76.0, 3.0),
                   ('8480-6', 'mm[Hg]', 132.0, 3.0), ('8462-4', 'mm[Hg]', 82.0, 2.0),
                   ('29463-7', 'kg', 78.0, 0.3), ('19935-6', 'L/min', 320.0, 9.0))
           AS m(code, unit, typical, step)
     CROSS JOIN generate_series(4, 365) AS d
     CROSS JOIN (VALUES (8), (19)) AS t(h)
     CROSS JOIN LATERAL (SELECT %(now)s - d * interval '1 day' + h * interval '1 hour' AS at) a
    RETURNING patient_id, code, measured_at
), counted AS ({count})
SELECT 1
""".format(count=COUNT_READINGS.format(source="stored"))
"""Twice a day for a year (up to four days ago) of six measurements, slowly varying, lower
in the morning, and a dip every two months;
counted per week as ingest counts them (core/weeks.py)."""


@pytest.fixture
def kari(conn: psycopg.Connection, pool: ConnectionPool) -> Seeded:
    """A year of readings; her SpO2 limit raised two months ago."""
    kari = seed_patient(conn, name="Kari Nordmann")
    plan_with_limits(
        conn,
        kari.patient_id,
        Limits(code_of("spo2"), low=90, red_low=85),
        Limits(code_of("pulse"), low=50, high=110),
        now=NOW - timedelta(days=400),
    )
    do_update_care_plan(
        conn,
        patient_id=kari.patient_id,
        expected_version=1,
        author=team_nurse(pool),
        now=NOW - timedelta(days=60),
        reason="Tettere oppfølging etter innleggelse",
        thresholds=[Limits(code_of("spo2"), low=92, red_low=86)],
    )
    conn.execute(
        YEAR_OF_READINGS, {"device": kari.device_id, "patient": kari.patient_id, "now": NOW}
    )
    for days, value in ((3, 95), (2, 88), (1, 93)):
        store_reading(conn, kari, "spo2", value, NOW - timedelta(days=days))
    return kari


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser for the module's pages, each in a fresh context (cookies and all)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def _violations(
    browser: Any,
    url: str,
    *,
    ready: str,
    cookie: str | None = None,
    screenshot: Path | None = None,
) -> tuple[list[str], str]:
    """Open `url` in chromium, wait for `ready` (a selector) and return the CSP violations
    the page reported, the console's CSP messages, page errors and failed requests (the
    browser's own favicon.ico aside), and the page's text; with `screenshot`, the whole page
    is written there."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        if cookie is not None:
            context.add_cookies(
                [{"name": SESSION_COOKIE, "value": cookie, "domain": "127.0.0.1", "path": "/"}]
            )
        page = context.new_page()
        console: list[str] = []
        page.on(
            "console",
            lambda message: (
                console.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        page.on("pageerror", lambda error: console.append(f"page error: {error}"))
        page.on(
            "response",
            lambda response: (
                console.append(f"{response.status} {response.url}")
                if response.status >= 400 and not response.url.endswith("/favicon.ico")
                else None
            ),
        )
        page.add_init_script(RECORD_VIOLATIONS)
        page.goto(url)
        try:
            page.wait_for_selector(ready, timeout=30_000)
        except sync_api.TimeoutError:
            reported = page.evaluate("window.__cspViolations")
            page.screenshot(path="/tmp/heimvakt-browser-test.png")
            pytest.fail(f"{ready} never showed: {[*reported, *console]}")
        page.wait_for_timeout(500)  # late chunks (Plotly's) load and run
        reported = page.evaluate("window.__cspViolations")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=screenshot, full_page=True)
        return [*reported, *console], page.inner_text("body")
    finally:
        context.close()


def test_a_patients_page_draws_a_year_of_charts_under_the_csp(
    server: tuple[str, ManualClock], pool: ConnectionPool, kari: Seeded, chromium: Any
) -> None:
    base, clock = server
    token = session_token(pool, clock, staff_id=team_nurse(pool))
    problems, text = _violations(
        chromium,
        f"{base}/app/patients/{kari.patient_id}?lang=en&range=365",
        ready=".js-plotly-plot .main-svg",
        cookie=token,
        screenshot=SCREENSHOTS / "patient-365.png",
    )
    assert "Kari Nordmann" in text
    assert "Last 365 days" in text
    assert "Personal baseline (7 days)" in text
    assert problems == []


def test_the_log_in_page_and_the_api_docs_work_under_the_csp(
    server: tuple[str, ManualClock], chromium: Any
) -> None:
    base, _clock = server
    problems, text = _violations(chromium, f"{base}/app/", ready="form input[name=password]")
    assert problems == []
    problems, text = _violations(chromium, f"{base}/docs", ready=".swagger-ui .info .title")
    assert "Heimvakt" in text
    assert problems == []
