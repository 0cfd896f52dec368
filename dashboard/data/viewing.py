"""Who looks at a page, and whether an access-log row already covers what they see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg

from care.access import Interface, access_log
from core.auth import Principal


@dataclass(frozen=True, slots=True)
class View:
    """Who looks, when, and whether this is the page's periodic refresh.

    Opening a page (first load, a link, a changed address) writes one access-log row, in the
    transaction that reads the data. The refresh every few seconds checks access again but
    writes a row only when no row of this viewer, for this page and covering every patient
    shown, is younger than `LOG_COVERS`: the screen shows the same person the same view that
    is already logged, and a row every five seconds per open screen would drown the log that
    patients and auditors read. The check is made in the database, not in this process, so
    a patient newly on the worklist, a restart, another server process or a request that only
    claims to be a refresh still leaves a row.
    """

    principal: Principal
    now: datetime
    refresh: bool


LOG_COVERS: Final = timedelta(minutes=10)
"""How long one access-log row covers the refreshes of the page it records."""
_RECENT_ROWS: Final = 200


def already_logged(
    conn: psycopg.Connection, *, view: View, resource: str, patient_ids: Sequence[UUID]
) -> bool:
    """Whether this refresh is covered by a recent row (see `View`); never for a page opened."""
    if not view.refresh:
        return False
    shown = set(patient_ids)
    recent = access_log(
        conn,
        actor_id=view.principal.id,
        patient_id=patient_ids[0] if len(shown) == 1 else None,
        since=view.now - LOG_COVERS,
        limit=_RECENT_ROWS,
        offset=0,
    )
    return any(
        entry.interface == Interface.DASHBOARD
        and entry.resource == resource
        and entry.actor_kind == view.principal.kind
        and shown <= set(entry.patient_ids)
        for entry in recent
    )
