"""The patient's rights over their data: a complete export, and erasure or anonymisation.

These gather from every table that holds a patient's data (readings, alerts and devices'
assignments too), which is why they are written in SQL against the schema rather than through
each component: one place must know everything that is about one person, so nothing is missed.
tests/care/test_rights.py reads the schema and fails for a table about patients that is neither
exported here nor listed in `NOT_EXPORTED` with a reason. The access log is never touched by
erasure: it outlives the record by law (Normen fact sheet 15).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True, slots=True)
class Part:
    """One part of the export: the table it comes from and the query for one patient's rows."""

    table: str
    query: str
    single: bool = False
    """The part is one row (an empty list when there is none), not a list."""


EXPORT_PARTS: Final = {
    # The national id only as "registered or not": the export is an API answer, and the
    # number is never in one (care/national_ids.py); its sealed form and hash mean nothing.
    "patient": Part(
        "patients",
        "SELECT id, display_name, birth_date, conditions, preferred_language, created_at,"
        " national_id_hash IS NOT NULL AS national_id_registered, phone, email"
        " FROM patients WHERE id = %(p)s",
        single=True,
    ),
    "identities": Part(
        "identities", "SELECT issuer, subject FROM identities WHERE patient_id = %(p)s"
    ),
    "responsibility": Part(
        "patient_responsibility",
        "SELECT * FROM patient_responsibility WHERE patient_id = %(p)s ORDER BY valid_from",
    ),
    "care_teams": Part(
        "care_team_patients",
        "SELECT t.name, tp.valid_from, tp.valid_to FROM care_team_patients tp"
        " JOIN care_teams t ON t.id = tp.team_id WHERE tp.patient_id = %(p)s"
        " ORDER BY tp.valid_from",
    ),
    "handovers": Part(
        "handovers", "SELECT * FROM handovers WHERE patient_id = %(p)s ORDER BY proposed_at"
    ),
    "care_plan": Part(
        "care_plans", "SELECT * FROM care_plans WHERE patient_id = %(p)s", single=True
    ),
    "care_plan_measurements": Part(
        "care_plan_measurements", "SELECT * FROM care_plan_measurements WHERE patient_id = %(p)s"
    ),
    "thresholds": Part(
        "care_plan_limits",
        "SELECT * FROM care_plan_limits WHERE patient_id = %(p)s ORDER BY code",
    ),
    "care_plan_versions": Part(
        "care_plan_versions",
        "SELECT * FROM care_plan_versions WHERE patient_id = %(p)s ORDER BY version",
    ),
    "devices": Part(
        "device_assignments",
        "SELECT * FROM device_assignments WHERE patient_id = %(p)s ORDER BY valid_from",
    ),
    "readings": Part(
        "readings",
        "SELECT device_id, code, measured_at, value, unit, received_at FROM readings"
        " WHERE patient_id = %(p)s ORDER BY measured_at",
    ),
    "questionnaire_responses": Part(
        "questionnaire_responses",
        "SELECT q.kind, q.answered_at, q.answers, q.total, q.received_at,"
        " r.display_name AS answered_by_relative FROM questionnaire_responses q"
        " LEFT JOIN relatives r ON r.id = q.answered_by_relative_id"
        " WHERE q.patient_id = %(p)s ORDER BY q.answered_at",
    ),
    "alerts": Part("alerts", "SELECT * FROM alerts WHERE patient_id = %(p)s ORDER BY created_at"),
    "alert_episodes": Part(
        "alert_episodes",
        "SELECT * FROM alert_episodes WHERE patient_id = %(p)s ORDER BY created_at, id",
    ),
    "alert_events": Part(
        "alert_events",
        "SELECT e.alert_id, e.at, e.actor, e.action, e.details FROM alert_events e"
        " JOIN alerts a ON a.id = e.alert_id WHERE a.patient_id = %(p)s ORDER BY e.at, e.id",
    ),
    "alert_snoozes": Part(
        "alert_snoozes",
        "SELECT rule_id, until, reason, created_by, created_at FROM alert_snoozes"
        " WHERE patient_id = %(p)s ORDER BY created_at, id",
    ),
    "alert_arming": Part(
        "alert_arming",
        "SELECT rule_id, armed, disarmed_severity, updated_at FROM alert_arming"
        " WHERE patient_id = %(p)s ORDER BY rule_id",
    ),
    # What was sent about the patient's alerts; the staff's own addresses are theirs, not the
    # patient's, and stay out.
    "notifications": Part(
        "notifications",
        "SELECT n.alert_id, n.created_at, n.channel, n.message, n.state, n.delivered_at"
        " FROM notifications n JOIN alerts a ON a.id = n.alert_id WHERE a.patient_id = %(p)s"
        " UNION ALL"
        " SELECT n.alert_id, n.created_at, n.channel, n.message, n.state, n.delivered_at"
        " FROM notifications n JOIN reminders r ON r.id = n.reminder_id"
        " WHERE r.patient_id = %(p)s ORDER BY created_at",
    ),
    # The patient's reminders: where they go (the patient's own address), and which were sent.
    "reminder_channel": Part(
        "reminder_channels",
        "SELECT channel, address, updated_at FROM reminder_channels WHERE patient_id = %(p)s",
        single=True,
    ),
    "reminders": Part(
        "reminders",
        "SELECT code, since, due_at, remind_at, alert_at, sent_at, recipients, closed_at"
        " FROM reminders WHERE patient_id = %(p)s ORDER BY since, code",
    ),
    "emergency_access": Part(
        "emergency_access",
        "SELECT ea.valid_from, ea.valid_to, s.display_name AS staff_name,"
        " o.name AS organisation_name, ea.reason FROM emergency_access ea"
        " JOIN staff s ON s.id = ea.staff_id JOIN organisations o ON o.id = ea.organisation_id"
        " WHERE ea.patient_id = %(p)s ORDER BY ea.valid_from",
    ),
    # The relatives the patient let act for them, with each consent's scope and history.
    "proxy_consents": Part(
        "proxy_consents",
        "SELECT r.display_name AS relative_name, r.email, c.see_own_view,"
        " c.receive_reminders, c.answer_questionnaires, c.valid_from, c.valid_to,"
        " c.invited_by_kind, c.consent_note, c.accepted_at, c.withdrawn_at"
        " FROM proxy_consents c JOIN relatives r ON r.id = c.relative_id"
        " WHERE c.patient_id = %(p)s ORDER BY c.valid_from, c.id",
    ),
    "access_log": Part(
        "access_log",
        "SELECT at, actor_name, role, organisation_name, resource, action, interface,"
        " reason_code FROM access_log WHERE patient_ids @> ARRAY[%(p)s]::uuid[] ORDER BY at, id",
    ),
}

EXPORTED_TABLES: Final = frozenset(part.table for part in EXPORT_PARTS.values())

NOT_EXPORTED: Final = {
    "reading_weeks": "the readings counted per measurement and week for the figures: derived"
    " from the readings, which are exported",
    "answered_weeks": "the days with an answered questionnaire per week for the figures:"
    " derived from the answers, which are exported",
    "reading_days": "the readings summed up per measurement and day for the patient page's long"
    " ranges: derived from the readings, which are exported",
    "reading_day_weeks": "how many readings of a week those daily sums saw: bookkeeping derived"
    " from the readings",
    "reading_revisions": "the rule engine's cache bookkeeping (transaction ids and the time"
    " span of recent batches): it says nothing about the person that the readings do not",
}
"""Tables that refer to a patient but are left out of the export, and why. Erasure still
removes their rows (they cascade from the patient, or it deletes them)."""

KEPT_ON_ERASURE: Final = {
    "access_log": "the law requires the log of who accessed the record to outlive it",
}
"""Tables whose rows about a patient erasure keeps, and why."""


def export_patient(conn: psycopg.Connection, *, patient_id: UUID, now: datetime) -> dict[str, Any]:
    """Everything stored about one patient, by table; the API's encoder makes it JSON."""
    document: dict[str, Any] = {"exported_at": now.isoformat(), "patient_id": str(patient_id)}
    with conn.cursor(row_factory=dict_row) as cur:
        for name, part in EXPORT_PARTS.items():
            rows = cur.execute(part.query, {"p": patient_id}).fetchall()
            document[name] = rows[0] if part.single and rows else rows
    return document


def do_forget_patient(conn: psycopg.Connection, *, patient_id: UUID, anonymise: bool) -> int:
    """Erase a patient, or anonymise: keep the readings for statistics under a new random id
    and new random device ids, so nothing links them to the person any more. Returns the
    number of readings deleted or kept. Everything else about the person is deleted."""
    with conn.transaction():
        if anonymise:
            count = _detach_readings(conn, patient_id=patient_id)
        else:
            count = conn.execute(
                "DELETE FROM readings WHERE patient_id = %s", (patient_id,)
            ).rowcount
        # The weekly counts (core.weeks) have no foreign key, to spare ingest its check.
        conn.execute("DELETE FROM reading_weeks WHERE patient_id = %s", (patient_id,))
        conn.execute("DELETE FROM answered_weeks WHERE patient_id = %s", (patient_id,))
        # Everything else refers to the patient with ON DELETE CASCADE.
        conn.execute("DELETE FROM patients WHERE id = %s", (patient_id,))
    return count


def _detach_readings(conn: psycopg.Connection, *, patient_id: UUID) -> int:
    devices = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT device_id FROM readings WHERE patient_id = %s", (patient_id,)
        ).fetchall()
    ]
    anonymous_patient = uuid4()
    count = 0
    for device in devices:
        count += conn.execute(
            "UPDATE readings SET patient_id = %s, device_id = %s"
            " WHERE patient_id = %s AND device_id = %s",
            (anonymous_patient, f"anonymised-{uuid4().hex[:12]}", patient_id, device),
        ).rowcount
    return count
