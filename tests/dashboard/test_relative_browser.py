"""A relative in a real browser (Debian's chromium, driven by Playwright): she accepts the
patient's invitation on the log-in page, lands on the patient's page in Bokmål, which passes
axe-core with no serious or critical violation, and after the patient withdraws the consent
her next request finds the log-in form and none of the patient's data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from care.careplan import do_create_care_plan
from care.proxies import ProxyScope, do_invite_relative, do_withdraw_consent
from core.auth import Principal
from core.clock import ManualClock
from tests.browser_checks import CHROMIUM, serve_app, severe_accessibility_violations
from tests.dashboard import NOW, seed_patient, store_reading

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a chromium

PASSWORD = "grønn-sykkel-under-eika-7"  # a test account's password


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_a_relative_accepts_sees_the_patients_page_in_bokmal_and_is_refused_after_withdrawal(
    browser: Any, pool: ConnectionPool, conn: psycopg.Connection
) -> None:
    kari = seed_patient(conn, name="Kari Nordmann")
    do_create_care_plan(
        conn, patient_id=kari.patient_id, template="copd", author=None, now=NOW - timedelta(days=9)
    )
    store_reading(conn, kari, "spo2", 94, NOW - timedelta(hours=3))
    patient = Principal(kind="patient", id=str(kari.patient_id), name="", role="patient")
    invitation = do_invite_relative(
        conn,
        patient_id=kari.patient_id,
        display_name="Siri Datter",
        email=None,
        scope=ProxyScope(see_own_view=True, receive_reminders=False, answer_questionnaires=True),
        valid_to=NOW + timedelta(days=30),
        inviter=patient,
        consent_note=None,
        now=NOW,
    )

    with serve_app(pool, ManualClock(NOW)) as base:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{base}/app/")
        page.get_by_role("link", name="Invitert som pårørende? Godta invitasjonen").click()
        page.get_by_label("Invitasjonskode").fill(invitation.code)
        page.get_by_label("Velg et brukernavn").fill("siri")
        page.get_by_label("Velg et passord").fill(PASSWORD)
        page.get_by_role("button", name="Godta og logg inn").click()

        page.wait_for_selector("text=Oppfølging av Kari Nordmann", timeout=30_000)
        body = page.inner_text("main")
        assert "Du ser denne siden som Siri Datter, med samtykke fra Kari Nordmann." in body
        assert "Oksygenmetning" in body
        assert "Pårørende" in page.inner_text("header")
        assert severe_accessibility_violations(page) == []

        do_withdraw_consent(
            conn,
            patient_id=kari.patient_id,
            consent_id=invitation.consent.id,
            withdrawn_by=patient,
            now=NOW,
        )
        page.reload()
        page.wait_for_selector("text=Økten din er avsluttet", timeout=30_000)
        assert "Kari Nordmann" not in page.inner_text("body")
        context.close()
