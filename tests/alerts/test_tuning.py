"""Per-patient tuning through the versioned care plan: a tuned rule parameter changes the
outcome at its tuned boundary, and the change is in the plan's history with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from alerts.engine import do_evaluate, do_sweep
from care.careplan import InvalidChangeError, care_plan_history, do_update_care_plan
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient
from core.limits import Limits
from devices.service import do_assign_device, do_register_device
from tests.support import care_team_member, plan_with_limits

START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
WEIGHT = "29463-7"


@pytest.fixture
def patient(conn: psycopg.Connection) -> UUID:
    unit = do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE)
    patient = do_create_patient(
        conn,
        display_name="Tunet Pasient",
        conditions=[Condition.HEART_FAILURE],
        responsible_unit=unit,
        since=START - timedelta(days=30),
    )
    plan_with_limits(conn, patient, Limits("8867-4", low=40, high=120), now=START)
    return patient


def _weigh(conn: psycopg.Connection, patient: UUID, kg: float, at: datetime) -> None:
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
        " received_at) VALUES ('scale-1', %s, %s, %s, %s, 'kg', %s)",
        (WEIGHT, at, patient, kg, at),
    )
    do_evaluate(conn, moments={patient: [at]}, now=at + timedelta(seconds=1))


def _alerts(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT rule_id FROM alerts ORDER BY id")]


def test_a_tuned_weight_limit_changes_the_outcome_at_its_boundary_and_is_in_the_history(
    conn: psycopg.Connection, patient: UUID
) -> None:
    nurse = care_team_member(conn, patient_id=patient, since=START - timedelta(days=1))
    _weigh(conn, patient, 80.0, START)
    _weigh(conn, patient, 81.0, START + timedelta(days=1))
    assert _alerts(conn) == [], "1.0 kg in a day is below the default 1.5 kg"
    reason = "Small patient: 1 kg in a day is already fluid for her"
    do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=nurse.uuid,
        now=START + timedelta(days=1, hours=2),
        reason=reason,
        rule_parameters={"weight_gain.kg_in_1_day": 1.0},
    )
    _weigh(conn, patient, 82.0, START + timedelta(days=2))
    assert _alerts(conn) == [f"weight_gain:{WEIGHT}"], "1.0 kg in a day: at the tuned limit"
    latest = care_plan_history(conn, patient_id=patient)[0]
    assert latest.reason == reason
    assert latest.old is not None
    assert latest.old["rule_parameters"] == {}
    assert latest.new["rule_parameters"] == {"weight_gain.kg_in_1_day": 1.0}
    do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=2,
        author=nurse.uuid,
        now=START + timedelta(days=2, hours=2),
        reason="Back to the default",
        rule_parameters={"weight_gain.kg_in_1_day": None},
    )
    assert care_plan_history(conn, patient_id=patient)[0].new["rule_parameters"] == {}


@pytest.mark.parametrize(
    "parameters",
    [
        {"weight_gain.kg_in_1_day": 0.1},
        {"no_such.parameter": 1.0},
        {"weight_gain.window_days": 2.5},
    ],
)
def test_a_parameter_out_of_range_or_unknown_is_refused(
    conn: psycopg.Connection, patient: UUID, parameters: dict[str, float | None]
) -> None:
    nurse = care_team_member(conn, patient_id=patient, since=START - timedelta(days=1))
    with pytest.raises(InvalidChangeError):
        do_update_care_plan(
            conn,
            patient_id=patient,
            expected_version=1,
            author=nurse.uuid,
            now=START,
            reason="try",
            rule_parameters=parameters,
        )


def test_the_silent_device_limit_is_tuned_per_patient_and_counts_from_registration(
    conn: psycopg.Connection, patient: UUID
) -> None:
    nurse = care_team_member(conn, patient_id=patient, since=START - timedelta(days=1))
    registered = START + timedelta(days=5)
    do_register_device(conn, device_id="bp-9", kind="blood_pressure_monitor", now=registered)
    do_assign_device(
        conn, device_id="bp-9", patient_id=patient, valid_from=START - timedelta(days=3)
    )
    do_sweep(conn, now=registered + timedelta(hours=47))
    assert _alerts(conn) == [], "no schedule: 48 hours from registration, not the assignment"
    do_update_care_plan(
        conn,
        patient_id=patient,
        expected_version=1,
        author=nurse.uuid,
        now=registered + timedelta(hours=1),
        reason="The monitor reports every hour: 12 hours of silence is a fault",
        rule_parameters={"device_silent.hours": 12},
    )
    do_sweep(conn, now=registered + timedelta(hours=47, minutes=30))
    assert _alerts(conn) == ["device_silent:bp-9"]
