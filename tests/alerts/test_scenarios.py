"""Thirty simulated days of seven patients through the real engine and database: each produces
exactly the alerts a clinician would expect, grouped in episodes that notify once per
severity step, and the stable ones none.

Readings are written as ingest writes them and evaluated as ingest evaluates them (the engine
at each reading's measured time); the time-based sweep runs every six hours. Values follow a
seeded generator, so every run sees the same thirty days. A nurse of the unit wants e-mail for
every yellow and red episode, so the outbox counts the notifications each deterioration makes.
The patient who stops measuring has chosen e-mail reminders: she is reminded first, and the
nurse alerted only after the reminder's second deadline (alerts/reminders.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerts.engine import do_evaluate, do_sweep
from alerts.reminders import do_choose_reminder_channel
from care.careplan import do_create_care_plan
from care.models import Condition, OrganisationKind
from care.people import do_add_employment, do_create_staff
from care.service import do_create_organisation, do_create_patient
from core.auth import StaffRole
from core.clock import DISPLAY_TIMEZONE
from devices.scenarios import (
    DIASTOLIC,
    NEW_DEVICE_DAY,
    PEF,
    PULSE,
    SCENARIOS,
    SPO2,
    SYSTOLIC,
    WEIGHT,
    Scenario,
    mornings,
)
from devices.service import do_assign_device, do_register_device
from tests.conftest import CloneDatabase

START = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)  # 08:00 in Oslo
DAYS = 30
SEED = 20261122
URL = "https://heimvakt.example"
REMINDED = "Slutter å måle"
"""The one patient who has chosen reminders (by e-mail)."""


@dataclass
class Simulated:
    """One scenario patient as seeded for this run."""

    scenario: Scenario
    patient: UUID | None = None
    devices_by_kind: dict[str, str] = field(default_factory=dict)
    expected: set[str] = field(default_factory=set)
    """The scenario's expected alerts, with the device ids of this run."""

    @property
    def name(self) -> str:
        return self.scenario.name


def cast() -> list[Simulated]:
    return [Simulated(s, expected=set(s.expected)) for s in SCENARIOS]


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
        scenario = simulated.scenario
        condition = Condition.COPD if scenario.template == "copd" else Condition.HEART_FAILURE
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
            template=scenario.template,
            author=None,
            now=START - timedelta(days=1),
            **scenario.plan,
        )
        if simulated.name == REMINDED:
            do_choose_reminder_channel(
                conn,
                patient_id=simulated.patient,
                channel="email",
                address="pasient@example.org",
                now=START - timedelta(days=1),
            )
        codes_to_device = {}
        for kind, codes in scenario.devices.items():
            device = f"{kind}-{uuid4().hex[:6]}"
            registered = START + timedelta(
                days=NEW_DEVICE_DAY if kind in scenario.new_devices else -1
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
            for code in codes:
                codes_to_device[code] = device
        devices_of[simulated.patient] = codes_to_device
    return devices_of


def _run(conn: psycopg.Connection, patients: list[Simulated]) -> None:
    devices_of = _seed(conn, patients)
    next_sweep = START
    scenarios = [p.scenario for p in patients]
    for morning in mornings(scenarios, seed=SEED, days=DAYS, start=START):
        while next_sweep <= START + timedelta(days=morning.day):
            do_sweep(conn, now=next_sweep)
            next_sweep += timedelta(hours=6)
        simulated, at = patients[morning.patient], morning.at
        assert simulated.patient is not None
        with conn.transaction():
            quiet = {simulated.devices_by_kind[kind] for kind in simulated.scenario.new_devices}
            for device in set(devices_of[simulated.patient].values()) - quiet:
                _heard_from(conn, device, at)
            for code, value in morning.readings.items():
                _store(
                    conn, simulated.patient, devices_of[simulated.patient][code], code, value, at
                )
            if morning.symptoms is not None:
                conn.execute(
                    "INSERT INTO questionnaire_responses (patient_id, kind, answered_at,"
                    " answers, received_at) VALUES (%s, 'daily_symptoms', %s, %s, %s)",
                    (simulated.patient, at, Jsonb(dict(morning.symptoms)), at),
                )
            do_evaluate(conn, moments={simulated.patient: [at]}, now=at + timedelta(seconds=2))
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
        "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
        " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
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
    reminded: dict[str, datetime] = field(default_factory=dict)
    """When the patient was reminded of each measurement."""
    reminder_messages: int = 0


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
            for patient, code, sent in conn.execute(
                "SELECT patient_id, code, sent_at FROM reminders WHERE recipients > 0"
            ):
                outcome[patient].reminded[code] = sent
            for patient, messages in conn.execute(
                "SELECT r.patient_id, count(*) FROM notifications n"
                " JOIN reminders r ON r.id = n.reminder_id GROUP BY r.patient_id"
            ):
                outcome[patient].reminder_messages = messages
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


def test_the_patient_who_stops_measuring_is_reminded_before_the_nurse_is_alerted(
    simulated_month: Month,
) -> None:
    patients, outcome = simulated_month
    _simulated, stopped = _of(simulated_month, REMINDED)
    missing = {
        instance.partition(":")[2]: first
        for instance, _s, first in stopped.alerts
        if instance.startswith("missing_measurement:")
    }
    assert stopped.reminded.keys() == missing.keys() == {SPO2, PULSE, PEF}
    for code, reminded in stopped.reminded.items():
        assert 8 <= reminded.astimezone(DISPLAY_TIMEZONE).hour < 21, "never at night"
        assert reminded + timedelta(hours=3) <= missing[code], "the nurse only after 3 hours"
    assert stopped.reminded[SPO2] == stopped.reminded[PULSE]
    assert stopped.reminder_messages == 2, "SpO2 and pulse missed at once: one message"
    others = [p.patient for p in patients if p.name != REMINDED and p.patient is not None]
    assert not any(outcome[patient].reminded for patient in others), "none chose reminders"


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
