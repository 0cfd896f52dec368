"""The one link builder: the dashboard's paths, and absolute links from the configured public
address only."""

from __future__ import annotations

from uuid import UUID

import pytest

from core.links import DASHBOARD_PATH, PublicLinks, patient_path
from dashboard.links import Links, Page, resolve

PATIENT = UUID("3b0f8f5e-5d0c-4a3e-9a0e-6d3f7f1d2c11")


@pytest.mark.parametrize("public_url", ["https://heimvakt.example/", "https://heimvakt.example"])
def test_a_patient_link_is_the_dashboard_page_at_the_public_address(public_url: str) -> None:
    links = PublicLinks(public_url)
    assert links.patient(PATIENT) == f"https://heimvakt.example/app/patients/{PATIENT}"
    assert links.worklist() == "https://heimvakt.example/app/"


@pytest.mark.parametrize("public_url", ["heimvakt.example", "ftp://x", "https://", ""])
def test_a_public_address_that_is_not_absolute_http_is_refused(public_url: str) -> None:
    with pytest.raises(ValueError, match="public_url"):
        PublicLinks(public_url)


def test_the_dashboard_opens_the_page_a_notification_links_to() -> None:
    """The notification's link and the dashboard's own navigation are one path."""
    path = patient_path(PATIENT)
    assert PublicLinks("http://127.0.0.1:8000").patient(PATIENT).endswith(path)
    assert Links(DASHBOARD_PATH, "nb").patient(PATIENT) == f"{path}?lang=nb"
    route = resolve(path, base=DASHBOARD_PATH)
    assert (route.page, route.patient_id) == (Page.PATIENT, PATIENT)


def test_switching_language_keeps_what_the_user_chose_and_nothing_else() -> None:
    """The filters, the trend's range and the care plan's choice survive a change of
    language; anything else in the address is not carried along."""
    links = Links(DASHBOARD_PATH, "nb")
    worklist = links.in_language(
        resolve(DASHBOARD_PATH, base=DASHBOARD_PATH),
        "en",
        "?lang=nb&standing=red&mine=1&name=Kari&next=https://evil.example",
    )
    assert worklist == f"{DASHBOARD_PATH}?lang=en&standing=red&mine=1&name=Kari"
    patient = links.in_language(
        resolve(patient_path(PATIENT), base=DASHBOARD_PATH), "nn", "?lang=nb&range=90"
    )
    assert patient == f"{patient_path(PATIENT)}?lang=nn&range=90"
    plan = links.in_language(
        resolve(f"{patient_path(PATIENT)}/care-plan", base=DASHBOARD_PATH),
        "en",
        "?lang=nb&measure=59408-5",
    )
    assert plan == f"{patient_path(PATIENT)}/care-plan?lang=en&measure=59408-5"
