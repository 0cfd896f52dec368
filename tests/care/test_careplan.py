"""Care plans: from a template, every change with a reason and a version, no silent
overwrites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from care.careplan import (
    ReasonRequiredError,
    StaleVersionError,
    ThresholdChange,
    care_plan_history,
    do_create_care_plan,
    do_reset_threshold,
    do_update_care_plan,
)
from care.models import Condition, OrganisationKind
from care.people import do_create_staff
from care.service import do_create_organisation, do_create_patient
from care.templates import SPO2, TEMPLATES
from core import catalog
from core.auth import StaffRole
from tests.care.conftest import WorldClient
from tests.care.world import World

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def patient(conn: psycopg.Connection) -> UUID:
    unit = do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE)
    return do_create_patient(
        conn,
        display_name="Test Pasient",
        conditions=[Condition.COPD],
        responsible_unit=unit,
        since=NOW,
        preferred_language="nn",
    )


@pytest.fixture
def physician(conn: psycopg.Connection) -> UUID:
    return do_create_staff(conn, display_name="Lege Test", role=StaffRole.PHYSICIAN).id


@pytest.mark.parametrize("key", list(TEMPLATES))
def test_every_template_is_consistent_and_starts_a_plan(
    conn: psycopg.Connection, patient: UUID, key: str
) -> None:
    template = TEMPLATES[key]
    for limits in template.thresholds:
        assert catalog.lookup(limits.code) is not None
        given = [v for v in (limits.red_low, limits.low, limits.high, limits.red_high) if v]
        assert given == sorted(given)
    assert {m.code for m in template.measurements} <= {m.code for m in catalog.MEASUREMENTS}
    assert all(template.self_management[language] for language in ("nb", "nn", "en"))
    plan = do_create_care_plan(conn, patient_id=patient, template=key, author=None, now=NOW)
    assert (plan.version, plan.spo2_scale) == (1, template.spo2_scale)
    assert plan.self_management == template.self_management["nn"]
    assert all(t.reason is None for t in plan.thresholds)


def test_hypercapnic_copd_uses_spo2_scale_2_with_lower_limits() -> None:
    assert TEMPLATES["copd_hypercapnic"].spo2_scale == 2
    spo2 = {t.code: t for t in TEMPLATES["copd_hypercapnic"].thresholds}[SPO2]
    assert spo2.low is not None
    assert spo2.low < 88


def test_an_override_without_a_reason_is_refused(
    conn: psycopg.Connection, patient: UUID, physician: UUID
) -> None:
    do_create_care_plan(conn, patient_id=patient, template="copd", author=None, now=NOW)
    for reason in ("", "   "):
        with pytest.raises(ReasonRequiredError):
            do_update_care_plan(
                conn,
                patient_id=patient,
                expected_version=1,
                author=physician,
                now=NOW,
                reason=reason,
                thresholds=[ThresholdChange("spo2", low=88, red_low=85)],
            )
    assert len(care_plan_history(conn, patient_id=patient)) == 1


def test_an_override_with_a_reason_is_versioned_with_old_and_new_values_and_author(
    conn: psycopg.Connection, patient: UUID, physician: UUID
) -> None:
    do_create_care_plan(conn, patient_id=patient, template="copd", author=None, now=NOW)
    later = NOW + timedelta(hours=2)
    plan = do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=physician,
        now=later,
        reason="Habitual SpO2 89-91 % when stable",
        thresholds=[ThresholdChange("spo2", low=88, red_low=85)],
    )
    assert plan.version == 2
    spo2 = {t.code: t for t in plan.thresholds}[SPO2]
    assert (spo2.low, spo2.red_low, spo2.reason) == (88, 85, "Habitual SpO2 89-91 % when stable")
    latest, first = care_plan_history(conn, patient_id=patient)
    assert (latest.version, latest.changed_by, latest.changed_at) == (2, physician, later)
    assert first.old is None
    old_spo2 = next(t for t in latest.old["thresholds"] if t["code"] == SPO2)
    new_spo2 = next(t for t in latest.new["thresholds"] if t["code"] == SPO2)
    assert (old_spo2["low"], new_spo2["low"]) == (94, 88)


def test_a_change_against_a_stale_version_is_refused_and_changes_nothing(
    conn: psycopg.Connection, patient: UUID, physician: UUID
) -> None:
    do_create_care_plan(conn, patient_id=patient, template="copd", author=None, now=NOW)
    change = {"author": physician, "now": NOW, "reason": "Individual limit"}
    do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        thresholds=[ThresholdChange("pulse", low=45, high=115)],
        **change,
    )
    with pytest.raises(StaleVersionError):
        do_update_care_plan(
            conn,
            patient_id=patient,
            expected_version=1,
            thresholds=[ThresholdChange("pulse", low=40, high=120)],
            **change,
        )
    assert [v.version for v in care_plan_history(conn, patient_id=patient)] == [2, 1]


def test_limits_that_do_not_rise_are_refused(
    conn: psycopg.Connection, patient: UUID, physician: UUID
) -> None:
    do_create_care_plan(conn, patient_id=patient, template="copd", author=None, now=NOW)
    with pytest.raises(ValueError, match="rise"):
        do_update_care_plan(
            conn,
            patient_id=patient,
            expected_version=1,
            author=physician,
            now=NOW,
            reason="typo",
            thresholds=[ThresholdChange("spo2", low=85, red_low=88)],
        )


def test_a_reset_brings_back_the_template_default(
    conn: psycopg.Connection, patient: UUID, physician: UUID
) -> None:
    do_create_care_plan(conn, patient_id=patient, template="copd", author=None, now=NOW)
    do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=physician,
        now=NOW,
        reason="Trial of a lower limit",
        thresholds=[ThresholdChange("spo2", low=88)],
    )
    plan = do_reset_threshold(
        conn,
        patient_id=patient,
        code="spo2",
        expected_version=2,
        author=physician,
        now=NOW,
        reason="Back to default after the trial",
    )
    spo2 = {t.code: t for t in plan.thresholds}[SPO2]
    assert (spo2.low, spo2.reason, plan.version) == (94, None, 3)


def test_over_http_a_second_nurse_with_the_old_etag_gets_412(
    world_client: WorldClient, world: World
) -> None:
    url = f"/api/v1/patients/{world.patients['own']}/care-plan"
    first = {"Authorization": f"Bearer {world.tokens['hospital_nurse']}"}
    second = {"Authorization": f"Bearer {world.tokens['municipal_nurse']}"}
    change = {"reason": "Lower limit agreed with the physician", "thresholds": []}
    with world_client() as (client, _conn):
        etag = client.get(url, headers=first).headers["ETag"]
        assert client.get(url, headers=second).headers["ETag"] == etag
        assert (
            client.patch(url, json=change, headers={**first, "If-Match": etag}).status_code == 200
        )
        stale = client.patch(url, json=change, headers={**second, "If-Match": etag})
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert client.patch(url, json=change, headers=second).status_code == 428
        unknown_field = {**change, "organisation_id": str(world.organisations["X"])}
        fresh = client.get(url, headers=second).headers["ETag"]
        refused = client.patch(url, json=unknown_field, headers={**second, "If-Match": fresh})
        assert refused.status_code == 422
        without_reason = client.patch(
            url, json={"thresholds": []}, headers={**second, "If-Match": fresh}
        )
        assert without_reason.status_code == 422
