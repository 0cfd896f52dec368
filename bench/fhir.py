"""FHIR benchmark: how long the server takes to answer one page of a record system's
Observation search, ``GET /fhir/Observation?patient=…&_count=500``, paged through a year of one
patient's readings.

Run by ``python -m bench.fhir``. One run creates a database of its own on the machine's
PostgreSQL and seeds it set-based in SQL: a unit, a nurse in the care team that follows one
patient, and a year of that patient's home measurements from three devices (SpO2 and pulse
twice a day from an oximeter, blood pressure twice a day from a cuff, weight and respiratory
rate daily from a scale and the tablet): about 3,000 Observations, blood pressure being one
Observation of two stored readings. The whole app (``heimvakt.app.create_app``) serves the
nurse in this process; she follows the ``next`` links from the first page to the last,
`rounds` times after one warm-up round, and each page is timed from request to the last byte
of the answer. A run checks that the pages hold every Observation once. Figures go into the
"FHIR" section of docs/benchmarks.md. ``--smoke`` runs the same with small numbers, writes
nothing, and exits 1 if a page is not 200 or the pages lose or repeat an Observation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from bench.harness import (
    Checks,
    Naming,
    bench_database,
    bench_main,
    bench_parser,
    percentile,
)
from bench.served import served_app
from core.clock import ManualClock
from fhir_facade.queries import count_observations

NOW = datetime(2027, 1, 5, 11, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Sizes:
    days: int
    count: int
    """``_count``: Observations per page."""
    rounds: int


FULL = Sizes(days=365, count=500, rounds=5)
SMOKE = Sizes(days=20, count=25, rounds=1)

SEED = """
INSERT INTO organisations (name, kind) VALUES ('Hjemmeoppfølging', 'municipal_service');
INSERT INTO staff (display_name, role) VALUES ('Sykepleier', 'nurse');
INSERT INTO staff_memberships (staff_id, organisation_id, valid_from)
SELECT s.id, o.id, %(start)s - interval '1 year' FROM staff s, organisations o;
INSERT INTO care_teams (name) VALUES ('Team');
INSERT INTO care_team_members (team_id, staff_id, organisation_id, valid_from)
SELECT t.id, s.id, o.id, %(start)s - interval '1 year' FROM care_teams t, staff s, organisations o;
INSERT INTO patients (display_name, conditions) VALUES ('Pasient', ARRAY['copd', 'heart_failure']);
INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from)
SELECT p.id, o.id, 'responsible', %(start)s FROM patients p, organisations o;
INSERT INTO care_team_patients (team_id, patient_id, valid_from)
SELECT t.id, p.id, %(start)s FROM care_teams t, patients p;
INSERT INTO devices (id, kind) VALUES
    ('oximeter-1', 'pulse_oximeter'), ('cuff-1', 'blood_pressure_monitor'), ('scale-1', 'scale'),
    ('tablet-1', 'tablet');
INSERT INTO device_assignments (device_id, patient_id, valid_from)
SELECT d.id, p.id, %(start)s - interval '1 day' FROM devices d, patients p;

-- (device, code, value, unit, times a day)
INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, received_at)
SELECT m.device, m.code, t.at, p.id, m.value + (s.n %% 5), m.unit, t.at + interval '40 seconds'
  FROM patients p
 CROSS JOIN (VALUES ('oximeter-1', '59408-5', 92, '%%', 2), ('oximeter-1', '8867-4', 70, '/min', 2),
                    ('cuff-1', '8480-6', 128, 'mm[Hg]', 2), ('cuff-1', '8462-4', 80, 'mm[Hg]', 2),
                    ('scale-1', '29463-7', 81, 'kg', 1), ('tablet-1', '9279-1', 16, '/min', 1))
       AS m(device, code, value, unit, per_day)
 CROSS JOIN generate_series(0, %(days)s * 2 - 1) s(n)
 CROSS JOIN LATERAL (SELECT %(start)s + s.n * interval '12 hours' + interval '7 hours' AS at) t
 WHERE m.per_day = 2 OR s.n %% 2 = 0;
"""


def seed(conn: psycopg.Connection, sizes: Sizes) -> tuple[UUID, UUID]:
    """The world; returns the nurse and the patient."""
    with psycopg.ClientCursor(conn) as cur:
        cur.execute(SEED, {"start": NOW - timedelta(days=sizes.days), "days": sizes.days})
    conn.execute("VACUUM ANALYZE")
    row = conn.execute("SELECT (SELECT id FROM staff), (SELECT id FROM patients)").fetchone()
    assert row is not None
    return row[0], row[1]


@dataclass(frozen=True, slots=True)
class Timings:
    pages: list[float]
    pages_per_round: int
    observations: int
    readings: int
    load: tuple[float, float]


def measure(database_url: str, sizes: Sizes, checks: Checks) -> Timings:
    with psycopg.connect(database_url, autocommit=True) as conn:
        nurse, patient = seed(conn, sizes)
        observations = count_observations(conn, patient_ids=[patient])
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()
        assert readings is not None
    with ConnectionPool(database_url, min_size=2, max_size=4) as pool:
        app, token = served_app(pool, ManualClock(NOW), staff_id=nurse)
        headers = {"Authorization": f"Bearer {token}"}
        timed: list[float] = []
        pages_per_round = 0
        load_before = os.getloadavg()[0]
        with TestClient(app) as client:
            for round_ in range(sizes.rounds + 1):  # the first warms the caches, not counted
                url = f"/fhir/Observation?patient={patient}&_count={sizes.count}"
                seen: list[str] = []
                pages = 0
                while url:
                    started = time.perf_counter()
                    response = client.get(url, headers=headers)
                    elapsed = time.perf_counter() - started
                    checks.expect(
                        response.status_code == 200,
                        f"a page answered {response.status_code}: {response.text[:200]}",
                    )
                    if response.status_code != 200:
                        break
                    bundle = response.json()
                    seen += [e["resource"]["id"] for e in bundle["entry"]]
                    pages += 1
                    if round_:
                        timed.append(elapsed)
                    links = {link["relation"]: link["url"] for link in bundle["link"]}
                    url = _path(links["next"]) if "next" in links else ""
                checks.expect(
                    len(seen) == len(set(seen)) == observations,
                    f"the pages held {len(seen)} Observations ({len(set(seen))} different)"
                    f" of {observations}",
                )
                pages_per_round = pages
    return Timings(
        pages=timed,
        pages_per_round=pages_per_round,
        observations=observations,
        readings=readings[0],
        load=(load_before, os.getloadavg()[0]),
    )


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def report(
    timings: Timings, sizes: Sizes, checks: Checks, *, measured: str, machine_line: str
) -> str:
    ordered = sorted(timings.pages)
    median, p95 = statistics.median(ordered), percentile(ordered, 0.95)
    return "\n".join(
        [
            "## FHIR",
            "",
            measured,
            "",
            machine_line,
            "",
            f"One patient's {sizes.days} days of home measurements: {timings.readings:,}"
            f" readings, {timings.observations:,} Observations (blood pressure is one"
            " Observation of two readings; bench/fhir.py describes the world). A nurse of the"
            f" patient's care team pages through `GET /fhir/Observation?patient=…&_count="
            f"{sizes.count}` by its next links ({timings.pages_per_round} pages), through the"
            f" whole app in the benchmark process, {sizes.rounds} times after one warm-up; the"
            " server time is from request to the last byte of the answer. The machine is"
            f" shared: its load average was {timings.load[0]:.1f} before the requests and"
            f" {timings.load[1]:.1f} after (2 CPUs).",
            "",
            "| Request | Pages timed | Median | p95 |",
            "| --- | --- | --- | --- |",
            f"| One page of {sizes.count} Observations | {len(ordered)} |"
            f" {median * 1000:.0f} ms | {p95 * 1000:.0f} ms |",
            "",
            *[f"{warning}\n" for warning in checks.warnings],
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    def section(
        stack: contextlib.ExitStack, options: argparse.Namespace, checks: Checks, naming: Naming
    ) -> str:
        sizes = SMOKE if options.smoke else FULL
        database_url = stack.enter_context(bench_database(options.server_url))
        timings = measure(database_url, sizes, checks)
        return report(
            timings,
            sizes,
            checks,
            measured=naming.measured(),
            machine_line=naming.machine(),
        )

    return bench_main(
        module="bench.fhir",
        target="bench-fhir",
        heading="FHIR",
        parser=bench_parser(__doc__),
        argv=argv,
        section=section,
    )


if __name__ == "__main__":
    sys.exit(main())
