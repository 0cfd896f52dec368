"""Findings become alerts, and people act on them: the alert lifecycle.

One alert per patient and rule instance until it is resolved: repeats update it and its
severity can only rise. After resolution the instance is disarmed until a clearly normal
reading re-arms it (hysteresis), unless the finding is worse than what was resolved. A snooze
mutes one instance for a while with a reason; a red finding is never muted below a
notification. Every change is an `alert_events` row, and every notification is written to the
outbox in the same transaction as the change that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from alerts.findings import Finding, Severity
from alerts.outbox import build_message, do_enqueue_notification, recipients_for
from alerts.routing import Policy, policy_of, units_for

LATE_AFTER = timedelta(hours=2)
"""A reading evaluated this long after it was measured raises a *late* alert."""
MAX_SNOOZE = timedelta(days=7)

Outcome = Literal[
    "contacted_patient",
    "changed_treatment",
    "referred",
    "no_action_needed",
    "technical_fixed",
    "false_alarm",
]


class AlertStateError(Exception):
    """The alert cannot take this step from where it is."""


@dataclass(frozen=True, slots=True)
class Applied:
    opened: int = 0
    updated: int = 0
    suppressed: int = 0


def do_apply_findings(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    findings: Iterable[Finding],
    now: datetime,
    public_url: str,
    late: frozenset[str] = frozenset(),
) -> Applied:
    """Open, update or (hysteresis, snooze) suppress alerts for one patient's findings.
    `late` names instances whose finding describes a state that has already passed."""
    return do_apply_batch(
        conn,
        batch={patient_id: [(f, f.instance in late) for f in findings]},
        now=now,
        public_url=public_url,
    )


Key = tuple[UUID, str]
"""(patient, instance): what one alert is about."""


def do_apply_batch(
    conn: psycopg.Connection,
    *,
    batch: Mapping[UUID, Sequence[tuple[Finding, bool]]],
    now: datetime,
    public_url: str,
) -> Applied:
    """Apply many patients' findings (each with its late flag) in a few set-based steps.

    The patients are locked (in a fixed order, so two workers cannot deadlock), their open
    alerts, disarmed instances and snoozes are read once, and every alert is written at most
    once however many findings a batch holds for it: the ingest calls this once per batch of
    readings, so its cost does not grow with the number of readings and rules.
    """
    patients = sorted(batch, key=str)
    if not patients:
        return Applied()
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(p)) FROM"
        " (SELECT unnest(%s::text[]) AS p ORDER BY 1) ordered",
        ([str(p) for p in patients],),
    )
    open_alerts: dict[Key, tuple[int, Severity]] = {
        (p, instance): (alert_id, Severity(severity))
        for p, instance, alert_id, severity in conn.execute(
            "SELECT patient_id, rule_id, id, severity FROM alerts"
            " WHERE patient_id = ANY(%s) AND state <> 'resolved' FOR UPDATE",
            (patients,),
        )
    }
    disarmed: dict[Key, Severity] = {
        (p, instance): Severity(severity or "red")
        for p, instance, severity in conn.execute(
            "SELECT patient_id, rule_id, disarmed_severity FROM alert_arming"
            " WHERE patient_id = ANY(%s) AND NOT armed",
            (patients,),
        )
    }
    snoozed: set[Key] = set(
        conn.execute(
            "SELECT patient_id, rule_id FROM alert_snoozes WHERE patient_id = ANY(%s)"
            " AND until > %s",
            (patients, now),
        ).fetchall()
    )
    opened = suppressed = 0
    repeats: dict[Key, list[tuple[Finding, bool]]] = {}
    for patient in patients:
        for finding, late in sorted(batch[patient], key=lambda pair: pair[0].measured_at):
            key = (patient, finding.instance)
            is_late = late or now - finding.measured_at > LATE_AFTER
            if finding.severity is Severity.GREEN:
                if key in disarmed:
                    _arm(conn, patient_id=patient, instance=finding.instance, now=now)
                    del disarmed[key]
            elif key in open_alerts:
                repeats.setdefault(key, []).append((finding, is_late))
            elif _muted(finding, disarmed=disarmed.get(key), snoozed=key in snoozed):
                suppressed += 1
            else:
                alert_id = _open(
                    conn,
                    patient_id=patient,
                    finding=finding,
                    late=is_late,
                    now=now,
                    public_url=public_url,
                )
                open_alerts[key] = (alert_id, finding.severity)
                opened += 1
    for key, found in repeats.items():
        alert_id, was = open_alerts[key]
        _update(conn, alert_id=alert_id, was=was, findings=found, now=now, public_url=public_url)
    return Applied(opened=opened, updated=len(repeats), suppressed=suppressed)


def _muted(finding: Finding, *, disarmed: Severity | None, snoozed: bool) -> bool:
    """Disarmed since a resolution (and not worse than it), or snoozed and not red."""
    if disarmed is not None and finding.severity.rank <= disarmed.rank:
        return True
    return snoozed and finding.severity is not Severity.RED


def _arm(conn: psycopg.Connection, *, patient_id: UUID, instance: str, now: datetime) -> None:
    conn.execute(
        "UPDATE alert_arming SET armed = true, disarmed_severity = NULL, updated_at = %s"
        " WHERE patient_id = %s AND rule_id = %s AND NOT armed",
        (now, patient_id, instance),
    )


def _open(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    finding: Finding,
    late: bool,
    now: datetime,
    public_url: str,
) -> int:
    responsible, _backup = units_for(conn, patient_id=patient_id, at=now)
    policy = None if responsible is None else policy_of(conn, organisation_id=responsible)
    out_of_hours = policy is not None and not policy.is_open(now)
    route = "out_of_hours" if out_of_hours else "responsible"
    row = conn.execute(
        """
        INSERT INTO alerts (patient_id, rule_id, rule_version, severity, category, code,
                            direction, first_value, last_value, first_measured_at,
                            last_measured_at, occurrences, created_at, updated_at, late,
                            details, routed_to, route, escalate_at)
        VALUES (%(patient)s, %(instance)s, 1, %(severity)s, %(category)s, %(code)s,
                %(direction)s, %(value)s, %(value)s, %(at)s, %(at)s, 1, %(now)s, %(now)s,
                %(late)s, %(details)s, %(unit)s, %(route)s, %(escalate_at)s)
        RETURNING id
        """,
        {
            "patient": patient_id,
            "instance": finding.instance,
            "severity": finding.severity.value,
            "category": finding.category.value,
            "code": finding.code,
            "direction": finding.direction,
            "value": finding.value,
            "at": finding.measured_at,
            "now": now,
            "late": late,
            "details": Jsonb(_json_safe(finding.details)),
            "unit": responsible,
            "route": route,
            "escalate_at": None
            if policy is None or out_of_hours
            else policy.deadline(finding.severity, now=now),
        },
    ).fetchone()
    assert row is not None
    alert_id = row[0]
    do_record_event(
        conn,
        alert_id=alert_id,
        action="opened",
        now=now,
        details={"severity": finding.severity.value, "route": route, "late": late},
    )
    if policy is not None:
        do_notify(
            conn,
            alert_id=alert_id,
            patient_id=patient_id,
            severity=finding.severity,
            policy=policy,
            route=route,
            now=now,
            public_url=public_url,
            values=finding,
        )
    return alert_id


def _update(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    was: Severity,
    findings: Sequence[tuple[Finding, bool]],
    now: datetime,
    public_url: str,
) -> None:
    """Fold a batch's repeats into the open alert: one write, one notification if it rose."""
    newest, _late = max(findings, key=lambda pair: pair[0].measured_at)
    worst = max((f.severity for f, _ in findings), key=lambda severity: severity.rank)
    raised = worst.rank > was.rank
    row = conn.execute(
        """
        UPDATE alerts SET
            occurrences = occurrences + %(count)s,
            updated_at = %(now)s,
            severity = CASE WHEN %(raised)s THEN %(severity)s ELSE severity END,
            last_value = CASE WHEN %(at)s >= last_measured_at THEN %(value)s ELSE last_value END,
            direction = CASE WHEN %(at)s >= last_measured_at
                             THEN coalesce(%(direction)s, direction) ELSE direction END,
            details = CASE WHEN %(at)s >= last_measured_at THEN %(details)s ELSE details END,
            last_measured_at = greatest(last_measured_at, %(at)s),
            first_measured_at = least(first_measured_at, %(earliest)s),
            late = late OR %(late)s
        WHERE id = %(id)s
        RETURNING patient_id, routed_to, route
        """,
        {
            "id": alert_id,
            "count": len(findings),
            "now": now,
            "raised": raised,
            "severity": worst.value,
            "at": newest.measured_at,
            "earliest": min(f.measured_at for f, _ in findings),
            "value": newest.value,
            "direction": newest.direction,
            "details": Jsonb(_json_safe(newest.details)),
            "late": any(late for _, late in findings),
        },
    ).fetchone()
    assert row is not None
    if not raised:
        return
    patient_id, unit, route = row
    do_record_event(
        conn,
        alert_id=alert_id,
        action="severity_raised",
        now=now,
        details={"from": was.value, "to": worst.value},
    )
    if unit is not None:
        policy = policy_of(conn, organisation_id=unit)
        conn.execute(
            "UPDATE alerts SET escalate_at = %s WHERE id = %s AND state = 'open'"
            " AND route IN ('responsible', 'backup')",
            (policy.deadline(worst, now=now), alert_id),
        )
        do_notify(
            conn,
            alert_id=alert_id,
            patient_id=patient_id,
            severity=worst,
            policy=policy,
            route=route,
            now=now,
            public_url=public_url,
            values=newest,
        )


def do_notify(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    patient_id: UUID,
    severity: Severity,
    policy: Policy,
    route: str,
    now: datetime,
    public_url: str,
    values: Finding | None,
) -> int:
    """Write the outbox rows for one step of an alert's route; returns how many."""
    if route == "out_of_hours":
        targets = [policy.out_of_hours] if policy.out_of_hours else []
    elif route == "on_call":
        targets = [policy.on_call] if policy.on_call else []
    else:
        targets = recipients_for(
            conn, organisation_id=policy.organisation_id, severity=severity.value, now=now
        )
    message = build_message(
        alert_id=alert_id,
        severity=severity.value,
        unit_name=policy.name,
        public_url=public_url,
        patient_id=patient_id,
        values=_values(values) if policy.include_values and values is not None else None,
    )
    for channel, address in targets:
        do_enqueue_notification(
            conn, alert_id=alert_id, channel=channel, address=address, message=message, now=now
        )
    do_record_event(
        conn,
        alert_id=alert_id,
        action="notified",
        now=now,
        details={"route": route, "unit": policy.name, "recipients": len(targets)},
    )
    return len(targets)


def _values(finding: Finding) -> dict[str, Any]:
    return {"code": finding.code, "value": finding.value, "direction": finding.direction}


def _json_safe(details: Any) -> Any:
    if isinstance(details, dict):
        return {str(k): _json_safe(v) for k, v in details.items()}
    if isinstance(details, list | tuple | set | frozenset):
        return [_json_safe(v) for v in details]
    if isinstance(details, datetime):
        return details.isoformat()
    if isinstance(details, str | int | float | bool) or details is None:
        return details
    return str(details)


def do_record_event(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    action: str,
    now: datetime,
    actor: UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, actor, action, details)"
        " VALUES (%s, %s, %s, %s, %s)",
        (alert_id, now, actor, action, Jsonb(details or {})),
    )


def _locked(conn: psycopg.Connection, *, alert_id: int) -> tuple[UUID, str, str, str]:
    row = conn.execute(
        "SELECT patient_id, rule_id, state, severity FROM alerts WHERE id = %s FOR UPDATE",
        (alert_id,),
    ).fetchone()
    if row is None:
        raise AlertStateError("no such alert")
    return row[0], row[1], row[2], row[3]


def do_acknowledge(conn: psycopg.Connection, *, alert_id: int, by: UUID, now: datetime) -> None:
    """Someone has it: escalation stops."""
    with conn.transaction():
        _patient, _instance, state, _severity = _locked(conn, alert_id=alert_id)
        if state != "open":
            raise AlertStateError(f"the alert is {state}")
        conn.execute(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s, acknowledged_at = %s,"
            " escalate_at = NULL, assigned_to = coalesce(assigned_to, %s), updated_at = %s"
            " WHERE id = %s",
            (by, now, by, now, alert_id),
        )
        do_record_event(conn, alert_id=alert_id, action="acknowledged", actor=by, now=now)


def do_assign(
    conn: psycopg.Connection, *, alert_id: int, to: UUID, by: UUID, now: datetime
) -> None:
    with conn.transaction():
        _patient, _instance, state, _severity = _locked(conn, alert_id=alert_id)
        if state == "resolved":
            raise AlertStateError("the alert is resolved")
        conn.execute(
            "UPDATE alerts SET assigned_to = %s, updated_at = %s WHERE id = %s",
            (to, now, alert_id),
        )
        do_record_event(
            conn,
            alert_id=alert_id,
            action="assigned",
            actor=by,
            now=now,
            details={"to": str(to)},
        )


def do_resolve(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    by: UUID,
    outcome: Outcome,
    note: str,
    now: datetime,
) -> None:
    """Close the alert with what was done; the instance stays quiet until values clear."""
    if not note or not note.strip():
        raise AlertStateError("resolving an alert needs a note")
    with conn.transaction():
        patient, instance, state, severity = _locked(conn, alert_id=alert_id)
        if state == "resolved":
            raise AlertStateError("the alert is resolved already")
        conn.execute(
            "UPDATE alerts SET state = 'resolved', resolved_by = %s, resolved_at = %s,"
            " outcome = %s, resolution_note = %s, escalate_at = NULL, updated_at = %s"
            " WHERE id = %s",
            (by, now, outcome, note.strip(), now, alert_id),
        )
        conn.execute(
            """
            INSERT INTO alert_arming (patient_id, rule_id, armed, disarmed_severity, updated_at)
            VALUES (%s, %s, false, %s, %s)
            ON CONFLICT (patient_id, rule_id) DO UPDATE
               SET armed = false, disarmed_severity = EXCLUDED.disarmed_severity,
                   updated_at = EXCLUDED.updated_at
            """,
            (patient, instance, severity, now),
        )
        do_record_event(
            conn,
            alert_id=alert_id,
            action="resolved",
            actor=by,
            now=now,
            details={"outcome": outcome},
        )


def do_snooze(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    by: UUID,
    reason: str,
    duration: timedelta,
    now: datetime,
) -> None:
    """Mute this alert's instance (one rule, one measurement, one direction) for a while.
    Yellow repeats stay quiet; a red finding still notifies."""
    if not reason or not reason.strip():
        raise AlertStateError("a snooze needs a reason")
    if not timedelta(minutes=1) <= duration <= MAX_SNOOZE:
        raise AlertStateError("a snooze lasts between one minute and seven days")
    with conn.transaction():
        patient, instance, state, _severity = _locked(conn, alert_id=alert_id)
        if state == "resolved":
            raise AlertStateError("the alert is resolved")
        conn.execute(
            "INSERT INTO alert_snoozes (patient_id, rule_id, until, reason, created_by,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (patient, instance, now + duration, reason.strip(), by, now),
        )
        do_record_event(
            conn,
            alert_id=alert_id,
            action="snoozed",
            actor=by,
            now=now,
            details={"until": (now + duration).isoformat(), "reason": reason.strip()},
        )
