"""The dashboard and the API docs in a real browser (Debian's chromium, driven by Playwright),
under the server's Content-Security-Policy: the pages draw (a patient's page with its Plotly
charts, Swagger UI) and the browser reports no CSP violation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from core.clock import ManualClock
from heimvakt.auth import SESSION_COOKIE
from tests.browser_checks import CHROMIUM, serve_app
from tests.dashboard import (
    NOW,
    Seeded,
    seed_patient,
    session_token,
    store_reading,
    team_nurse,
)

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


@pytest.fixture
def kari(conn: psycopg.Connection) -> Seeded:
    kari = seed_patient(conn, name="Kari Nordmann", limits={"spo2": (90, None)})
    for days, value in ((3, 95), (2, 88), (1, 93)):
        store_reading(conn, kari, "spo2", value, NOW - timedelta(days=days))
    return kari


def _violations(url: str, *, ready: str, cookie: str | None = None) -> tuple[list[str], str]:
    """Open `url` in chromium, wait for `ready` (a selector) and return the CSP violations
    the page reported, the console's CSP messages, page errors and failed requests (the
    browser's own favicon.ico aside), and the page's text."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context()
            if cookie is not None:
                context.add_cookies(
                    [{"name": SESSION_COOKIE, "value": cookie, "domain": "127.0.0.1", "path": "/"}]
                )
            page = context.new_page()
            console: list[str] = []
            page.on(
                "console",
                lambda message: (
                    console.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
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
            return [*reported, *console], page.inner_text("body")
        finally:
            browser.close()


def test_a_patients_page_draws_its_charts_under_the_csp(
    server: tuple[str, ManualClock], pool: ConnectionPool, kari: Seeded
) -> None:
    base, clock = server
    token = session_token(pool, clock, staff_id=team_nurse(pool))
    problems, text = _violations(
        f"{base}/app/patients/{kari.patient_id}", ready=".js-plotly-plot .main-svg", cookie=token
    )
    assert "Kari Nordmann" in text
    assert problems == []


def test_the_log_in_page_and_the_api_docs_work_under_the_csp(
    server: tuple[str, ManualClock],
) -> None:
    base, _clock = server
    problems, text = _violations(f"{base}/app/", ready="form input[name=password]")
    assert problems == []
    problems, text = _violations(f"{base}/docs", ready=".swagger-ui .info .title")
    assert "Heimvakt" in text
    assert problems == []
