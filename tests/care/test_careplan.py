"""Care plans: from a template, every change with a reason and a version, no silent
overwrites."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from care.careplan import (
    CarePlan,
    CarePlanExistsError,
    InvalidChangeError,
    PlanLimits,
    ReasonRequiredError,
    StaleVersionError,
    UnknownTemplateError,
    care_plan_as_json,
    care_plan_history,
    do_create_care_plan,
    do_reset_threshold,
    do_update_care_plan,
    get_care_plan,
)
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from care.templates import PEF, PULSE, SPO2, TEMPLATES, WEIGHT, ScheduledMeasurement
from core import catalog
from core.clock import ManualClock
from core.limits import Limits
from heimvakt.demo import DEMO_REASON, PATIENTS, seed_demo
from tests.care.conftest import WorldClient
from tests.care.world import World

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)


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


def staff(conn: psycopg.Connection, name: str, role: str) -> UUID:
    row = conn.execute(
        "INSERT INTO staff (display_name, role) VALUES (%s, %s) RETURNING id", (name, role)
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def physician(conn: psycopg.Connection) -> UUID:
    return staff(conn, "Lege Test", "physician")


@pytest.fixture
def nurse(conn: psycopg.Connection) -> UUID:
    return staff(conn, "Sykepleiar Test", "nurse")


@pytest.fixture
def plan(conn: psycopg.Connection, patient: UUID) -> CarePlan:
    return do_create_care_plan(conn, patient_id=patient, template="copd", author=None, now=NOW)


def thresholds(plan: CarePlan | None) -> dict[str, PlanLimits]:
    assert plan is not None
    return {t.code: t for t in plan.thresholds}


def stored_rows(conn: psycopg.Connection, patient: UUID) -> list[tuple[object, ...]]:
    """Everything a care-plan change may touch, to show that a refused one touched nothing."""
    return [
        *conn.execute("SELECT * FROM care_plans WHERE patient_id = %s", (patient,)),
        *conn.execute(
            "SELECT * FROM care_plan_measurements WHERE patient_id = %s ORDER BY code", (patient,)
        ),
        *conn.execute(
            "SELECT * FROM care_plan_limits WHERE patient_id = %s ORDER BY code", (patient,)
        ),
        *conn.execute(
            "SELECT * FROM care_plan_versions WHERE patient_id = %s ORDER BY version", (patient,)
        ),
    ]


@pytest.mark.parametrize("key", list(TEMPLATES))
def test_a_plan_starts_from_each_template_in_the_patients_language(
    conn: psycopg.Connection, patient: UUID, key: str
) -> None:
    template = TEMPLATES[key]
    plan = do_create_care_plan(conn, patient_id=patient, template=key, author=None, now=NOW)
    assert (plan.template, plan.version, plan.spo2_scale) == (key, 1, template.spo2_scale)
    assert (plan.updated_at, plan.updated_by) == (NOW, None)
    assert plan.self_management == template.self_management["nn"]
    assert sorted(plan.measurements, key=lambda m: m.code) == sorted(
        template.measurements, key=lambda m: m.code
    )
    assert thresholds(plan) == {
        t.code: PlanLimits(t.code, t.low, t.high, t.red_low, t.red_high, reason=None)
        for t in template.thresholds
    }
    assert get_care_plan(conn, patient_id=patient) == plan
    (created,) = care_plan_history(conn, patient_id=patient)
    assert (created.version, created.changed_at, created.changed_by) == (1, NOW, None)
    assert created.reason == f"created from template {key}"
    assert created.old is None
    assert created.new == care_plan_as_json(plan)


def test_a_second_plan_and_an_unknown_template_are_refused(
    conn: psycopg.Connection, patient: UUID, plan: CarePlan
) -> None:
    before = stored_rows(conn, patient)
    with pytest.raises(CarePlanExistsError):
        do_create_care_plan(
            conn, patient_id=patient, template="heart_failure", author=None, now=NOW
        )
    with pytest.raises(UnknownTemplateError):
        do_create_care_plan(conn, patient_id=patient, template="asthma", author=None, now=NOW)
    assert stored_rows(conn, patient) == before
    assert get_care_plan(conn, patient_id=UUID(int=1)) is None


def test_a_plan_may_start_with_its_own_limits_and_schedule(
    conn: psycopg.Connection, patient: UUID
) -> None:
    plan = do_create_care_plan(
        conn,
        patient_id=patient,
        template="copd",
        author=None,
        now=NOW,
        limits=[Limits("weight", high=90.0)],
        measurements=[ScheduledMeasurement("spo2", every_hours=12)],
    )
    reason = "created from template copd with individual limits or schedule"
    assert thresholds(plan) == {WEIGHT: PlanLimits(WEIGHT, high=90.0, reason=reason)}
    assert plan.measurements == (ScheduledMeasurement(SPO2, every_hours=12),)
    (created,) = care_plan_history(conn, patient_id=patient)
    assert created.reason == reason
    assert created.new == care_plan_as_json(plan)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_an_override_without_a_reason_is_refused(
    conn: psycopg.Connection, patient: UUID, plan: CarePlan, physician: UUID, reason: str
) -> None:
    before = stored_rows(conn, patient)
    with pytest.raises(ReasonRequiredError):
        do_update_care_plan(
            conn,
            patient_id=patient,
            expected_version=1,
            author=physician,
            now=LATER,
            reason=reason,
            thresholds=[Limits("spo2", low=88, red_low=85)],
        )
    with pytest.raises(ReasonRequiredError):
        do_reset_threshold(
            conn,
            patient_id=patient,
            code="spo2",
            expected_version=1,
            author=physician,
            now=LATER,
            reason=reason,
        )
    assert stored_rows(conn, patient) == before


def test_an_override_with_a_reason_is_versioned_with_old_and_new_values_and_author(
    conn: psycopg.Connection, patient: UUID, plan: CarePlan, physician: UUID
) -> None:
    reason = "Habitual SpO2 89-91 % when stable"
    updated = do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=physician,
        now=LATER,
        reason=reason,
        thresholds=[Limits("spo2", low=88, red_low=85)],
    )
    assert (updated.version, updated.updated_at, updated.updated_by) == (2, LATER, physician)
    assert thresholds(updated)[SPO2] == PlanLimits(SPO2, 88, None, 85, None, reason)
    assert thresholds(updated)[PULSE].reason is None, "other limits stay template defaults"
    assert updated.measurements == plan.measurements
    assert updated.self_management == plan.self_management

    latest, first = care_plan_history(conn, patient_id=patient)
    assert (latest.version, latest.changed_by, latest.changed_at) == (2, physician, LATER)
    assert latest.reason == reason
    assert (latest.old, latest.new) == (care_plan_as_json(plan), care_plan_as_json(updated))
    assert first.new == latest.old
    old_spo2 = next(t for t in latest.old["thresholds"] if t["code"] == SPO2)
    new_spo2 = next(t for t in latest.new["thresholds"] if t["code"] == SPO2)
    assert (old_spo2["low"], old_spo2["red_low"], old_spo2["reason"]) == (94, 92, None)
    assert (new_spo2["low"], new_spo2["red_low"], new_spo2["reason"]) == (88, 85, reason)
    assert latest.new["updated_by"] == str(physician)


def test_schedule_text_and_scale_change_in_one_version(
    conn: psycopg.Connection, patient: UUID, plan: CarePlan, physician: UUID
) -> None:
    updated = do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=physician,
        now=LATER,
        reason="Hypercapnic on the last blood gas; daily PEF for the trend rule",
        measurements=[
            ScheduledMeasurement("spo2", every_hours=12, grace_hours=4),
            ScheduledMeasurement("pef", every_hours=24, grace_hours=12),
        ],
        self_management="Ring oss om metninga er under 88 %.",
        spo2_scale=2,
    )
    assert updated.version == 2
    assert set(updated.measurements) == {
        ScheduledMeasurement(SPO2, every_hours=12, grace_hours=4),
        ScheduledMeasurement(PEF, every_hours=24, grace_hours=12),
    }
    assert (updated.self_management, updated.spo2_scale) == (
        "Ring oss om metninga er under 88 %.",
        2,
    )
    assert thresholds(updated) == thresholds(plan)
    assert len(care_plan_history(conn, patient_id=patient)) == 2


@pytest.mark.parametrize(
    "change",
    [
        Limits("spo2"),  # no limit at all
        Limits("spo2", red_low=85),  # a red limit needs a yellow one (low = red_low)
        Limits("spo2", low=85, red_low=88),  # red above yellow
        Limits("pulse", low=100, high=60),
        Limits("pulse", low=60, high=60),
        Limits("pulse", high=120, red_high=110),
        Limits("pulse", red_low=60, high=60),
        Limits("pulse", red_low=100, red_high=40),
        Limits("pulse", low=float("nan")),
        Limits("pulse", high=float("inf")),
        Limits("glucose", low=4),  # not in the catalog
    ],
)
def test_inconsistent_limits_are_refused_and_change_nothing(
    conn: psycopg.Connection,
    patient: UUID,
    plan: CarePlan,
    physician: UUID,
    change: Limits,
) -> None:
    before = stored_rows(conn, patient)
    with pytest.raises(InvalidChangeError):
        do_update_care_plan(
            conn,
            patient_id=patient,
            expected_version=1,
            author=physician,
            now=LATER,
            reason="typo",
            thresholds=[change],
        )
    assert stored_rows(conn, patient) == before


@pytest.mark.parametrize(
    "change",
    [
        Limits("59408-5", low=90),
        Limits("2708-6", low=90, red_low=90),  # an alternative code; no yellow band
        Limits("spo2", low=85, red_low=85),
        Limits("pulse", red_low=40, low=50, high=110, red_high=110),
        Limits("pulse", high=120, red_high=140),
    ],
)
def test_consistent_limits_are_stored_under_the_canonical_code(
    conn: psycopg.Connection,
    patient: UUID,
    plan: CarePlan,
    physician: UUID,
    change: Limits,
) -> None:
    updated = do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=physician,
        now=LATER,
        reason="Individual limits",
        thresholds=[change],
    )
    code = SPO2 if change.code in ("59408-5", "2708-6", "spo2") else PULSE
    limits = (change.low, change.high, change.red_low, change.red_high)
    stored = thresholds(updated)[code]
    assert (stored.low, stored.high, stored.red_low, stored.red_high) == limits
    assert stored.reason == "Individual limits"


def test_two_entries_for_one_measurement_and_impossible_schedules_are_refused(
    conn: psycopg.Connection, patient: UUID, plan: CarePlan, physician: UUID
) -> None:
    before = stored_rows(conn, patient)
    refused: list[dict[str, Any]] = [
        {"thresholds": [Limits("spo2", low=90), Limits("59408-5", low=92)]},
        {"measurements": [ScheduledMeasurement("pulse", 24), ScheduledMeasurement("8867-4", 12)]},
        {"measurements": [ScheduledMeasurement("pulse", every_hours=0)]},
        {"measurements": [ScheduledMeasurement("pulse", every_hours=24 * 32)]},
        {"measurements": [ScheduledMeasurement("pulse", every_hours=24, grace_hours=-1)]},
        {"measurements": [ScheduledMeasurement("glucose", every_hours=24)]},
        {"spo2_scale": 3},
        {"self_management": "x" * 8001},
    ]
    for change in refused:
        with pytest.raises(InvalidChangeError):
            do_update_care_plan(
                conn,
                patient_id=patient,
                expected_version=1,
                author=physician,
                now=LATER,
                reason="typo",
                **change,
            )
    assert stored_rows(conn, patient) == before


def test_a_change_against_a_stale_version_is_refused_and_changes_nothing(
    conn: psycopg.Connection, patient: UUID, plan: CarePlan, physician: UUID, nurse: UUID
) -> None:
    do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=physician,
        now=NOW,
        reason="Individual limit",
        thresholds=[Limits("pulse", low=45, high=115)],
    )
    before = stored_rows(conn, patient)
    for stale in (1, 3):
        with pytest.raises(StaleVersionError):
            do_update_care_plan(
                conn,
                patient_id=patient,
                expected_version=stale,
                author=nurse,
                now=LATER,
                reason="Wider pulse limits",
                thresholds=[Limits("pulse", low=40, high=120)],
                spo2_scale=2,
            )
        with pytest.raises(StaleVersionError):
            do_reset_threshold(
                conn,
                patient_id=patient,
                code="pulse",
                expected_version=stale,
                author=nurse,
                now=LATER,
                reason="Back to default",
            )
    assert stored_rows(conn, patient) == before
    assert [v.version for v in care_plan_history(conn, patient_id=patient)] == [2, 1]


def test_a_change_to_a_patient_without_a_plan_is_refused(
    conn: psycopg.Connection, patient: UUID, physician: UUID
) -> None:
    with pytest.raises(StaleVersionError):
        do_update_care_plan(
            conn,
            patient_id=patient,
            expected_version=1,
            author=physician,
            now=NOW,
            reason="No plan yet",
        )


def _wait_until_blocked(conn: psycopg.Connection, *, waiting: int, on: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = conn.execute("SELECT %s = ANY(pg_blocking_pids(%s))", (on, waiting)).fetchone()
        if row is not None and row[0]:
            return
        time.sleep(0.02)
    raise AssertionError("the second change never waited for the first")


def test_of_two_concurrent_changes_against_one_version_the_second_loses(
    conn: psycopg.Connection,
    database_url: str,
    patient: UUID,
    plan: CarePlan,
    physician: UUID,
    nurse: UUID,
) -> None:
    with (
        psycopg.connect(database_url, autocommit=True) as first,
        psycopg.connect(database_url, autocommit=True) as second,
        ThreadPoolExecutor(max_workers=1) as executor,
    ):
        with first.transaction():
            do_update_care_plan(
                first,
                patient_id=patient,
                expected_version=1,
                author=physician,
                now=LATER,
                reason="Lower SpO2 limit agreed at the ward round",
                thresholds=[Limits("spo2", low=90, red_low=86)],
            )
            # Both read version 1; the second arrives while the first is still open.
            loser = executor.submit(
                do_update_care_plan,
                second,
                patient_id=patient,
                expected_version=1,
                author=nurse,
                now=LATER,
                reason="Wider pulse limits",
                thresholds=[Limits("pulse", low=40, high=120)],
            )
            _wait_until_blocked(conn, waiting=second.info.backend_pid, on=first.info.backend_pid)
        with pytest.raises(StaleVersionError):
            loser.result(timeout=30)
    final = get_care_plan(conn, patient_id=patient)
    assert final is not None
    assert (final.version, final.updated_by) == (2, physician)
    assert thresholds(final)[SPO2].low == 90
    assert thresholds(final)[PULSE] == thresholds(plan)[PULSE]
    assert [(v.version, v.changed_by) for v in care_plan_history(conn, patient_id=patient)] == [
        (2, physician),
        (1, None),
    ]


def test_a_reset_brings_back_the_template_default(
    conn: psycopg.Connection, patient: UUID, plan: CarePlan, physician: UUID, nurse: UUID
) -> None:
    do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=physician,
        now=NOW,
        reason="Trial of a lower limit",
        thresholds=[Limits("spo2", low=88), Limits("weight", high=95)],
    )
    reset = do_reset_threshold(
        conn,
        patient_id=patient,
        code="spo2",
        expected_version=2,
        author=nurse,
        now=LATER,
        reason="Back to default after the trial",
    )
    assert (reset.version, reset.updated_by) == (3, nurse)
    assert thresholds(reset)[SPO2] == thresholds(plan)[SPO2]
    assert thresholds(reset)[WEIGHT].reason == "Trial of a lower limit"
    latest = care_plan_history(conn, patient_id=patient)[0]
    assert (latest.version, latest.changed_by, latest.reason) == (
        3,
        nurse,
        "Back to default after the trial",
    )
    assert latest.old is not None
    old_spo2 = next(t for t in latest.old["thresholds"] if t["code"] == SPO2)
    assert (old_spo2["low"], old_spo2["reason"]) == (88, "Trial of a lower limit")

    # The template has no weight limit: a reset removes the override altogether.
    without = do_reset_threshold(
        conn,
        patient_id=patient,
        code="weight",
        expected_version=3,
        author=nurse,
        now=LATER,
        reason="Weight is followed by the weight-gain rule",
    )
    assert thresholds(without) == thresholds(plan)


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


def test_every_demo_patient_gets_a_plan_with_the_physicians_individual_limits(
    conn: psycopg.Connection,
) -> None:
    clock = ManualClock(NOW)
    assert seed_demo(conn, clock=clock, issuer=None)
    rows = conn.execute(
        "SELECT p.id, p.display_name, s.role FROM patients p"
        " JOIN care_plans c ON c.patient_id = p.id JOIN staff s ON s.id = c.updated_by"
    ).fetchall()
    assert {name for _, name, _ in rows} == {p.name for p in PATIENTS}
    assert {role for _, _, role in rows} == {"physician"}
    by_name = {name: patient for patient, name, _ in rows}
    for demo in PATIENTS:
        plan = get_care_plan(conn, patient_id=by_name[demo.name])
        assert plan is not None
        assert plan.template == ("copd" if Condition.COPD in demo.conditions else "heart_failure")
        assert plan.version == 2
        overridden = {t.code for t in plan.thresholds if t.reason == DEMO_REASON}
        assert overridden >= {PULSE}
        assert (WEIGHT in overridden) == any(d.kind == "scale" for d in demo.devices)
        # Scheduled: what the patient's devices measure, nothing they have no device for.
        measured = {catalog.BY_CODE[v.alias].code for d in demo.devices for v in d.vitals}
        assert {m.code for m in plan.measurements} == measured
        history = care_plan_history(conn, patient_id=by_name[demo.name])
        created = f"created from template {plan.template}"
        assert [v.reason for v in history] == [DEMO_REASON, created]

    before = conn.execute("SELECT count(*) FROM care_plan_versions").fetchone()
    clock.advance(timedelta(days=1))
    assert not seed_demo(conn, clock=clock, issuer=None)
    assert conn.execute("SELECT count(*) FROM care_plan_versions").fetchone() == before


@pytest.mark.parametrize(
    ("chosen", "target", "scale"),
    [(None, None, 1), (None, (88, 92), 2), (1, (88, 92), 1), (2, None, 2), (None, (92, 96), 1)],
)
def test_the_copd_plan_takes_the_scale_the_clinician_chooses_or_its_target_implies(
    conn: psycopg.Connection,
    patient: UUID,
    chosen: int | None,
    target: tuple[int, int] | None,
    scale: int,
) -> None:
    plan = do_create_care_plan(
        conn,
        patient_id=patient,
        template="copd",
        author=None,
        now=NOW,
        spo2_scale=chosen,
        spo2_target=target,
    )
    assert (plan.spo2_scale, plan.spo2_target) == (scale, target)
    assert care_plan_history(conn, patient_id=patient)[0].new["spo2_target"] == (
        None if target is None else list(target)
    )


def test_a_new_target_of_88_to_92_moves_the_plan_to_scale_2_in_a_new_version(
    conn: psycopg.Connection, patient: UUID
) -> None:
    nurse = staff(conn, "Sykepleier", "nurse")
    do_create_care_plan(conn, patient_id=patient, template="copd", author=None, now=NOW)
    plan = do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=nurse,
        now=LATER,
        reason="Hypercapnic on the last blood gas: target 88-92 %",
        spo2_target=(88, 92),
    )
    assert (plan.version, plan.spo2_scale, plan.spo2_target) == (2, 2, (88, 92))
    with pytest.raises(InvalidChangeError):
        do_update_care_plan(
            conn,
            patient_id=patient,
            expected_version=2,
            author=nurse,
            now=LATER,
            reason="typo",
            spo2_target=(95, 90),
        )
