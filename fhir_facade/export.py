"""FHIR bulk export: NDJSON files, one per resource type (FHIR Bulk Data's output format).

``heimvakt export fhir`` writes ``Patient.ndjson``, ``Device.ndjson`` and
``Observation.ndjson`` for the patients named (or all), with the resources the facade serves,
built by the same code (fhir_facade.resources). The export is one access-log row naming every
patient in it, through interface ``cli``, written in the export's transaction before a line is
written. Observations are read by keyset in pages, as of the moment the export started.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import psycopg

from care.access import Action, Interface, Reason, do_log_access
from care.national_ids import NationalIds
from core.auth import Principal
from fhir_facade import queries, resources

PAGE: Final = 2000


def all_patients(conn: psycopg.Connection) -> list[UUID]:
    return [row[0] for row in conn.execute("SELECT id FROM patients ORDER BY id").fetchall()]


def export_ndjson(
    conn: psycopg.Connection,
    *,
    patient_ids: Sequence[UUID],
    directory: Path,
    principal: Principal,
    now: datetime,
    national_ids: NationalIds | None = None,
    progress: Callable[[int], None] = lambda done: None,
    page_size: int = PAGE,
) -> dict[str, int]:
    """Write the NDJSON files into `directory`; returns how many resources of each type.
    `progress` is told how many Observations each page of `page_size` wrote."""
    directory.mkdir(parents=True, exist_ok=True)
    do_log_access(
        conn,
        principal=principal,
        patient_ids=sorted(patient_ids),
        resource="fhir:export",
        action=Action.EXPORT,
        interface=Interface.CLI,
        reason=Reason.ADMINISTRATION,
        now=now,
    )
    chosen = ("p.id = ANY (%(exported)s)", {"exported": list(patient_ids)})
    counts = {
        "Patient": _write(
            directory / "Patient.ndjson",
            [
                resources.patient(p)
                for p in queries.patients(conn, visible=chosen, now=now, national_ids=national_ids)
            ],
        ),
        "Device": _write(
            directory / "Device.ndjson",
            [resources.device(d) for d, _seen in queries.devices(conn, visible=chosen, now=now)],
        ),
    }
    written = 0
    with (directory / "Observation.ndjson").open("w", encoding="utf-8") as out:
        after: queries.Position | None = None
        while True:
            rows = queries.observations(
                conn,
                visible=chosen,
                search=queries.ObservationFilter(received_by=now),
                newest_first=False,
                after=after,
                limit=page_size,
            )
            for row in rows:
                out.write(_line(resources.observation(row)))
            written += len(rows)
            progress(len(rows))
            if len(rows) < page_size:
                break
            last = rows[-1]
            after = queries.Position(last.measured_at, last.device_id, last.code)
    counts["Observation"] = written
    return counts


def _line(resource: dict[str, Any]) -> str:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"


def _write(path: Path, items: list[dict[str, Any]]) -> int:
    with path.open("w", encoding="utf-8") as out:
        out.writelines(_line(item) for item in items)
    return len(items)
