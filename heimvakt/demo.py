"""The demo helsefellesskap: a hospital, a municipality, ten synthetic patients and their devices.

Every person here is invented. The demo is seeded once; a second start finds it and reuses it.
Each patient has a care plan from the condition's template, with individual limits and the
schedule of the patient's own devices set by the demo physician, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

import psycopg

from care.careplan import do_create_care_plan, do_update_care_plan
from care.models import Condition, OrganisationKind
from care.people import (
    do_add_employment,
    do_add_team_member,
    do_add_team_patient,
    do_create_care_team,
    do_create_staff,
    do_link_identity,
)
from care.proxies import ProxyScope, do_accept_invitation, do_invite_relative
from care.service import do_create_organisation, do_create_patient
from care.templates import TEMPLATES, ScheduledMeasurement
from core import catalog
from core.auth import Principal, StaffRole
from core.clock import Clock
from core.limits import Limits
from core.local_accounts import do_create_local_account
from devices.service import do_assign_device, do_register_device
from devices.simulator import SimulatedDevice, Vital

HOSPITAL = "Demo sykehus, lungemedisinsk avdeling"
MUNICIPALITY = "Demo kommune, oppfølgingstjenesten"


@dataclass(frozen=True, slots=True)
class DemoPatient:
    key: str
    name: str
    birth_date: date
    conditions: tuple[Condition, ...]
    at_hospital: bool
    thresholds: tuple[Limits, ...]
    """Individual limits: they replace the template's for these measurements."""
    devices: tuple[SimulatedDevice, ...]

    @property
    def template(self) -> str:
        """The care-plan template; COPD first for a patient with both conditions."""
        return "copd" if Condition.COPD in self.conditions else "heart_failure"


def _oximeter(key: str, spo2: float, pulse: float, spo2_change: float = 0.0) -> SimulatedDevice:
    return SimulatedDevice(
        device_id=f"demo-ox-{key}",
        kind="pulse_oximeter",
        vitals=(
            Vital("spo2", "%", spo2, 0.8, spo2_change),
            Vital("pulse", "/min", pulse, 4.0),
        ),
    )


def _deteriorating_oximeter(key: str, *, spo2: float, pulse: float) -> SimulatedDevice:
    """Steady in the history; once the present plays, SpO2 falls 6 points a minute to 83 %
    and the pulse climbs 12 beats a minute to 122."""
    return SimulatedDevice(
        device_id=f"demo-ox-{key}",
        kind="pulse_oximeter",
        vitals=(
            Vital("spo2", "%", spo2, 0.6, live_change_per_minute=-6.0, live_limit=83),
            Vital("pulse", "/min", pulse, 3.0, live_change_per_minute=12.0, live_limit=122),
        ),
    )


def _cuff(key: str, systolic: float, diastolic: float) -> SimulatedDevice:
    return SimulatedDevice(
        device_id=f"demo-bp-{key}",
        kind="blood_pressure_monitor",
        vitals=(Vital("sys", "mm[Hg]", systolic, 5.0), Vital("dia", "mm[Hg]", diastolic, 3.0)),
    )


def _scale(key: str, weight: float, change: float = 0.0) -> SimulatedDevice:
    return SimulatedDevice(
        device_id=f"demo-scale-{key}",
        kind="scale",
        vitals=(Vital("weight", "kg", weight, 0.2, change, decimals=1),),
    )


def _peak_flow(key: str, pef: float) -> SimulatedDevice:
    return SimulatedDevice(
        device_id=f"demo-pef-{key}",
        kind="peak_flow_meter",
        vitals=(Vital("pef", "L/min", pef, 15.0),),
        every_days=7,  # as the COPD template schedules it
    )


_COPD_LIMITS = (
    Limits("spo2", low=90, red_low=86),
    Limits("pulse", low=45, high=115, red_low=40, red_high=130),
)
_HF_LIMITS = (
    Limits("sys", low=95, high=170, red_low=85, red_high=180),
    Limits("pulse", low=45, high=110, red_low=40, red_high=120),
)
DEMO_REASON = "Demo: individual limits, and the schedule of the patient's own devices"

PATIENTS: tuple[DemoPatient, ...] = (
    DemoPatient(
        "01",
        "Astrid Testesen",
        date(1948, 3, 14),
        (Condition.COPD,),
        False,
        _COPD_LIMITS,
        (_oximeter("01", 94, 78), _peak_flow("01", 310)),
    ),
    # Falling saturation over the week: the demo's first alert.
    DemoPatient(
        "02",
        "Bjørn Prøvestad",
        date(1951, 9, 2),
        (Condition.COPD,),
        True,
        _COPD_LIMITS,
        (_oximeter("02", 87, 96, spo2_change=-1.0), _peak_flow("02", 240)),
    ),
    DemoPatient(
        "03",
        "Cecilie Eksempel",
        date(1944, 12, 30),
        (Condition.HEART_FAILURE,),
        False,
        _HF_LIMITS,
        (_cuff("03", 128, 76), _scale("03", 71.5), _oximeter("03", 96, 68)),
    ),
    # Gaining weight: fluid retention in heart failure.
    DemoPatient(
        "04",
        "Dagfinn Fiktiv",
        date(1956, 5, 21),
        (Condition.HEART_FAILURE,),
        True,
        _HF_LIMITS,
        (_cuff("04", 118, 72), _scale("04", 88.0, change=0.5)),
    ),
    DemoPatient(
        "05",
        "Eldbjørg Demo",
        date(1939, 7, 8),
        (Condition.COPD, Condition.HEART_FAILURE),
        False,
        _COPD_LIMITS + _HF_LIMITS[:1],
        (_oximeter("05", 93, 84), _cuff("05", 134, 80)),
    ),
    # The story: stable for a month, then, while the nurse watches, his saturation falls and
    # his pulse climbs: yellow within a minute, red within two (docs/devices.md).
    DemoPatient(
        "06",
        "Frode Syntetisk",
        date(1962, 1, 17),
        (Condition.COPD,),
        False,
        _COPD_LIMITS,
        (_deteriorating_oximeter("06", spo2=94, pulse=76), _peak_flow("06", 380)),
    ),
    DemoPatient(
        "07",
        "Gunn Oppdiktet",
        date(1947, 10, 3),
        (Condition.HEART_FAILURE,),
        False,
        _HF_LIMITS,
        (_cuff("07", 110, 68), _scale("07", 64.2)),
    ),
    DemoPatient(
        "08",
        "Halvard Prøve",
        date(1953, 4, 26),
        (Condition.COPD,),
        False,
        _COPD_LIMITS,
        (_oximeter("08", 92, 88),),
    ),
    DemoPatient(
        "09",
        "Ingrid Tenkt",
        date(1958, 8, 11),
        (Condition.HEART_FAILURE,),
        True,
        _HF_LIMITS,
        (_cuff("09", 142, 84), _scale("09", 79.9), _oximeter("09", 97, 74)),
    ),
    DemoPatient(
        "10",
        "Jon Modell",
        date(1941, 2, 9),
        (Condition.COPD,),
        False,
        _COPD_LIMITS,
        (_oximeter("10", 94, 80), _peak_flow("10", 290)),
    ),
)


def _limits(patient: DemoPatient) -> tuple[Limits, ...]:
    """The patient's limits; a weight limit is personal: 2 kg above their weight a week ago."""
    scales = [d for d in patient.devices if d.kind == "scale"]
    if not scales:
        return patient.thresholds
    weight = scales[0].vitals[0]
    usual = weight.now - 7 * weight.change_per_day
    return (*patient.thresholds, Limits("weight", high=round(usual + 2.0, 1)))


def _schedule(patient: DemoPatient) -> list[ScheduledMeasurement]:
    """What the patient's devices measure, as often as the template asks (daily otherwise):
    no demo patient is reminded of a measurement they have no device for."""
    template = {m.code: m for m in TEMPLATES[patient.template].measurements}
    codes = {catalog.BY_CODE[v.alias].code for device in patient.devices for v in device.vitals}
    return [
        template.get(code, ScheduledMeasurement(code, every_hours=24, grace_hours=12))
        for code in sorted(codes)
    ]


def simulated_devices() -> list[SimulatedDevice]:
    return [device for patient in PATIENTS for device in patient.devices]


DEMO_PASSWORD = "heimvakt-demo"  # noqa: S105  # synthetic demo log-ins, printed at start
DEMO_TEAM = "Demo helsefellesskap: KOLS og hjertesvikt"
DEMO_STAFF = (
    # user name, name, role, works for the hospital
    ("sykepleier", "Siri Sykepleier", StaffRole.NURSE, False),
    ("lege", "Lars Lege", StaffRole.PHYSICIAN, True),
    ("koordinator", "Kari Koordinator", StaffRole.COORDINATOR, False),
    ("admin", "Arne Administrator", StaffRole.ADMINISTRATOR, True),
)
DEMO_MAIL_DOMAIN = "@demo.heimvakt.invalid"
"""The demo staff's e-mail domain: `.invalid` can never be delivered to (RFC 2606)."""
DEMO_PATIENT_LOGIN = "pasient"
"""Logs in as the first demo patient."""
DEMO_RELATIVE_LOGIN = "parorende"
"""Logs in as the first demo patient's relative, who may see her page and answer for her."""
DEMO_RELATIVE = "Siri Pårørende"
DEMO_CONSENT_DAYS = 365


def seed_demo(conn: psycopg.Connection, *, clock: Clock, issuer: str | None) -> bool:
    """Create the demo once; returns False when it was already there. With the local
    `issuer`, it also makes log-ins for the demo staff and the first patient."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('heimvakt-demo'))")
        if conn.execute("SELECT 1 FROM organisations WHERE name = %s", (HOSPITAL,)).fetchone():
            return False
        now = clock.now()
        since = now - timedelta(days=30)
        hospital = do_create_organisation(
            conn, name=HOSPITAL, kind=OrganisationKind.HOSPITAL_DEPARTMENT
        )
        municipality = do_create_organisation(
            conn, name=MUNICIPALITY, kind=OrganisationKind.MUNICIPAL_SERVICE
        )
        team = do_create_care_team(conn, name=DEMO_TEAM).id
        physician: UUID | None = None
        for username, name, role, at_hospital in DEMO_STAFF:
            person = do_create_staff(conn, display_name=name, role=role).id
            if role is StaffRole.PHYSICIAN:
                physician = person
            employer = hospital if at_hospital else municipality
            do_add_employment(conn, staff_id=person, organisation_id=employer, since=since)
            if role is not StaffRole.ADMINISTRATOR:
                do_add_team_member(conn, team_id=team, staff_id=person, since=since)
            if issuer is not None:
                _log_in_as(conn, issuer=issuer, username=username, staff_id=person)
            if role is not StaffRole.ADMINISTRATOR:
                # Every alert of their unit by e-mail: with no SMTP server configured, the
                # demo outbox on the worklist shows these notifications.
                conn.execute(
                    "INSERT INTO notification_subscriptions (staff_id, channel, address,"
                    " min_severity) VALUES (%s, 'email', %s, 'yellow')",
                    (person, f"{username}{DEMO_MAIL_DOMAIN}"),
                )
        for index, patient in enumerate(PATIENTS):
            patient_id = do_create_patient(
                conn,
                display_name=patient.name,
                birth_date=patient.birth_date,
                conditions=list(patient.conditions),
                responsible_unit=hospital if patient.at_hospital else municipality,
                since=since,
            )
            do_add_team_patient(conn, team_id=team, patient_id=patient_id, since=since)
            if index == 0 and issuer is not None:
                _log_in_as(conn, issuer=issuer, username=DEMO_PATIENT_LOGIN, patient_id=patient_id)
                _relative_of(conn, issuer=issuer, patient_id=patient_id, now=now)
            # Dated now, not `since`: a schedule counts as missed from the plan's start until the
            # first reading, and the simulator's history arrives only after the seeding.
            assert physician is not None
            do_create_care_plan(
                conn, patient_id=patient_id, template=patient.template, author=physician, now=now
            )
            do_update_care_plan(
                conn,
                patient_id=patient_id,
                expected_version=1,
                author=physician,
                now=now,
                reason=DEMO_REASON,
                thresholds=_limits(patient),
                measurements=_schedule(patient),
            )
            for device in patient.devices:
                do_register_device(
                    conn, device_id=device.device_id, kind=device.kind, vendor="Heimvakt simulator"
                )
                do_assign_device(
                    conn, device_id=device.device_id, patient_id=patient_id, valid_from=since
                )
    return True


def _relative_of(conn: psycopg.Connection, *, issuer: str, patient_id: UUID, now: datetime) -> None:
    """The patient's relative, invited by the patient (see her page, answer for her) and
    accepted with the demo's log-in, as care/proxies.py does it."""
    invitation = do_invite_relative(
        conn,
        patient_id=patient_id,
        display_name=DEMO_RELATIVE,
        email=None,
        scope=ProxyScope(see_own_view=True, receive_reminders=False, answer_questionnaires=True),
        valid_to=now + timedelta(days=DEMO_CONSENT_DAYS),
        inviter=Principal(kind="patient", id=str(patient_id), name="", role="patient"),
        consent_note=None,
        now=now,
    )
    subject = do_create_local_account(
        conn, username=DEMO_RELATIVE_LOGIN, password=DEMO_PASSWORD, demo=True
    )
    do_accept_invitation(conn, code=invitation.code, issuer=issuer, subject=str(subject), now=now)


def _log_in_as(
    conn: psycopg.Connection,
    *,
    issuer: str,
    username: str,
    staff_id: UUID | None = None,
    patient_id: UUID | None = None,
) -> None:
    subject = do_create_local_account(conn, username=username, password=DEMO_PASSWORD, demo=True)
    do_link_identity(
        conn, issuer=issuer, subject=str(subject), staff_id=staff_id, patient_id=patient_id
    )
