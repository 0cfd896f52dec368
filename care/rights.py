"""The patient's rights over their data: a complete export, and erasure or anonymisation.

These gather from every table that holds a patient's data (readings, alerts and devices'
assignments too), which is why they are written in SQL against the schema rather than through
each component: one place must know everything that is about one person, so nothing is missed.
The access log is never touched: it outlives the record by law (Normen fact sheet 15).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row

_EXPORTED = {
    "patient": "SELECT * FROM patients WHERE id = %(p)s",
    "responsibility": "SELECT * FROM patient_responsibility WHERE patient_id = %(p)s"
    " ORDER BY valid_from",
    "care_teams": "SELECT t.name, tp.valid_from, tp.valid_to FROM care_team_patients tp"
    " JOIN care_teams t ON t.id = tp.team_id WHERE tp.patient_id = %(p)s ORDER BY tp.valid_from",
    "handovers": "SELECT * FROM handovers WHERE patient_id = %(p)s ORDER BY proposed_at",
    "care_plan": "SELECT * FROM care_plans WHERE patient_id = %(p)s",
    "care_plan_measurements": "SELECT * FROM care_plan_measurements WHERE patient_id = %(p)s",
    "thresholds": "SELECT * FROM patient_thresholds WHERE patient_id = %(p)s ORDER BY code",
    "care_plan_versions": "SELECT * FROM care_plan_versions WHERE patient_id = %(p)s"
    " ORDER BY version",
    "devices": "SELECT * FROM device_assignments WHERE patient_id = %(p)s ORDER BY valid_from",
    "readings": "SELECT device_id, code, measured_at, value, unit, received_at FROM readings"
    " WHERE patient_id = %(p)s ORDER BY measured_at",
    "alerts": "SELECT * FROM alerts WHERE patient_id = %(p)s ORDER BY created_at",
    "access_log": "SELECT at, actor_name, role, organisation_name, resource, action, interface,"
    " reason_code FROM access_log WHERE patient_ids @> ARRAY[%(p)s]::uuid[] ORDER BY at, id",
}


def export_patient(conn: psycopg.Connection, *, patient_id: UUID, now: datetime) -> dict[str, Any]:
    """Everything stored about one patient, by table; the API's encoder makes it JSON."""
    document: dict[str, Any] = {"exported_at": now.isoformat(), "patient_id": str(patient_id)}
    with conn.cursor(row_factory=dict_row) as cur:
        for part, query in _EXPORTED.items():
            rows = cur.execute(query, {"p": patient_id}).fetchall()
            document[part] = rows[0] if part in ("patient", "care_plan") and rows else rows
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
            "UPDATE readings SET patient_id = %s, device_id = %s, msg_id = gen_random_uuid()"
            " WHERE patient_id = %s AND device_id = %s",
            (anonymous_patient, f"anonymised-{uuid4().hex[:12]}", patient_id, device),
        ).rowcount
    return count


def do_apply_retention(conn: psycopg.Connection, *, now: datetime, keep: timedelta) -> int:
    """Delete readings measured before ``now - keep``; returns how many. With TimescaleDB the
    retention policy (drop_chunks) does this cheaper; this is the plain-PostgreSQL path, and
    deleting what a chunk drop already removed is a no-op."""
    return conn.execute("DELETE FROM readings WHERE measured_at < %s", (now - keep,)).rowcount
