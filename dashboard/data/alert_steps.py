"""What the dashboard shows beside an episode so a nurse can take the next step on it: the notes
written on its alerts, the names of the people who acknowledged or hold it, and the colleagues
it can be given to. Each read covers a whole page of episodes in one statement."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from alerts.queries import Episode
from care.access import ROLES, Permission
from care.people import current


@dataclass(frozen=True, slots=True)
class Note:
    at: datetime
    author: str
    text: str
    """As the author wrote it: shown as text, never as markup."""


@dataclass(frozen=True, slots=True)
class Snooze:
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Colleague:
    id: UUID
    name: str


def notes_of(conn: psycopg.Connection, *, episode_ids: Sequence[int]) -> dict[int, list[Note]]:
    """The notes on each episode's alerts, oldest first."""
    found: dict[int, list[Note]] = defaultdict(list)
    if not episode_ids:
        return found
    rows = conn.execute(
        """
        SELECT a.episode_id, ev.at, coalesce(s.display_name, ''), ev.details->>'note'
          FROM alert_events ev
          JOIN alerts a ON a.id = ev.alert_id
          LEFT JOIN staff s ON s.id = ev.actor
         WHERE a.episode_id = ANY(%s) AND ev.action = 'noted'
         ORDER BY ev.id
        """,
        (list(episode_ids),),
    )
    for episode_id, at, author, text in rows:
        found[episode_id].append(Note(at=at, author=author, text=text or ""))
    return found


def snoozes_of(
    conn: psycopg.Connection, *, episodes: Sequence[Episode], now: datetime
) -> dict[int, Snooze]:
    """The snooze in force on each episode (on any of its alerts), the longest if several."""
    instances = {(e.patient_id, part.instance): e.id for e in episodes for part in e.parts}
    if not instances:
        return {}
    rows = conn.execute(
        "SELECT patient_id, rule_id, until, reason FROM alert_snoozes"
        " WHERE patient_id = ANY(%s) AND until > %s ORDER BY until",
        (list({patient for patient, _instance in instances}), now),
    )
    found: dict[int, Snooze] = {}
    for patient_id, instance, until, reason in rows:
        episode = instances.get((patient_id, instance))
        if episode is not None:
            found[episode] = Snooze(until=until, reason=reason)
    return found


def staff_names(conn: psycopg.Connection, *, episodes: Iterable[Episode]) -> dict[UUID, str]:
    """The names of everyone who acknowledged or holds one of the episodes."""
    ids = {
        person
        for episode in episodes
        for person in (episode.acknowledged_by, episode.assigned_to)
        if person is not None
    }
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT id, display_name FROM staff WHERE id = ANY(%s)", (list(ids),)
    ).fetchall()
    return dict(rows)


def colleagues(conn: psycopg.Connection, *, staff_id: UUID, now: datetime) -> list[Colleague]:
    """Who an alert can be given to: the clinicians in the viewer's care teams now (the viewer
    included), by name. The teams are the ones through which the viewer sees her patients."""
    rows = conn.execute(
        f"""
        SELECT DISTINCT s.id, s.display_name
          FROM care_team_members tm
          JOIN staff s ON s.id = tm.staff_id
         WHERE {current("tm")} AND s.role = ANY(%(roles)s)
           AND tm.team_id IN (SELECT mine.team_id FROM care_team_members mine
                               WHERE mine.staff_id = %(staff)s AND {current("mine")})
         ORDER BY s.display_name, s.id
        """,
        {"now": now, "staff": staff_id, "roles": sorted(ROLES[Permission.ACT_ON_ALERT])},
    ).fetchall()
    return [Colleague(id=row[0], name=row[1]) for row in rows]
