"""A small health community with known events, for the figures and deviations tests.

Period P is Monday 30 November to Sunday 27 December 2026 (28 days, no summer-time change),
its previous period 2 to 29 November. All times below are Norwegian (UTC+1 in both).

Units: H, a hospital department open Monday to Friday 08:00-15:30, with nurses N1 and N2; M,
the municipality, always open, with nurse N3 and the coordinator; S, a unit of three patients
(always a small cell). The coordinator is in care team TM, which follows M's patients; team TH
(N1, N2) follows H's.

- H: p1-p5 (COPD) and p6 (heart failure) since 1 January 2026; p6 handed over to M (proposed
  1 Dec 10:00, accepted 16:00: 6 hours); p7 (COPD) new on 14 Dec 00:00.
- M: m1-m4 (heart failure) since 1 January, p6 from 1 Dec 16:00. S: s1-s3 (COPD).
- p1's care plan (since 1 Jan) asks for SpO2 every 24 h: 26 readings in P (days 3 and 10
  missed), one a day in the previous period. p1 answers the daily check on 20 days of P.
- Alerts in P (all H): a1 p1 red clinical Tue 1 Dec 10:00 (acknowledged after 10 min, resolved
  after 60); a2 p2 yellow clinical Sat 5 Dec 11:00 (30, 120); a3 p3 yellow adherence Wed 9 Dec
  20:00 (50, 240); a4 p1 yellow technical Thu 17 Dec 09:00, never acknowledged, escalated to
  the back-up unit at 17:00 and to on-call at 01:00. In the previous period a0, p1 red, 10 Nov
  10:00 (20, 40).
- Notifications: a1 delivered at the first attempt, a2 delivered at the third, a4 dead after
  five.
- Reminders to patients: p1 on 2 Dec 09:00, followed by a reading at 10:00; p3 on 9 Dec
  17:00, never followed (a3) and never delivered (a dead e-mail); p2's of 12 Dec planned and
  never sent.
- Hand-overs to M: p6 accepted; p1 proposed 2 Dec 09:00, declined 12:00; p2 proposed 20 Dec,
  never answered.
- Deviations now (5 Jan 2027): p3's scale silent since 25 Dec (plan: weight daily, 12 h grace,
  from 28 Dec); m4 without a care plan; x1 in TH's care without a responsible unit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import psycopg

from core.clock import DISPLAY_TIMEZONE
from core.weeks import COUNT_ANSWERS, COUNT_READINGS
from quality.figures import Period
from tests.support import insert_episode

NOW = datetime(2027, 1, 5, 11, 0, tzinfo=UTC)
P = Period(date(2026, 11, 30), date(2026, 12, 27))
SINCE = datetime(2026, 1, 1, tzinfo=DISPLAY_TIMEZONE)
SPO2 = "59408-5"
"""SpO2 (core.catalog)."""


def oslo(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=DISPLAY_TIMEZONE)


@dataclass
class World:
    units: dict[str, UUID] = field(default_factory=dict)
    staff: dict[str, UUID] = field(default_factory=dict)
    patients: dict[str, UUID] = field(default_factory=dict)


def build_world(conn: psycopg.Connection) -> World:
    w = World()
    hours = [{"weekday": d, "opens": "08:00", "closes": "15:30"} for d in range(5)]
    for key, name, kind, opening in (
        ("H", "Hjerteavdelingen", "hospital_department", hours),
        ("M", "Oppfølgingstjenesten", "municipal_service", []),
        ("S", "Småenheten", "municipal_service", []),
    ):
        w.units[key] = _one(
            conn,
            "INSERT INTO organisations (name, kind, opening_hours) VALUES (%s, %s, %s)"
            " RETURNING id",
            (name, kind, json.dumps(opening)),
        )
    for key, role, unit in (
        ("N1", "nurse", "H"),
        ("N2", "nurse", "H"),
        ("N3", "nurse", "M"),
        ("coordinator", "coordinator", "M"),
    ):
        w.staff[key] = _one(
            conn,
            "INSERT INTO staff (display_name, role) VALUES (%s, %s) RETURNING id",
            (f"Ansatt {key}", role),
        )
        conn.execute(
            "INSERT INTO staff_memberships (staff_id, organisation_id, valid_from)"
            " VALUES (%s, %s, %s)",
            (w.staff[key], w.units[unit], SINCE),
        )
    accepted_at = oslo(date(2026, 12, 1), 16)
    stays: tuple[tuple[str, str, str | None, datetime, datetime | None], ...] = (
        *((f"p{i}", "copd", "H", SINCE, None) for i in range(1, 6)),
        ("p6", "heart_failure", "H", SINCE, accepted_at),
        ("p7", "copd", "H", oslo(date(2026, 12, 14), 0), None),
        *((f"m{i}", "heart_failure", "M", SINCE, None) for i in range(1, 5)),
        *((f"s{i}", "copd", "S", SINCE, None) for i in range(1, 4)),
        ("x1", "copd", None, SINCE, None),
    )
    for key, condition, responsible, start, end in stays:
        w.patients[key] = _one(
            conn,
            "INSERT INTO patients (display_name, conditions) VALUES (%s, %s) RETURNING id",
            (f"Pasient {key}", [condition]),
        )
        if responsible is not None:
            _responsible(conn, w.patients[key], w.units[responsible], start, end)
        if key != "m4":
            _care_plan(conn, w.patients[key], since=SINCE)
    _responsible(conn, w.patients["p6"], w.units["M"], accepted_at, None)
    teams = {
        "TH": (("N1", "N2"), ("p1", "p2", "p3", "p4", "p5", "p7", "x1")),
        "TM": (("N3", "coordinator"), ("m1", "m2", "m3", "m4", "p6")),
    }
    for name, (members, patients) in teams.items():
        team = _one(conn, "INSERT INTO care_teams (name) VALUES (%s) RETURNING id", (name,))
        for member in members:
            employer = "M" if member in ("N3", "coordinator") else "H"
            conn.execute(
                "INSERT INTO care_team_members (team_id, staff_id, organisation_id, valid_from)"
                " VALUES (%s, %s, %s, %s)",
                (team, w.staff[member], w.units[employer], SINCE),
            )
        for patient in patients:
            conn.execute(
                "INSERT INTO care_team_patients (team_id, patient_id, valid_from)"
                " VALUES (%s, %s, %s)",
                (team, w.patients[patient], SINCE),
            )
    _schedules_and_readings(conn, w)
    _alerts(conn, w)
    _handovers(conn, w)
    return w


def _one(conn: psycopg.Connection, sql: str, params: tuple) -> UUID:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def _responsible(
    conn: psycopg.Connection, patient: UUID, unit: UUID, start: datetime, end: datetime | None
) -> None:
    conn.execute(
        "INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from,"
        " valid_to) VALUES (%s, %s, 'responsible', %s, %s)",
        (patient, unit, start, end),
    )


def _care_plan(conn: psycopg.Connection, patient: UUID, *, since: datetime) -> None:
    conn.execute(
        "INSERT INTO care_plans (patient_id, template, version, spo2_scale, updated_at)"
        " VALUES (%s, 'copd', 1, 1, %s)",
        (patient, since),
    )
    conn.execute(
        "INSERT INTO care_plan_versions (patient_id, version, changed_at, reason, new)"
        " VALUES (%s, 1, %s, 'Oppstart', '{}')",
        (patient, since),
    )


def _schedules_and_readings(conn: psycopg.Connection, w: World) -> None:
    p1, p3 = w.patients["p1"], w.patients["p3"]
    conn.execute(
        "INSERT INTO care_plan_measurements (patient_id, code, every_hours) VALUES (%s, %s, 24)",
        (p1, SPO2),
    )
    # p3's plan is replaced after P: its schedule counts from then, and its scale is silent.
    conn.execute("DELETE FROM care_plan_versions WHERE patient_id = %s", (p3,))
    conn.execute(
        "INSERT INTO care_plan_versions (patient_id, version, changed_at, reason, new)"
        " VALUES (%s, 1, %s, 'Oppstart', '{}')",
        (p3, oslo(date(2026, 12, 28), 9)),
    )
    conn.execute(
        "INSERT INTO care_plan_measurements (patient_id, code, every_hours, grace_hours)"
        " VALUES (%s, '29463-7', 24, 12)",
        (p3,),
    )
    conn.execute("INSERT INTO devices (id, kind) VALUES ('scale-p3', 'scale')")
    conn.execute(
        "INSERT INTO device_assignments (device_id, patient_id, valid_from)"
        " VALUES ('scale-p3', %s, %s)",
        (p3, SINCE),
    )
    conn.execute(
        "INSERT INTO device_status (device_id, last_seen_at) VALUES ('scale-p3', %s)",
        (oslo(date(2026, 12, 25), 8),),
    )
    conn.execute("INSERT INTO devices (id, kind) VALUES ('oxi-p1', 'oximeter')")
    moments = [oslo(P.first + timedelta(days=d), 9) for d in range(28) if d not in (3, 10)] + [
        oslo(P.previous().first + timedelta(days=d), 9) for d in range(28)
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
            " received_at) VALUES ('oxi-p1', %s, %s, %s, 95, '%%', %s)",
            [(SPO2, at, p1, at) for at in moments],
        )
        cur.executemany(
            "INSERT INTO questionnaire_responses (patient_id, kind, answered_at, answers,"
            " received_at) VALUES (%s, 'daily_symptoms', %s, '{}', %s)",
            [(p1, oslo(P.first + timedelta(days=d), 8), NOW) for d in range(20)],
        )
        # Counted per week as ingest and the questionnaire route count what they store.
        cur.execute(COUNT_READINGS.format(source="readings"))
        cur.execute(COUNT_ANSWERS.format(source="questionnaire_responses"))


def _alert(
    conn: psycopg.Connection,
    patient: UUID,
    rule: str,
    severity: str,
    category: str,
    created: datetime,
    acknowledged: int | None,
    resolved: int | None,
) -> int:
    ack = None if acknowledged is None else created + timedelta(minutes=acknowledged)
    res = None if resolved is None else created + timedelta(minutes=resolved)
    state = "resolved" if res else "acknowledged" if ack else "open"
    episode = insert_episode(conn, patient=patient, severity=severity, at=created)
    row = conn.execute(
        "INSERT INTO alerts (patient_id, rule_id, rule_version, severity, state, category,"
        " first_measured_at, last_measured_at, created_at, updated_at, acknowledged_at,"
        " resolved_at, episode_id)"
        " VALUES (%s, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (patient, rule, severity, state, category, created, created, created, created, ack, res,
         episode),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def _alerts(conn: psycopg.Connection, w: World) -> None:
    p = w.patients
    _alert(conn, p["p1"], "threshold_a0", "red", "clinical", oslo(date(2026, 11, 10), 10), 20, 40)
    a1 = _alert(
        conn, p["p1"], "threshold_a1", "red", "clinical", oslo(date(2026, 12, 1), 10), 10, 60
    )
    a2 = _alert(
        conn, p["p2"], "threshold_a2", "yellow", "clinical", oslo(date(2026, 12, 5), 11), 30, 120
    )
    _alert(conn, p["p3"], "missing_a3", "yellow", "adherence", oslo(date(2026, 12, 9), 20), 50, 240)
    a4 = _alert(
        conn, p["p1"], "silent_a4", "yellow", "technical", oslo(date(2026, 12, 17), 9), None, None
    )
    for at, step in (
        (oslo(date(2026, 12, 17), 17), "backup"),
        (oslo(date(2026, 12, 18), 1), "on_call"),
    ):
        conn.execute(
            "INSERT INTO alert_events (alert_id, at, action, details)"
            " VALUES (%s, %s, 'escalated', %s)",
            (a4, at, json.dumps({"from": "responsible", "to": step})),
        )
    for alert, state, attempts in ((a1, "delivered", 1), (a2, "delivered", 3), (a4, "dead", 5)):
        conn.execute(
            "INSERT INTO notifications (alert_id, created_at, channel, address, message, state,"
            " attempts, next_attempt_at) SELECT id, created_at, 'email', 'vakt@example.org', '{}',"
            " %s, %s, created_at FROM alerts WHERE id = %s",
            (state, attempts, alert),
        )  # fmt: skip
    for patient, day, sent, closed in (
        ("p1", date(2026, 12, 2), 9, 10),
        ("p3", date(2026, 12, 9), 17, None),
        ("p2", date(2026, 12, 12), None, None),
    ):
        remind_at = oslo(day, 9 if sent is None else sent)
        conn.execute(
            "INSERT INTO reminders (patient_id, code, since, due_at, remind_at, alert_at,"
            " sent_at, recipients, closed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                p[patient],
                SPO2,
                remind_at - timedelta(hours=30),
                remind_at,
                remind_at,
                remind_at + timedelta(hours=3),
                None if sent is None else remind_at,
                None if sent is None else 1,
                None if closed is None else oslo(day, closed),
            ),
        )
    # p3's reminder did not reach her: a dead outbox row, a deviation.
    conn.execute(
        "INSERT INTO notifications (reminder_id, created_at, channel, address, message, state,"
        " attempts, next_attempt_at) SELECT id, sent_at, 'email', 'p3@example.org', '{}',"
        " 'dead', 1, sent_at FROM reminders WHERE patient_id = %s AND sent_at IS NOT NULL",
        (p["p3"],),
    )


def _handovers(conn: psycopg.Connection, w: World) -> None:
    p, h, m, n1 = w.patients, w.units["H"], w.units["M"], w.staff["N1"]
    for patient, proposed, state, decided in (
        ("p6", oslo(date(2026, 12, 1), 10), "accepted", oslo(date(2026, 12, 1), 16)),
        ("p1", oslo(date(2026, 12, 2), 9), "declined", oslo(date(2026, 12, 2), 12)),
        ("p2", oslo(date(2026, 12, 20), 9), "proposed", None),
    ):
        conn.execute(
            "INSERT INTO handovers (patient_id, from_organisation_id, to_organisation_id, note,"
            " proposed_by, proposed_at, state, decided_at) VALUES (%s, %s, %s, 'Overføring',"
            " %s, %s, %s, %s)",
            (p[patient], h, m, n1, proposed, state, decided),
        )
