"""Findings become alerts: the one path every finding takes, clinical, adherence or technical.

One alert per patient and rule instance until it is resolved: repeats update it and its
severity can only rise. After resolution the instance is disarmed until a clearly normal
reading re-arms it (hysteresis), unless the finding is worse than what was resolved. A snooze
mutes one instance for a while with a reason; a red finding is never muted below a
notification. Every change is an `alert_events` row, and every notification is written to the
outbox in the same transaction as the change that caused it (alerts/notify.py). What people
do to an alert afterwards (acknowledge, assign, resolve, snooze, note) is alerts/actions.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from alerts.episodes import Batch, Episode
from alerts.findings import Finding, Severity
from alerts.notify import EventBatch, Part, Recipients, do_notify
from alerts.routing import Policy, policy_of
from care.handover import responsible_units

LATE_AFTER = timedelta(hours=2)
"""A reading evaluated this long after it was measured raises a *late* alert."""


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
    late: frozenset[str] = frozenset(),
) -> Applied:
    """Open, update or (hysteresis, snooze) suppress alerts for one patient's findings.
    `late` names instances whose finding describes a state that has already passed."""
    return do_apply_batch(
        conn,
        batch={patient_id: [(f, f.instance in late) for f in findings]},
        now=now,
    )


Key = tuple[UUID, str]
"""(patient, instance): what one alert is about."""


def do_apply_batch(
    conn: psycopg.Connection,
    *,
    batch: Mapping[UUID, Sequence[tuple[Finding, bool]]],
    now: datetime,
) -> Applied:
    """Apply many patients' findings (each with its late flag) in a few set-based steps.

    The patients with something to change are locked (in a fixed order, so two workers cannot
    deadlock), their open alerts, disarmed instances and snoozes are read once, and every alert
    is written at most once however many findings a batch holds for it: the ingest calls this
    once per batch of readings, so its cost does not grow with the number of readings and
    rules.
    """
    everyone = sorted(batch, key=attrgetter("int"))
    if not everyone:
        return Applied()
    disarmed: dict[Key, Severity] = {
        (p, instance): Severity(severity or "red")
        for p, instance, severity in conn.execute(
            "SELECT patient_id, rule_id, disarmed_severity FROM alert_arming"
            " WHERE patient_id = ANY(%b) AND NOT armed",
            (everyone,),
        )
    }
    # Only patients with something to change: a finding that is not clearly normal, or a
    # clearly normal one that re-arms. The rest (most, on a quiet day) take no locks.
    patients = [
        p
        for p in everyone
        if any(f.severity is not Severity.GREEN or (p, f.instance) in disarmed for f, _ in batch[p])
    ]
    if not patients:
        return Applied()
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(p)) FROM"
        " (SELECT unnest(%b::uuid[])::text AS p ORDER BY 1) ordered",
        (patients,),
    )
    open_alerts: dict[Key, tuple[int, Severity]] = {
        (p, instance): (alert_id, Severity(severity))
        for p, instance, alert_id, severity in conn.execute(
            "SELECT patient_id, rule_id, id, severity FROM alerts"
            " WHERE patient_id = ANY(%b) AND state <> 'resolved' FOR UPDATE",
            (patients,),
        )
    }
    snoozed: set[Key] = set(
        conn.execute(
            "SELECT patient_id, rule_id FROM alert_snoozes WHERE patient_id = ANY(%b)"
            " AND until > %s",
            (patients, now),
        ).fetchall()
    )
    opened = suppressed = 0
    repeats: dict[Key, list[tuple[Finding, bool]]] = {}
    openings: dict[Key, tuple[Finding, bool]] = {}
    """Opened after the loop, all in a few statements; a repeat in the same batch folds into
    the new alert."""
    for patient in patients:
        for finding, late in sorted(batch[patient], key=lambda pair: pair[0].measured_at):
            if finding.severity is Severity.GREEN and not disarmed:
                continue  # clearly normal, and nothing waits to be re-armed
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
                openings[key] = (finding, is_late)
                open_alerts[key] = (0, finding.severity)
                opened += 1
    if openings or repeats:
        _do_episodes(conn, openings=openings, repeats=repeats, open_alerts=open_alerts, now=now)
    return Applied(opened=opened, updated=len(repeats), suppressed=suppressed)


def _do_episodes(
    conn: psycopg.Connection,
    *,
    openings: Mapping[Key, tuple[Finding, bool]],
    repeats: Mapping[Key, Sequence[tuple[Finding, bool]]],
    open_alerts: Mapping[Key, tuple[int, Severity]],
    now: datetime,
) -> None:
    """Open the new alerts in their episodes (joined or started), fold the repeats, and
    write and notify what changed per episode (alerts/episodes.py): a few statements for the
    whole batch."""
    touched = {p for p, _ in openings} | {p for p, _ in repeats}
    episodes = Batch(conn, patients=sorted(touched, key=attrgetter("int")))
    by_time = sorted(openings.items(), key=lambda item: item[1][0].measured_at)
    assigned = {key: episodes.episode_for(key[0], finding) for key, (finding, _) in by_time}
    units = responsible_units(
        conn, patient_ids=sorted({e.patient_id for e in episodes.started}), at=now
    )
    policies = _Policies(conn)
    routes = []
    for episode in episodes.started:
        unit = units.get(episode.patient_id)
        policy = None if unit is None else policies[unit]
        out_of_hours = policy is not None and not policy.is_open(now)
        mine = [f for key, (f, _) in openings.items() if assigned[key] is episode]
        worst = max((f.severity for f in mine), key=attrgetter("rank"))
        episode.severity = worst
        episode.first_measured_at = min(f.measured_at for f in mine)
        episode.last_measured_at = max(f.measured_at for f in mine)
        routes.append(
            (
                unit,
                "out_of_hours" if out_of_hours else "responsible",
                None if policy is None or out_of_hours else policy.deadline(worst, now=now),
            )
        )
    episodes.do_insert_started(conn, routes=routes, now=now)
    for key, alert_id in _open_all(conn, openings=openings, episodes=assigned, now=now):
        finding, late = openings[key]
        episode = assigned[key]
        episode.take(finding, late=late, alert_id=alert_id)
        episode.new_parts.append((finding, alert_id))
    folded = _fold(
        conn, repeats={open_alerts[key]: found for key, found in repeats.items()}, now=now
    )
    for episode_id, alert_id, worst, newest, late in folded:
        episodes.by_id[episode_id].take(
            replace(newest, severity=worst), late=late, alert_id=alert_id
        )
    changed = episodes.changed()
    _reroute_raised([e for e in changed if e.raised], conn=conn, policies=policies, now=now)
    _do_update_changed(conn, changed, policies=policies, now=now)
    _do_notify_episodes(conn, episodes, policies=policies, now=now)


class _Policies(dict[UUID, Policy]):
    """Each unit's policy, read once per batch."""

    def __init__(self, conn: psycopg.Connection) -> None:
        super().__init__()
        self.conn = conn

    def __missing__(self, unit: UUID) -> Policy:
        policy = self[unit] = policy_of(self.conn, organisation_id=unit)
        return policy


def _reroute_raised(
    raised: Sequence[Episode], *, conn: psycopg.Connection, policies: _Policies, now: datetime
) -> None:
    """A worse episode is news: it starts its route again at the unit responsible now (or
    out of hours), with the deadline of its new severity, whatever escalation it went
    through while it was milder."""
    if not raised:
        return
    units = responsible_units(conn, patient_ids=sorted({e.patient_id for e in raised}), at=now)
    for episode in raised:
        unit = units.get(episode.patient_id)
        if unit is None:
            continue
        episode.routed_to = unit
        episode.route = "responsible" if policies[unit].is_open(now) else "out_of_hours"


_UPDATE_EPISODES = """
UPDATE alert_episodes e SET
    severity = v.severity,
    first_measured_at = least(e.first_measured_at, v.first),
    last_measured_at = greatest(e.last_measured_at, v.last),
    late = e.late OR v.late,
    updated_at = %(now)s,
    routed_to = CASE WHEN v.raised THEN coalesce(v.unit, e.routed_to) ELSE e.routed_to END,
    route = CASE WHEN v.raised THEN v.route ELSE e.route END,
    escalate_at = CASE WHEN v.raised AND e.state = 'open' THEN v.escalate_at
                       ELSE e.escalate_at END
FROM unnest(%(id)b::bigint[], %(severity)b::text[], %(first)b::timestamptz[],
            %(last)b::timestamptz[], %(late)b::bool[], %(raised)b::bool[],
            %(escalate_at)b::timestamptz[], %(unit)b::uuid[], %(route)b::text[])
     AS v(id, severity, first, last, late, raised, escalate_at, unit, route)
WHERE e.id = v.id
"""


def _do_update_changed(
    conn: psycopg.Connection, changed: Sequence[Episode], *, policies: _Policies, now: datetime
) -> None:
    """The episodes that took findings, in one statement; a worse one gets its new route and
    escalation deadline."""
    if not changed:
        return
    conn.execute(
        _UPDATE_EPISODES,
        {
            "id": [e.id for e in changed],
            "severity": [e.severity.value for e in changed],
            "first": [e.first_measured_at for e in changed],
            "last": [e.last_measured_at for e in changed],
            "late": [e.late for e in changed],
            "raised": [e.raised for e in changed],
            "escalate_at": [
                policies[e.routed_to].deadline(e.severity, now=now)
                if e.raised and e.routed_to is not None and e.route == "responsible"
                else None
                for e in changed
            ],
            "unit": [e.routed_to for e in changed],
            "route": [e.route for e in changed],
            "now": now,
        },
    )


def _do_notify_episodes(
    conn: psycopg.Connection, episodes: Batch, *, policies: _Policies, now: datetime
) -> None:
    """One notification per episode started, and one per episode made worse, each listing
    every rule of the episode with the values behind them."""
    events = EventBatch()
    recipients: Recipients = {}
    raised = [e for e in episodes.changed() if e.raised]
    parts_of: dict[int, list[Part]] = defaultdict(list)
    if raised:
        for episode_id, instance, severity, code, value, direction, details in conn.execute(
            "SELECT episode_id, rule_id, severity, code, last_value, direction, details"
            " FROM alerts WHERE episode_id = ANY(%b) AND state <> 'resolved' ORDER BY id",
            ([e.id for e in raised],),
        ):
            parts_of[episode_id].append(Part(instance, severity, code, value, direction, details))
    for episode in [*episodes.started, *raised]:
        assert episode.id is not None
        if episode.was is None:
            lead = episode.new_parts[0][1]
            parts = [Part.of(finding) for finding, _ in episode.new_parts]
        else:
            assert episode.was is not None
            assert episode.raised_by is not None, "only a part's finding makes it worse"
            lead = episode.raised_by
            parts = parts_of[episode.id]
            events.add(
                lead,
                "episode_raised",
                {"episode": episode.id, "from": episode.was.value, "to": episode.severity.value},
            )
        if episode.routed_to is None:
            continue
        do_notify(
            conn,
            alert_id=lead,
            severity=episode.severity,
            policy=policies[episode.routed_to],
            route=episode.route,
            now=now,
            parts=parts,
            episode_id=episode.id,
            events=events,
            recipients=recipients,
        )
    events.write(conn, now=now)


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


_OPEN = """
INSERT INTO alerts (patient_id, rule_id, rule_version, severity, category, code, direction,
                    first_value, last_value, first_measured_at, last_measured_at, occurrences,
                    created_at, updated_at, late, details, routed_to, route, episode_id)
SELECT v.patient_id, v.instance, v.version, v.severity, v.category, v.code, v.direction, v.value,
       v.value, v.at, v.at, 1, %(now)s, %(now)s, v.late, v.details, e.routed_to, e.route,
       v.episode_id
FROM unnest(%(patient_id)b::uuid[], %(instance)b::text[], %(version)b::int[],
            %(severity)b::text[],
            %(category)b::text[], %(code)b::text[], %(direction)b::text[], %(value)b::float8[],
            %(at)b::timestamptz[], %(late)b::bool[], %(details)b::jsonb[],
            %(episode_id)b::bigint[])
     AS v(patient_id, instance, version, severity, category, code, direction, value, at, late,
          details, episode_id)
JOIN alert_episodes e ON e.id = v.episode_id
RETURNING patient_id, rule_id, id
"""


def _open_all(
    conn: psycopg.Connection,
    *,
    openings: Mapping[Key, tuple[Finding, bool]],
    episodes: Mapping[Key, Episode],
    now: datetime,
) -> list[tuple[Key, int]]:
    """Open one alert per key in its episode (routed as the episode is), with its events:
    one statement and one for the events, for the whole batch."""
    if not openings:
        return []
    columns: dict[str, list[Any]] = defaultdict(list)
    for key, (finding, late) in openings.items():
        patient_id, instance = key
        for name, value in (
            ("patient_id", patient_id),
            ("instance", instance),
            ("version", finding.rule_version),
            ("severity", finding.severity.value),
            ("category", finding.category.value),
            ("code", finding.code),
            ("direction", finding.direction),
            ("value", finding.value),
            ("at", finding.measured_at),
            ("late", late),
            ("details", Jsonb(_json_safe(finding.details))),
            ("episode_id", episodes[key].id),
        ):
            columns[name].append(value)
    opened = [
        ((patient_id, instance), alert_id)
        for patient_id, instance, alert_id in conn.execute(_OPEN, {**columns, "now": now})
    ]
    events = EventBatch()
    for key, alert_id in opened:
        finding, late = openings[key]
        episode = episodes[key]
        events.add(
            alert_id,
            "opened",
            {
                "severity": finding.severity.value,
                "route": episode.route,
                "late": late,
                "episode": episode.id,
            },
        )
    events.write(conn, now=now)
    return opened


_FOLD = """
UPDATE alerts a SET
    occurrences = a.occurrences + v.count,
    updated_at = %(now)s,
    severity = CASE WHEN v.raised THEN v.severity ELSE a.severity END,
    last_value = CASE WHEN v.at >= a.last_measured_at THEN v.value ELSE a.last_value END,
    direction = CASE WHEN v.at >= a.last_measured_at
                     THEN coalesce(v.direction, a.direction) ELSE a.direction END,
    details = CASE WHEN v.at >= a.last_measured_at THEN v.details ELSE a.details END,
    last_measured_at = greatest(a.last_measured_at, v.at),
    first_measured_at = least(a.first_measured_at, v.earliest),
    late = a.late OR v.late
FROM unnest(%(id)b::bigint[], %(count)b::int[], %(raised)b::bool[], %(severity)b::text[],
            %(at)b::timestamptz[], %(earliest)b::timestamptz[], %(value)b::float8[],
            %(direction)b::text[], %(details)b::jsonb[], %(late)b::bool[])
     AS v(id, count, raised, severity, at, earliest, value, direction, details, late)
WHERE a.id = v.id
RETURNING a.id, a.episode_id
"""


def _fold(
    conn: psycopg.Connection,
    *,
    repeats: Mapping[tuple[int, Severity], Sequence[tuple[Finding, bool]]],
    now: datetime,
) -> list[tuple[int, int, Severity, Finding, bool]]:
    """Fold a batch's repeats into their open alerts in one statement; an alert whose
    severity rose records it (its episode notifies, alerts/episodes.py). Returns per alert
    (episode, alert, its severity now, the newest finding, late)."""
    if not repeats:
        return []
    rows: dict[str, list[Any]] = {
        name: []
        for name in (
            "id", "count", "raised", "severity", "at", "earliest", "value", "direction",
            "details", "late",
        )
    }  # fmt: skip
    newest_of: dict[int, tuple[Finding, Severity, Severity, bool]] = {}
    for (alert_id, was), findings in repeats.items():
        newest, _late = max(findings, key=lambda pair: pair[0].measured_at)
        worst = max((f.severity for f, _ in findings), key=lambda severity: severity.rank)
        late = any(late for _, late in findings)
        newest_of[alert_id] = (newest, was, worst, late)
        for name, value in (
            ("id", alert_id),
            ("count", len(findings)),
            ("raised", worst.rank > was.rank),
            ("severity", worst.value),
            ("at", newest.measured_at),
            ("earliest", min(f.measured_at for f, _ in findings)),
            ("value", newest.value),
            ("direction", newest.direction),
            ("details", Jsonb(_json_safe(newest.details))),
            ("late", late),
        ):
            rows[name].append(value)
    folded = []
    events = EventBatch()
    for alert_id, episode_id in conn.execute(_FOLD, {**rows, "now": now}):
        newest, was, worst, late = newest_of[alert_id]
        if worst.rank > was.rank:
            events.add(alert_id, "severity_raised", {"from": was.value, "to": worst.value})
        folded.append((episode_id, alert_id, worst if worst.rank > was.rank else was, newest, late))
    events.write(conn, now=now)
    return folded


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
