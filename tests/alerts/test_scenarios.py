"""Thirty simulated days of seven patients through the real engine and database: each produces
exactly the alerts a clinician would expect, grouped in episodes that notify once per
severity step, and the stable ones none.

Readings are written as ingest writes them and evaluated as ingest evaluates them (the engine
at each reading's measured time); the time-based sweep runs every six hours. Values follow a
seeded generator, so every run sees the same thirty days. A nurse of the unit wants e-mail for
every yellow and red episode, so the outbox counts the notifications each deterioration makes.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerts.engine import do_evaluate, do_sweep
from care.careplan import do_create_care_plan
from care.models import Condition, OrganisationKind
from care.people import do_add_employment, do_create_staff
from care.service import do_create_organisation, do_create_patient
from core.auth import StaffRole
from core.limits import Limits
from devices.service import do_assign_device, do_register_device
from tests.conftest import CloneDatabase

START = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)  # 08:00 in Oslo
DAYS = 30
URL = "https://heimvakt.example"
SPO2, PULSE, PEF = "59408-5", "8867-4", "19935-6"
WEIGHT, SYSTOLIC, DIASTOLIC = "29463-7", "8480-6", "8462-4"

Day = Callable[[int, random.Random], dict[str, float] | None]
"""A patient's morning readings on a day (LOINC code -> value), or None: nothing measured."""


def stable_copd(day: int, rng: random.Random) -> dict[str, float]:
    readings: dict[str, float] = {
        SPO2: rng.choice([95, 95, 96, 96, 97]),
        PULSE: rng.randint(68, 82),
    }
    if day % 7 == 0:
        readings[PEF] = rng.randint(340, 360)
    return readings


def copd_exacerbation(day: int, rng: random.Random) -> dict[str, float]:
    readings = stable_copd(day, rng)
    if day >= 20:
        worse = day - 19
        readings[SPO2] = 96 - worse
        readings[PULSE] = 76 + 3 * worse
    return readings


def stable_heart_failure(day: int, rng: random.Random) -> dict[str, float]:
    return {
        WEIGHT: round(82.0 + rng.uniform(-0.3, 0.3), 1),
        SYSTOLIC: rng.randint(122, 136),
        DIASTOLIC: rng.randint(72, 84),
        PULSE: rng.randint(62, 76),
    }


def heart_failure_weight_gain(day: int, rng: random.Random) -> dict[str, float]:
    readings = stable_heart_failure(day, rng)
    if day >= 25:
        readings[WEIGHT] = round(82.0 + 0.8 * (day - 24), 1)
    return readings


def stops_measuring(day: int, rng: random.Random) -> dict[str, float] | None:
    return stable_copd(day, rng) if day < 15 else None


def stable_hypoxaemic_copd(day: int, rng: random.Random) -> dict[str, float]:
    """Chronic hypoxaemia at the prescribed 88-92 %: on NEWS2 scale 1, 91 % scores 3 alone."""
    readings: dict[str, float] = {
        SPO2: rng.choice([89, 90, 90, 91, 91, 92]),
        PULSE: rng.randint(70, 84),
    }
    if day % 7 == 0:
        readings[PEF] = rng.randint(240, 260)
    return readings


def oximeter_only(day: int, rng: random.Random) -> dict[str, float]:
    """Measures with the oximeter; the peak-flow meter it was given stays in its box."""
    readings = stable_copd(day, rng)
    readings.pop(PEF, None)
    return readings


NEW_DEVICE_DAY = 10
"""The day the backdated peak-flow meter is registered (its assignment says day -1)."""


@dataclass
class Simulated:
    name: str
    template: str
    days: Day
    devices: dict[str, str]
    """Device kind -> the codes it measures, e.g. {"pulse_oximeter": "59408-5 8867-4"}."""
    symptoms: Callable[[int], dict[str, bool]] | None = None
    expected: set[str] = field(default_factory=set)
    patient: UUID | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    """What the clinician set when making the plan (do_create_care_plan's keywords)."""
    new_devices: frozenset[str] = frozenset()
    """Device kinds registered on NEW_DEVICE_DAY with an assignment dated back to the start,
    never heard from."""
    devices_by_kind: dict[str, str] = field(default_factory=dict)


def no_symptoms(day: int) -> dict[str, bool]:
    return {"more_breathless": False, "more_swelling": False, "more_cough": False}


def swelling_from_day_27(day: int) -> dict[str, bool]:
    return {**no_symptoms(day), "more_swelling": day >= 27}


COPD_DEVICES = {"pulse_oximeter": f"{SPO2} {PULSE}", "peak_flow_meter": PEF}
HF_DEVICES = {"scale": WEIGHT, "blood_pressure_monitor": f"{SYSTOLIC} {DIASTOLIC} {PULSE}"}


def cast() -> list[Simulated]:
    return [
        Simulated("Stabil KOLS", "copd", stable_copd, COPD_DEVICES),
        Simulated(
            "KOLS-forverring",
            "copd",
            copd_exacerbation,
            COPD_DEVICES,
            expected={"threshold:59408-5:low", "spo2_drop:59408-5", "news2_partial"},
        ),
        Simulated(
            "Stabil hjertesvikt",
            "heart_failure",
            stable_heart_failure,
            HF_DEVICES,
            symptoms=no_symptoms,
        ),
        Simulated(
            "Hjertesvikt med vektøkning",
            "heart_failure",
            heart_failure_weight_gain,
            HF_DEVICES,
            symptoms=swelling_from_day_27,
            expected={"weight_gain:29463-7", "daily_symptoms"},
        ),
        Simulated(
            "Slutter å måle",
            "copd",
            stops_measuring,
            COPD_DEVICES,
            expected={
                "missing_measurement:59408-5",
                "missing_measurement:8867-4",
                "missing_measurement:19935-6",
                "device_silent:{pulse_oximeter}",
                "device_silent:{peak_flow_meter}",
            },
        ),
        Simulated(
            "Stabil hypoksemisk KOLS",
            "copd",
            stable_hypoxaemic_copd,
            COPD_DEVICES,
            plan={
                "spo2_target": (88, 92),
                "limits": [
                    Limits(SPO2, low=88, red_low=86),
                    Limits(PULSE, low=51, high=110, red_low=41, red_high=130),
                ],
            },
        ),
        Simulated(
            "Ny måler, tilbakedatert",
            "copd",
            oximeter_only,
            COPD_DEVICES,
            new_devices=frozenset({"peak_flow_meter"}),
            expected={"missing_measurement:19935-6", "device_silent:{peak_flow_meter}"},
        ),
    ]


def _seed(conn: psycopg.Connection, patients: list[Simulated]) -> dict[UUID, dict[str, str]]:
    unit = do_create_organisation(conn, name="Kommunen", kind=OrganisationKind.MUNICIPAL_SERVICE)
    nurse = do_create_staff(conn, display_name="Sykepleier", role=StaffRole.NURSE).id
    do_add_employment(conn, staff_id=nurse, organisation_id=unit, since=START - timedelta(days=2))
    conn.execute(
        "INSERT INTO notification_subscriptions (staff_id, channel, address, min_severity)"
        " VALUES (%s, 'email', 'vakt@example.org', 'yellow')",
        (nurse,),
    )
    devices_of: dict[UUID, dict[str, str]] = {}
    for simulated in patients:
        condition = Condition.COPD if simulated.template == "copd" else Condition.HEART_FAILURE
        simulated.patient = do_create_patient(
            conn,
            display_name=simulated.name,
            conditions=[condition],
            responsible_unit=unit,
            since=START - timedelta(days=1),
        )
        do_create_care_plan(
            conn,
            patient_id=simulated.patient,
            template=simulated.template,
            author=None,
            now=START - timedelta(days=1),
            **simulated.plan,
        )
        codes_to_device = {}
        for kind, codes in simulated.devices.items():
            device = f"{kind}-{uuid4().hex[:6]}"
            registered = START + timedelta(
                days=NEW_DEVICE_DAY if kind in simulated.new_devices else -1
            )
            do_register_device(conn, device_id=device, kind=kind, now=registered)
            do_assign_device(
                conn,
                device_id=device,
                patient_id=simulated.patient,
                valid_from=START - timedelta(days=1),
            )
            simulated.devices_by_kind[kind] = device
            simulated.expected = {e.replace(f"{{{kind}}}", device) for e in simulated.expected}
            for code in codes.split():
                codes_to_device[code] = device
        devices_of[simulated.patient] = codes_to_device
    return devices_of


def _moments() -> Iterator[tuple[int, datetime]]:
    for day in range(DAYS):
        yield day, START + timedelta(days=day)


def _run(conn: psycopg.Connection, patients: list[Simulated]) -> None:
    devices_of = _seed(conn, patients)
    rng = random.Random(20261122)
    next_sweep = START
    for day, morning in _moments():
        while next_sweep <= morning:
            do_sweep(conn, now=next_sweep)
            next_sweep += timedelta(hours=6)
        for simulated in patients:
            assert simulated.patient is not None
            at = morning + timedelta(minutes=rng.randint(0, 45))
            readings = simulated.days(day, rng)
            if readings is None:
                continue
            with conn.transaction():
                quiet = {simulated.devices_by_kind[kind] for kind in simulated.new_devices}
                for device in set(devices_of[simulated.patient].values()) - quiet:
                    _heard_from(conn, device, at)
                for code, value in readings.items():
                    _store(
                        conn,
                        simulated.patient,
                        devices_of[simulated.patient][code],
                        code,
                        value,
                        at,
                    )
                if simulated.symptoms is not None:
                    conn.execute(
                        "INSERT INTO questionnaire_responses (patient_id, kind, answered_at,"
                        " answers, received_at) VALUES (%s, 'daily_symptoms', %s, %s, %s)",
                        (simulated.patient, at, Jsonb(simulated.symptoms(day)), at),
                    )
                do_evaluate(
                    conn,
                    moments={simulated.patient: [at]},
                    now=at + timedelta(seconds=2),
                )
    end = START + timedelta(days=DAYS)
    while next_sweep <= end:
        do_sweep(conn, now=next_sweep)
        next_sweep += timedelta(hours=6)


def _heard_from(conn: psycopg.Connection, device: str, at: datetime) -> None:
    """The gateway's daily status report for each device it serves (docs/mqtt.md)."""
    conn.execute(
        "INSERT INTO device_status (device_id, last_seen_at) VALUES (%s, %s)"
        " ON CONFLICT (device_id) DO UPDATE SET last_seen_at = greatest("
        " device_status.last_seen_at, EXCLUDED.last_seen_at)",
        (device, at),
    )


def _store(
    conn: psycopg.Connection, patient: UUID, device: str, code: str, value: float, at: datetime
) -> None:
    """As ingest stores a reading."""
    unit = {
        SPO2: "%",
        PULSE: "/min",
        PEF: "L/min",
        WEIGHT: "kg",
        SYSTOLIC: "mm[Hg]",
        DIASTOLIC: "mm[Hg]",
    }[code]
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, msg_id,"
        " received_at) VALUES (%s, %s, %s, %s, %s, %s, gen_random_uuid(), %s)",
        (device, code, at, patient, value, unit, at),
    )


@dataclass
class Outcome:
    """What the month left per patient."""

    alerts: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(instance, severity, first measured) of each alert, in the order opened."""
    episodes: list[tuple[str, str, set[str]]] = field(default_factory=list)
    """(problem, severity, instances of its parts) of each episode."""
    notified: list[str] = field(default_factory=list)
    """The severity of each e-mail the nurse got about the patient, in order."""


@pytest.fixture(scope="module")
def simulated_month(
    clone_database: CloneDatabase,
) -> Iterator[tuple[list[Simulated], dict[UUID, Outcome]]]:
    with clone_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            patients = cast()
            _run(conn, patients)
            outcome: dict[UUID, Outcome] = defaultdict(Outcome)
            for patient, instance, severity, first in conn.execute(
                "SELECT patient_id, rule_id, severity, first_measured_at FROM alerts ORDER BY id"
            ):
                outcome[patient].alerts.append((instance, severity, first))
            for patient, problem, severity, parts in conn.execute(
                "SELECT e.patient_id, e.problem, e.severity, array_agg(a.rule_id)"
                " FROM alert_episodes e JOIN alerts a ON a.episode_id = e.id"
                " GROUP BY e.id ORDER BY e.id"
            ):
                outcome[patient].episodes.append((problem, severity, set(parts)))
            for patient, severity in conn.execute(
                "SELECT e.patient_id, n.message->>'severity' FROM notifications n"
                " JOIN alert_episodes e ON e.id = n.episode_id ORDER BY n.created_at, n.id"
            ):
                outcome[patient].notified.append(severity)
        yield patients, outcome


Month = tuple[list[Simulated], dict[UUID, Outcome]]


def _of(month: Month, name: str) -> tuple[Simulated, Outcome]:
    patients, outcome = month
    simulated = next(p for p in patients if p.name == name)
    assert simulated.patient is not None
    return simulated, outcome[simulated.patient]


@pytest.mark.parametrize("index", range(len(cast())), ids=[p.name for p in cast()])
def test_each_patient_gets_exactly_the_expected_alerts(simulated_month: Month, index: int) -> None:
    simulated, outcome = _of(simulated_month, cast()[index].name)
    instances = [instance for instance, _severity, _first in outcome.alerts]
    assert sorted(instances) == sorted(simulated.expected), "one alert per expected instance"


def test_the_copd_exacerbation_is_one_episode_of_three_reasons_notified_once_per_step(
    simulated_month: Month,
) -> None:
    _simulated, outcome = _of(simulated_month, "KOLS-forverring")
    assert outcome.episodes == [
        ("clinical", "red", {"threshold:59408-5:low", "spo2_drop:59408-5", "news2_partial"})
    ]
    assert outcome.notified == ["yellow", "red"], "one e-mail as it starts, one as it turns red"


def test_every_deterioration_notifies_once_per_severity_step(simulated_month: Month) -> None:
    """Before episodes the same month sent the exacerbation 3 e-mails (one per rule, and its
    turn to red none: it had escalated to an on-call contact the unit had not set), the
    weight gain 2 and the patient who stopped measuring 5 (one per code and device)."""
    patients, outcome = simulated_month
    print()
    for simulated in patients:
        assert simulated.patient is not None
        mine = outcome[simulated.patient]
        print(
            f"{simulated.name}: {len(mine.alerts)} alerts in {len(mine.episodes)} episodes,"
            f" notified {mine.notified}"
        )
    _simulated, weight = _of(simulated_month, "Hjertesvikt med vektøkning")
    assert weight.episodes == [("clinical", "red", {"weight_gain:29463-7", "daily_symptoms"})]
    assert weight.notified == ["red"], "the weight gain came with swelling: red at once"
    _simulated, stopped = _of(simulated_month, "Slutter å måle")
    assert sorted(problem for problem, _s, _p in stopped.episodes) == ["adherence", "technical"]
    assert stopped.notified == ["yellow", "yellow"], "one per episode, not one per device or code"


def test_deterioration_reaches_red_where_it_should(simulated_month: Month) -> None:
    _simulated, copd = _of(simulated_month, "KOLS-forverring")
    _simulated, weight = _of(simulated_month, "Hjertesvikt med vektøkning")
    assert ("threshold:59408-5:low", "red") in [(i, s) for i, s, _f in copd.alerts]
    assert ("weight_gain:29463-7", "red") in [(i, s) for i, s, _f in weight.alerts], (
        "a positive symptom answer raises the weight finding (symptom gating)"
    )


def test_a_stable_hypoxaemic_patient_on_a_target_of_88_to_92_gets_no_alert_in_30_days(
    simulated_month: Month,
) -> None:
    _simulated, outcome = _of(simulated_month, "Stabil hypoksemisk KOLS")
    assert outcome.alerts == [], "scale 2 from the plan's target: 89-92 % scores 0"


def test_a_backdated_new_device_is_silent_only_once_its_schedule_says_a_reading_is_overdue(
    simulated_month: Month,
) -> None:
    simulated, outcome = _of(simulated_month, "Ny måler, tilbakedatert")
    device = simulated.devices_by_kind["peak_flow_meter"]
    (silent,) = [first for i, _s, first in outcome.alerts if i == f"device_silent:{device}"]
    registered = START + timedelta(days=NEW_DEVICE_DAY)
    longest = timedelta(hours=24 * 7 + 24)  # the COPD template's weekly PEF and its grace
    assert registered + longest < silent <= registered + longest + timedelta(hours=6)


def test_stable_patients_get_no_alerts_per_patient_week(simulated_month: Month) -> None:
    patients, outcome = simulated_month
    stable = [p for p in patients if not p.expected]
    alerts = sum(len(outcome[p.patient].alerts) for p in stable if p.patient is not None)
    patient_weeks = len(stable) * DAYS / 7
    print(
        f"\nstable patients: {alerts} alerts over {patient_weeks:.1f} patient-weeks"
        f" = {alerts / patient_weeks:.2f} per patient-week"
    )
    assert alerts == 0
