"""Figures benchmark: how long the server takes to draw the figures page (and to answer
``GET /api/v1/figures``) for a health community of 5,000 patients with a year of data.

Run by ``python -m bench.figures``. One run creates a database of its own on the machine's
PostgreSQL and seeds it set-based in SQL: ten units (half with opening hours), ten nurses and
a coordinator per unit, 5,000 patients (COPD, heart failure or both) followed for a year, one
in ten handed over to another unit mid-year, a daily measurement per condition in every care
plan (about 90 % of them received), the daily symptom check on about 70 % of days, about one
alert per 20 patient-days (acknowledged and resolved after a few minutes to hours, one in
twenty escalated) with one notification each; readings and answers are counted per week as
ingest and the questionnaire route count them (core/weeks.py). The whole app
(``heimvakt.app.create_app``), with the garbage collector set as ``heimvakt up`` sets it,
then serves a coordinator in this process: the figures page for the default period (the last
four whole weeks, its previous period and the weekly trend, plus the deviations list) is asked
for `requests` times, as the browser asks for it after the address changes, and timed from
request to the last byte of the answer; the same for the API's JSON. Figures go into the
"Figures" section of docs/benchmarks.md. ``--smoke`` runs the same with small numbers, writes
nothing, and exits 1 if an answer is not the page or not 200. ``--keep-seeded NAME`` seeds
database NAME once, keeps it, and measures each run on a copy of it (for profiling).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from bench.harness import (
    Checks,
    Naming,
    bench_database,
    bench_main,
    bench_parser,
    met,
    percentile,
)
from bench.served import served_app
from core.clock import ManualClock
from core.links import DASHBOARD_PATH, FIGURES_SEGMENT
from core.migrate import migrate
from core.weeks import COUNT_ANSWERS, COUNT_READINGS
from dashboard.app import routing_request
from heimvakt.auth import SESSION_COOKIE
from heimvakt.worker import freeze_startup_objects

TARGET_SECONDS = 1.0
"""The page's server time, median and p95."""
NOW = datetime(2027, 1, 5, 11, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Sizes:
    patients: int
    days: int
    requests: int


FULL = Sizes(patients=5000, days=365, requests=30)
SMOKE = Sizes(patients=20, days=63, requests=1)

SEED = """
-- Ten units, half of them open on weekdays only; ten nurses and a coordinator in each.
INSERT INTO organisations (name, kind, opening_hours)
SELECT 'Enhet ' || u,
       CASE WHEN u %% 2 = 0 THEN 'hospital_department' ELSE 'municipal_service' END,
       CASE WHEN u %% 2 = 0
            THEN '[{"weekday":0,"opens":"08:00","closes":"15:30"},
                   {"weekday":1,"opens":"08:00","closes":"15:30"},
                   {"weekday":2,"opens":"08:00","closes":"15:30"},
                   {"weekday":3,"opens":"08:00","closes":"15:30"},
                   {"weekday":4,"opens":"08:00","closes":"15:30"}]'::jsonb
            ELSE '[]'::jsonb END
  FROM generate_series(1, 10) u;

CREATE TEMP TABLE units AS
SELECT id, row_number() OVER (ORDER BY name) - 1 AS n FROM organisations;

INSERT INTO staff (display_name, role)
SELECT 'Ansatt ' || u.n || '-' || s, CASE WHEN s = 0 THEN 'coordinator' ELSE 'nurse' END
  FROM units u, generate_series(0, 10) s;

INSERT INTO staff_memberships (staff_id, organisation_id, valid_from)
SELECT st.id, u.id, %(start)s - interval '1 year'
  FROM staff st JOIN units u ON st.display_name LIKE 'Ansatt ' || u.n || '-%%';

-- Patients: a third COPD, a third heart failure, a third both.
INSERT INTO patients (display_name, conditions)
SELECT 'Pasient ' || i,
       CASE i %% 3 WHEN 0 THEN ARRAY['copd'] WHEN 1 THEN ARRAY['heart_failure']
                  ELSE ARRAY['copd', 'heart_failure'] END
  FROM generate_series(1, %(patients)s) i;

CREATE TEMP TABLE followed AS
SELECT p.id AS patient_id, p.conditions, (row_number() OVER (ORDER BY p.id) - 1) AS i
  FROM patients p;

-- Each patient followed by unit i %% 10 from a day in the first month; one in ten handed over
-- to the next unit mid-year.
INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from, valid_to)
SELECT f.patient_id, u.id, 'responsible', %(start)s + (f.i %% 30) * interval '1 day',
       CASE WHEN f.i %% 10 = 0 THEN %(start)s + %(days)s / 2 * interval '1 day' END
  FROM followed f JOIN units u ON u.n = f.i %% 10;

INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from)
SELECT f.patient_id, u.id, 'responsible', %(start)s + %(days)s / 2 * interval '1 day'
  FROM followed f JOIN units u ON u.n = (f.i + 1) %% 10
 WHERE f.i %% 10 = 0;

INSERT INTO handovers (patient_id, from_organisation_id, to_organisation_id, note, proposed_by,
                       proposed_at, state, decided_at)
SELECT f.patient_id, a.id, b.id, 'Overføring',
       (SELECT id FROM staff WHERE role = 'nurse' LIMIT 1),
       %(start)s + %(days)s / 2 * interval '1 day' - interval '5 hours', 'accepted',
       %(start)s + %(days)s / 2 * interval '1 day'
  FROM followed f JOIN units a ON a.n = f.i %% 10 JOIN units b ON b.n = (f.i + 1) %% 10
 WHERE f.i %% 10 = 0;

INSERT INTO care_teams (name) VALUES ('Koordinatorteam');
INSERT INTO care_team_members (team_id, staff_id, organisation_id, valid_from)
SELECT (SELECT id FROM care_teams LIMIT 1), m.staff_id, m.organisation_id,
       %(start)s - interval '1 year'
  FROM staff_memberships m JOIN staff s ON s.id = m.staff_id AND s.role = 'coordinator';

INSERT INTO care_team_patients (team_id, patient_id, valid_from)
SELECT (SELECT id FROM care_teams LIMIT 1), f.patient_id, %(start)s FROM followed f;

-- Care plans: SpO2 daily for COPD, weight daily for heart failure.
INSERT INTO care_plans (patient_id, template, version, spo2_scale, updated_at)
SELECT patient_id, 'copd', 1, 1, %(start)s FROM followed;
INSERT INTO care_plan_versions (patient_id, version, changed_at, reason, new)
SELECT patient_id, 1, %(start)s, 'Oppstart', '{}' FROM followed;
INSERT INTO care_plan_measurements (patient_id, code, every_hours, grace_hours)
SELECT f.patient_id, m.code, 24, 12
  FROM followed f
  JOIN (VALUES ('copd', '59408-5'), ('heart_failure', '29463-7')) m(condition, code)
    ON m.condition = ANY (f.conditions);

-- About nine in ten scheduled readings arrive, at a time of day that varies by patient.
INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit, received_at)
SELECT 'dev-' || f.i || '-' || m.code, m.code,
       %(start)s + d * interval '1 day' + (f.i %% 12 + 7) * interval '1 hour',
       f.patient_id, 95, '%%',
       %(start)s + d * interval '1 day' + (f.i %% 12 + 7) * interval '1 hour'
  FROM followed f
  JOIN care_plan_measurements m ON m.patient_id = f.patient_id
  CROSS JOIN generate_series(0, %(days)s - 1) d
 WHERE (f.i * 7 + d * 13) %% 10 <> 0;

INSERT INTO questionnaire_responses (patient_id, kind, answered_at, answers, received_at)
SELECT f.patient_id, 'daily_symptoms', %(start)s + d * interval '1 day' + interval '8 hours',
       '{}', %(start)s + d * interval '1 day' + interval '8 hours'
  FROM followed f CROSS JOIN generate_series(0, %(days)s - 1) d
 WHERE (f.i * 3 + d * 7) %% 10 < 7;

-- About one alert per 20 patient-days, mostly acknowledged and resolved; each its own episode
-- (at most one a patient and day, so patient and time name it).
CREATE TEMP TABLE raised AS
SELECT f.patient_id, 'rule_' || d AS rule_id,
       CASE WHEN d %% 3 = 0 THEN 'red' ELSE 'yellow' END AS severity,
       CASE WHEN d %% 7 = 0 THEN 'open' ELSE 'resolved' END AS state,
       (ARRAY['clinical', 'adherence', 'technical'])[d %% 3 + 1] AS category, t.at,
       CASE WHEN d %% 7 <> 0 THEN t.at + (5 + (f.i + d) %% 90) * interval '1 minute' END
           AS acknowledged_at,
       CASE WHEN d %% 7 <> 0 THEN t.at + (60 + (f.i * d) %% 600) * interval '1 minute' END
           AS resolved_at
  FROM followed f
  CROSS JOIN generate_series(0, %(days)s - 1) d
  CROSS JOIN LATERAL (SELECT %(start)s + d * interval '1 day'
                             + ((f.i * 5 + d) %% 24) * interval '1 hour' AS at) t
 WHERE (f.i + d) %% 20 = 0;

INSERT INTO alert_episodes (patient_id, problem, severity, state, first_measured_at,
                            last_measured_at, created_at, updated_at, acknowledged_at,
                            resolved_at)
SELECT patient_id, category, severity, state, at, at, at, at, acknowledged_at, resolved_at
  FROM raised;

INSERT INTO alerts (patient_id, rule_id, rule_version, severity, state, category,
                    first_measured_at, last_measured_at, created_at, updated_at,
                    acknowledged_at, resolved_at, episode_id)
SELECT r.patient_id, r.rule_id, 1, r.severity, r.state, r.category, r.at, r.at, r.at, r.at,
       r.acknowledged_at, r.resolved_at, e.id
  FROM raised r
  JOIN alert_episodes e ON e.patient_id = r.patient_id AND e.created_at = r.at;

INSERT INTO alert_events (alert_id, at, action, details)
SELECT id, created_at + interval '15 minutes', 'escalated', '{"to": "backup"}'
  FROM alerts WHERE state = 'open' AND id %% 3 = 0;

INSERT INTO notifications (alert_id, episode_id, created_at, channel, address, message, state,
                           attempts, next_attempt_at)
SELECT id, episode_id, created_at, 'email', 'vakt@example.org', '{}',
       CASE WHEN id %% 50 = 0 THEN 'dead' ELSE 'delivered' END, 1 + id %% 4, created_at
  FROM alerts;
"""
# Counted per week as ingest and the questionnaire route count what they store (core.weeks).
SEED += ";\n".join(
    (
        COUNT_READINGS.format(source="readings"),
        COUNT_ANSWERS.format(source="questionnaire_responses"),
    )
)


def seed(conn: psycopg.Connection, sizes: Sizes) -> UUID:
    """The world; returns the coordinator of the first unit."""
    start = NOW - timedelta(days=sizes.days + 2)
    # Client-side binding: one round trip for the whole script.
    with psycopg.ClientCursor(conn) as cur:
        cur.execute(SEED, {"start": start, "days": sizes.days, "patients": sizes.patients})
    # As autovacuum leaves a year of data: statistics, and index-only scans that need not
    # visit the table.
    conn.execute("VACUUM ANALYZE")
    return _coordinator(conn)


def _coordinator(conn: psycopg.Connection) -> UUID:
    row = conn.execute(
        "SELECT id FROM staff WHERE role = 'coordinator' ORDER BY display_name LIMIT 1"
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


@dataclass(frozen=True, slots=True)
class Timings:
    page: list[float]
    api: list[float]
    readings: int
    alerts: int
    load: tuple[float, float]
    """The machine's 1-minute load average before and after the timed requests."""


def seeded_template(
    server_url: str,
    name: str,
    sizes: Sizes,
    *,
    seed_world: Callable[[psycopg.Connection], object] | None = None,
) -> None:
    """Create, migrate and seed database `name` unless it exists (then only migrate it); it
    is kept, so that later runs copy it (seconds) instead of seeding again (a minute). Drop
    it after a change to SEED. `seed_world`: another benchmark's seeding (bench/dashboard.py
    adds readings to this world)."""
    url = make_conninfo(server_url, dbname=name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            migrate(url)
            return
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            if seed_world is None:
                seed(conn, sizes)
            else:
                seed_world(conn)
    except BaseException:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        raise


def measure(database_url: str, sizes: Sizes, checks: Checks, *, seeded: bool) -> Timings:
    with psycopg.connect(database_url, autocommit=True) as conn:
        coordinator = _coordinator(conn) if seeded else seed(conn, sizes)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM alerts)"
        ).fetchone()
        assert counts is not None
    with ConnectionPool(database_url, min_size=2, max_size=4) as pool:
        app, token = served_app(pool, ManualClock(NOW), staff_id=coordinator)
        # As `heimvakt up` does before it serves (heimvakt/platform.py): the start-up's
        # objects out of the collector's sight, and its thresholds.
        freeze_startup_objects()
        page: list[float] = []
        api: list[float] = []
        load_before = os.getloadavg()[0]
        with TestClient(app) as client:
            client.cookies.set(SESSION_COOKIE, token)
            for n in range(sizes.requests + 1):  # the first warms the caches, not counted
                started = time.perf_counter()
                response = client.post(
                    f"{DASHBOARD_PATH}_dash-update-component",
                    json=routing_request(DASHBOARD_PATH + FIGURES_SEGMENT, "?lang=nb"),
                )
                elapsed = time.perf_counter() - started
                checks.expect(
                    response.status_code == 200 and "Styringsdata" in response.text,
                    f"the figures page answered {response.status_code}: {response.text[:200]}",
                )
                if n:
                    page.append(elapsed)
            for n in range(sizes.requests + 1):
                started = time.perf_counter()
                response = client.get(
                    "/api/v1/figures", headers={"Authorization": f"Bearer {token}"}
                )
                elapsed = time.perf_counter() - started
                checks.expect(
                    response.status_code == 200, f"the figures API answered {response.status_code}"
                )
                if n:
                    api.append(elapsed)
    return Timings(
        page=page,
        api=api,
        readings=counts[0],
        alerts=counts[1],
        load=(load_before, os.getloadavg()[0]),
    )


def _summary(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), percentile(ordered, 0.95)


def report(timings: Timings, sizes: Sizes, *, measured: str, machine_line: str) -> str:
    page, api = _summary(timings.page), _summary(timings.api)
    ok = page[0] <= TARGET_SECONDS and page[1] <= TARGET_SECONDS
    return "\n".join(
        [
            "## Figures",
            "",
            measured,
            "",
            machine_line,
            "",
            f"{sizes.patients:,} patients in ten units over {sizes.days} days:"
            f" {timings.readings:,} readings, {timings.alerts:,} alerts, the daily symptom"
            " check on about 70 % of days (bench/figures.py describes the world). A"
            " coordinator asks for the default period (the last four whole weeks, with the"
            " previous four and the weekly trend, and the deviations list) through the whole"
            f" app in the benchmark process, {sizes.requests} times after one warm-up; the"
            " server time is from request to the last byte of the answer. The machine is"
            f" shared: its load average was {timings.load[0]:.1f} before the requests and"
            f" {timings.load[1]:.1f} after (2 CPUs).",
            "",
            "| Request | Median | p95 | Target (median and p95) | Met |",
            "| --- | --- | --- | --- | --- |",
            f"| Figures page (Dash callback) | {page[0] * 1000:.0f} ms | {page[1] * 1000:.0f} ms"
            f" | <= {TARGET_SECONDS * 1000:.0f} ms | {met(ok)} |",
            f"| `GET /api/v1/figures` (JSON) | {api[0] * 1000:.0f} ms | {api[1] * 1000:.0f} ms"
            " | | |",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--keep-seeded",
        metavar="NAME",
        help="seed database NAME once and keep it; each run measures on a copy of it",
    )

    def section(
        stack: contextlib.ExitStack, options: argparse.Namespace, checks: Checks, naming: Naming
    ) -> str:
        sizes = SMOKE if options.smoke else FULL
        if options.keep_seeded:
            seeded_template(options.server_url, options.keep_seeded, sizes)
        database_url = stack.enter_context(
            bench_database(options.server_url, template=options.keep_seeded)
        )
        timings = measure(database_url, sizes, checks, seeded=bool(options.keep_seeded))
        return report(timings, sizes, measured=naming.measured(), machine_line=naming.machine())

    return bench_main(
        module="bench.figures",
        target="bench-figures",
        heading="Figures",
        parser=parser,
        argv=argv,
        section=section,
    )


if __name__ == "__main__":
    sys.exit(main())
