"""Dashboard benchmark: how long the server takes for a nurse's worklist and for a patient's
page over 365 days, and how long until the worklist is visible in a browser, for 5,000
patients with a year of readings (about eight a day each), on plain PostgreSQL.

Run by ``python -m bench.dashboard``. The world is bench/figures.py's (ten units, 5,000
patients followed for a year, care plans, alerts and notifications; its daily SpO2 or weight
reading), to which this adds seven more readings a day per patient with COPY: pulse twice,
blood pressure (systolic and diastolic), peak flow twice and an evening SpO2; then every
reading is counted per week as ingest counts it (core/weeks.py). One nurse of the first unit
is in the care team that follows all 5,000 patients; on each run's copy a nurse of the unit
with the most patients gets a care team following those (about 1,000). Timed, in the
benchmark's process:

- the worklist loader, ``dashboard.data.worklist.load_worklist``, for the unit's nurse, as the
  page calls it (its own transaction, with its access-log row), and the whole worklist page
  (the Dash callback through the whole app, from request to the last byte); the loader also
  for the nurse whose team follows all 5,000;
- a patient's page (one of hers) with the 365-day range through the whole app: first opened
  (the closed weeks are rolled up then, dashboard/data/trend_days.py), each time another
  patient, and opened again (the rollup kept);
- in Chromium (Playwright, as the tests drive it) against the app on a real port, served by
  a process of its own: from navigation to the worklist's first row being visible, each
  time in a new tab.

Figures go into the "Dashboard" section of docs/benchmarks.md. ``--smoke`` runs the same with
small numbers and without the browser, writes nothing, and exits 1 if an answer is not the
page. ``--keep-seeded NAME`` seeds database NAME once, keeps it, and measures each run on a
copy of it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import multiprocessing
import os
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from psycopg_pool import ConnectionPool

from bench import figures
from bench.harness import (
    Checks,
    Naming,
    PhaseBroken,
    bench_database,
    bench_main,
    bench_parser,
    met,
    percentile,
)
from bench.served import served_app
from core.auth import Principal
from core.clock import ManualClock
from core.links import DASHBOARD_PATH, PATIENTS_SEGMENT
from core.weeks import COUNT_READINGS
from dashboard.app import routing_request
from dashboard.data.trend_days import DAY_SUMMARY, day_summaries
from dashboard.data.viewing import View
from dashboard.data.worklist import load_worklist
from heimvakt.auth import SESSION_COOKIE
from heimvakt.embedded import free_port
from heimvakt.worker import freeze_startup_objects

WORKLIST_TARGET = 0.300
PATIENT_TARGET = 0.200
"""Server time, median and p95."""
NOW = figures.NOW
WORKLIST_ROW = ".worklist-row"
BROWSER_WAIT = 180_000
"""Milliseconds the browser may take to show the worklist before the run gives up on it."""


@dataclass(frozen=True, slots=True)
class Sizes:
    world: figures.Sizes
    requests: int
    browser_loads: int
    """0: no browser (the smoke run, which must stay within seconds)."""


FULL = Sizes(figures.Sizes(patients=5000, days=365, requests=0), requests=30, browser_loads=5)
SMOKE = Sizes(figures.Sizes(patients=20, days=35, requests=0), requests=1, browser_loads=0)

EXTRA_READINGS = (
    # (code, unit, hour of day, typical value, step between values)
    ("8867-4", "/min", 8, 78.0, 2.0),
    ("8867-4", "/min", 20, 74.0, 2.0),
    ("8480-6", "mm[Hg]", 9, 132.0, 3.0),
    ("8462-4", "mm[Hg]", 9, 82.0, 2.0),
    ("19935-6", "L/min", 8, 320.0, 8.0),
    ("19935-6", "L/min", 19, 330.0, 8.0),
    ("59408-5", "%", 21, 94.0, 1.0),
)
"""Seven readings a day besides the world's one: about eight a day with the care plan's."""

NURSE_JOINS_TEAM = """
INSERT INTO care_team_members (team_id, staff_id, organisation_id, valid_from)
SELECT t.id, s.id, m.organisation_id, %(since)s
  FROM care_teams t, staff s JOIN staff_memberships m ON m.staff_id = s.id
 WHERE s.role = 'nurse' AND s.display_name = (
       SELECT min(display_name) FROM staff WHERE role = 'nurse')
 LIMIT 1
RETURNING staff_id, organisation_id
"""


def seed(conn: psycopg.Connection, sizes: Sizes) -> None:
    """bench/figures.py's world, seven more readings a day per patient, and the nurse."""
    figures.seed(conn, sizes.world)
    _copy_readings(conn, sizes.world)
    conn.execute("TRUNCATE reading_weeks")
    conn.execute(COUNT_READINGS.format(source="readings"))
    conn.execute(NURSE_JOINS_TEAM, {"since": NOW - timedelta(days=sizes.world.days + 30)})
    conn.execute("VACUUM ANALYZE")


def _copy_readings(conn: psycopg.Connection, world: figures.Sizes) -> None:
    """EXTRA_READINGS for every patient and day, in one COPY, in text written here: a year of
    5,000 patients is 12.8 million rows, and the text format costs a fraction of row tuples."""
    start = NOW - timedelta(days=world.days + 2)
    patients = [row[0] for row in conn.execute("SELECT id FROM patients ORDER BY id")]
    moments = {
        (day, hour): (start + timedelta(days=day, hours=hour)).isoformat()
        for day in range(world.days)
        for hour in {hour for _code, _unit, hour, _value, _step in EXTRA_READINGS}
    }
    with conn.cursor().copy(
        "COPY readings (device_id, code, measured_at, patient_id, value, unit, received_at)"
        " FROM STDIN"
    ) as copy:
        for n, patient in enumerate(patients):
            device = f"hub-{n}"
            block = io.StringIO()
            for day in range(world.days):
                for code, unit, hour, typical, step in EXTRA_READINGS:
                    value = typical + ((n * 7 + day * 13 + hour) % 11 - 5) * step
                    at = moments[day, hour]
                    block.write(f"{device}\t{code}\t{at}\t{patient}\t{value}\t{unit}\t{at}\n")
            copy.write(block.getvalue())


@dataclass(frozen=True, slots=True)
class Timings:
    loader: list[float]
    loader_everyone: list[float]
    """The loader for a nurse whose care team follows every patient."""
    worklist: list[float]
    patient_first: list[float]
    patient_again: list[float]
    year_kept: list[float]
    """A year of daily summaries from the rollup, the way the page reads them."""
    year_raw: list[float]
    """The baseline: the same year summed from the raw readings on every request."""
    browser: list[float]
    patients: int
    readings: int
    rows: int
    """Patients on the nurse's worklist."""
    rows_everyone: int
    load: tuple[float, float]


UNIT_TEAM = """
WITH nurse AS (
    SELECT s.id, m.organisation_id
      FROM staff s JOIN staff_memberships m ON m.staff_id = s.id
     WHERE s.role = 'nurse'
       AND NOT EXISTS (SELECT 1 FROM care_team_members c WHERE c.staff_id = s.id)
     ORDER BY (SELECT count(*) FROM patient_responsibility r
                WHERE r.organisation_id = m.organisation_id AND r.valid_from <= %(now)s
                  AND (r.valid_to IS NULL OR r.valid_to > %(now)s)) DESC, s.display_name
     LIMIT 1
), team AS (
    INSERT INTO care_teams (name) VALUES ('Hjemmesykepleien, første enhet') RETURNING id
), member AS (
    INSERT INTO care_team_members (team_id, staff_id, organisation_id, valid_from)
    SELECT team.id, nurse.id, nurse.organisation_id, %(since)s FROM team, nurse
)
INSERT INTO care_team_patients (team_id, patient_id, valid_from)
SELECT team.id, r.patient_id, %(since)s
  FROM team, nurse
  JOIN patient_responsibility r ON r.organisation_id = nurse.organisation_id
 WHERE r.valid_from <= %(now)s AND (r.valid_to IS NULL OR r.valid_to > %(now)s)
"""
"""A nurse of the unit with the most patients now in a care team following those patients
(about 1,000): the worklist a nurse works from."""


def _nurses(conn: psycopg.Connection) -> tuple[Principal, Principal]:
    """The nurse of the unit's team (made here, on the copy) and the one whose team follows
    all 5,000 patients (seeded)."""
    conn.execute(UNIT_TEAM, {"since": NOW - timedelta(days=400), "now": NOW})
    rows = conn.execute(
        "SELECT s.id, s.display_name, m.organisation_id, t.name FROM care_team_members m"
        " JOIN staff s ON s.id = m.staff_id JOIN care_teams t ON t.id = m.team_id"
        " WHERE s.role = 'nurse' ORDER BY t.name = 'Hjemmesykepleien, første enhet' DESC"
    ).fetchall()
    assert len(rows) == 2, "the seeded world needs its nurse in the team of all patients"
    unit, everyone = (
        Principal(kind="staff", id=str(r[0]), name=r[1], role="nurse", organisation_id=r[2])
        for r in rows
    )
    return unit, everyone


def measure(database_url: str, sizes: Sizes, checks: Checks, *, seeded: bool) -> Timings:
    with psycopg.connect(database_url, autocommit=True) as conn:
        if not seeded:
            seed(conn, sizes)
        nurse, everyone = _nurses(conn)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM readings)"
        ).fetchone()
        assert counts is not None
        patients = [
            row[0]
            for row in conn.execute(
                "SELECT p.patient_id FROM care_team_patients p JOIN care_teams t"
                " ON t.id = p.team_id WHERE t.name = 'Hjemmesykepleien, første enhet'"
                " ORDER BY p.patient_id"
            )
        ]
    with ConnectionPool(database_url, min_size=2, max_size=4) as pool:
        clock = ManualClock(NOW)
        key = AESGCM.generate_key(bit_length=256)
        app, token = served_app(pool, clock, staff_id=UUID(nurse.id), issuer_key=key)
        freeze_startup_objects()
        load_before = os.getloadavg()[0]
        loader, rows = _time_loader(pool, nurse, sizes.requests, checks)
        loader_everyone, rows_everyone = _time_loader(
            pool, everyone, min(sizes.requests, 10), checks
        )
        with TestClient(app) as client:
            client.cookies.set(SESSION_COOKIE, token)
            worklist = _time_page(client, DASHBOARD_PATH, "?lang=nb", sizes.requests, checks)
            year = "?lang=nb&range=365"
            first = [
                _time_page(client, _patient_path(patient), year, 0, checks, warm=False)[0]
                for patient in patients[1 : sizes.requests + 1]
            ]
            again = _time_page(client, _patient_path(patients[0]), year, sizes.requests, checks)
        year_kept, year_raw = _time_year(pool, patients[0], sizes.requests, checks)
        browser = _time_browser(database_url, UUID(nurse.id), key, sizes.browser_loads, checks)
        load_after = os.getloadavg()[0]
    return Timings(
        loader=loader,
        loader_everyone=loader_everyone,
        worklist=worklist,
        patient_first=first,
        patient_again=again,
        year_kept=year_kept,
        year_raw=year_raw,
        browser=browser,
        patients=counts[0],
        readings=counts[1],
        rows=rows,
        rows_everyone=rows_everyone,
        load=(load_before, load_after),
    )


def _time_year(
    pool: ConnectionPool, patient: UUID, requests: int, checks: Checks
) -> tuple[list[float], list[float]]:
    """A year of one patient's daily summaries: from the rollup (`day_summaries`, as the page
    reads them) and, side by side as the baseline, summed from the raw readings each time."""
    today = NOW.date()
    first = today - timedelta(days=364)
    kept: list[float] = []
    raw: list[float] = []
    for n in range(requests + 1):  # the first warms the caches (and rolls up), not counted
        with pool.connection() as conn:
            started = time.perf_counter()
            days = day_summaries(conn, patient_id=patient, first=first, last=today, today=today)
            middle = time.perf_counter()
            summed = conn.execute(
                f"SELECT {DAY_SUMMARY} FROM readings r WHERE r.patient_id = %s"
                f" AND r.measured_at >= %s AND r.measured_at < %s GROUP BY 1, 2",
                (patient, datetime.combine(first, datetime.min.time(), UTC), NOW),
            ).fetchall()
            ended = time.perf_counter()
        if n:
            kept.append(middle - started)
            raw.append(ended - middle)
    checks.expect(len(days) >= len(summed) > 0, "a year of daily summaries is empty")
    return kept, raw


def _patient_path(patient: UUID) -> str:
    return f"{DASHBOARD_PATH}{PATIENTS_SEGMENT}{patient}"


def _time_loader(
    pool: ConnectionPool, nurse: Principal, requests: int, checks: Checks
) -> tuple[list[float], int]:
    """The worklist loader alone, each call in its own transaction as the page makes it."""
    timings: list[float] = []
    rows = 0
    for n in range(requests + 1):  # the first warms the caches, not counted
        started = time.perf_counter()
        with pool.connection() as conn:
            shown = load_worklist(conn, view=View(principal=nurse, now=NOW, refresh=False))
            rows = sum(shown.counts.values())
        if n:
            timings.append(time.perf_counter() - started)
    checks.expect(rows > 0, "the nurse's worklist is empty")
    return timings, rows


def _time_page(
    client: TestClient,
    pathname: str,
    search: str,
    requests: int,
    checks: Checks,
    *,
    warm: bool = True,
) -> list[float]:
    """The page's server time, from request to the last byte; after one warm-up if `warm`."""
    timings: list[float] = []
    for n in range(requests + 1 if warm else 1):
        started = time.perf_counter()
        response = client.post(
            f"{DASHBOARD_PATH}_dash-update-component", json=routing_request(pathname, search)
        )
        elapsed = time.perf_counter() - started
        checks.expect(
            response.status_code == 200 and "Pasient " in response.text,
            f"{pathname} answered {response.status_code}: {response.text[:200]}",
        )
        if n or not warm:
            timings.append(elapsed)
    return timings


def _serve(
    database_url: str, staff_id: UUID, port: int, tokens: multiprocessing.Queue, key: bytes
) -> None:
    """In a process of its own: the whole app on `port`, as `heimvakt up` serves it; the
    session token for `staff_id` goes back through `tokens`."""
    with ConnectionPool(database_url, min_size=2, max_size=4) as pool:
        app, token = served_app(
            pool, ManualClock(NOW), staff_id=staff_id, subject="browser", issuer_key=key
        )
        freeze_startup_objects()
        tokens.put(token)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextlib.contextmanager
def _serving(database_url: str, staff_id: UUID, key: bytes) -> Iterator[tuple[str, str]]:
    """The app served by another process (base address, session token): in the browser's
    process, a page refreshing a thousand-row worklist starved Playwright of the GIL."""
    port = free_port()
    context = multiprocessing.get_context("spawn")
    tokens: multiprocessing.Queue = context.Queue()
    server = context.Process(target=_serve, args=(database_url, staff_id, port, tokens, key))
    server.start()
    try:
        token = tokens.get(timeout=120)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise PhaseBroken("the server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.terminate()
        server.join(timeout=20)


def _time_browser(
    database_url: str, staff_id: UUID, key: bytes, loads: int, checks: Checks
) -> list[float]:
    """From navigation to the worklist's first row visible in Chromium, each time a new tab."""
    if not loads:
        return []
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    checks.expect(chromium is not None, "no chromium (apt-get install chromium)")
    if chromium is None:
        return []
    timings: list[float] = []
    serving = _serving(database_url, staff_id, key)
    with serving as (base, token), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies(
                [{"name": SESSION_COOKIE, "value": token, "domain": "127.0.0.1", "path": "/"}]
            )
            for n in range(loads + 1):  # the first fills the browser's cache, not counted
                page = context.new_page()
                started = time.perf_counter()
                page.goto(f"{base}{DASHBOARD_PATH}?lang=nb")
                try:
                    page.wait_for_selector(WORKLIST_ROW, state="visible", timeout=BROWSER_WAIT)
                except PlaywrightTimeout:
                    checks.expect(False, f"the worklist was not visible in {BROWSER_WAIT} ms")
                    return timings
                if n:
                    timings.append(time.perf_counter() - started)
                page.close()
        finally:
            browser.close()
    return timings


def _summary(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), percentile(ordered, 0.95)


def _row(name: str, values: Sequence[float], target: float | None) -> str:
    median, p95 = _summary(values)
    if target is None:
        return f"| {name} | {median * 1000:.0f} ms | {p95 * 1000:.0f} ms | | |"
    ok = median <= target and p95 <= target
    return (
        f"| {name} | {median * 1000:.0f} ms | {p95 * 1000:.0f} ms"
        f" | <= {target * 1000:.0f} ms | {met(ok)} |"
    )


def report(timings: Timings, sizes: Sizes, *, measured: str, machine_line: str) -> str:
    rows = [
        _row("Worklist loader (`load_worklist`)", timings.loader, WORKLIST_TARGET),
        _row(
            f"Worklist loader, a care team of all {timings.rows_everyone:,} patients",
            timings.loader_everyone,
            None,
        ),
        _row("Worklist page (Dash callback)", timings.worklist, WORKLIST_TARGET),
        _row("Patient page, 365 days, opened again", timings.patient_again, PATIENT_TARGET),
        _row(
            "Patient page, 365 days, first opened (rolls up the year)",
            timings.patient_first,
            None,
        ),
        _row("A year of daily summaries, from the rollup", timings.year_kept, None),
        _row(
            "Baseline: the same year summed from the raw readings on each request",
            timings.year_raw,
            None,
        ),
    ]
    if timings.browser:
        median, p95 = _summary(timings.browser)
        rows.append(
            f"| Worklist visible in Chromium (navigation to its first row) | {median * 1000:.0f} ms"
            f" | {p95 * 1000:.0f} ms | | |"
        )
    return "\n".join(
        [
            "## Dashboard",
            "",
            measured,
            "",
            machine_line,
            "",
            f"{timings.patients:,} patients over {sizes.world.days} days on plain PostgreSQL:"
            f" {timings.readings:,} readings (bench/dashboard.py describes the world). A nurse"
            " whose care team follows the patients of her unit"
            f" ({timings.rows:,} rows on her worklist) asks"
            f" {sizes.requests} times after one warm-up for the worklist and for one patient's"
            f" page with the 365-day range; the first opening of the 365-day range is timed on"
            f" {len(timings.patient_first)} other patients, each once. Server time is from"
            " request to the last byte of the answer, through the whole app in the benchmark"
            f" process. The machine is shared: its load average was {timings.load[0]:.1f}"
            f" before the requests and {timings.load[1]:.1f} after (2 CPUs). The last two rows"
            " time one patient's year of daily summaries as the page reads them, from the"
            " rollup, and side by side the baseline the rollup replaces: the same summed from"
            " the raw readings on each request.",
            "",
            "| Request | Median | p95 | Target (median and p95) | Met |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--browser-loads",
        type=int,
        help="how many times to open the worklist in Chromium (0: no browser)",
    )
    parser.add_argument(
        "--keep-seeded",
        metavar="NAME",
        help="seed database NAME once and keep it; each run measures on a copy of it",
    )

    def section(
        stack: contextlib.ExitStack, options: argparse.Namespace, checks: Checks, naming: Naming
    ) -> str:
        sizes = SMOKE if options.smoke else FULL
        if options.browser_loads is not None:
            sizes = dataclasses.replace(sizes, browser_loads=options.browser_loads)
        if options.keep_seeded:
            figures.seeded_template(
                options.server_url,
                options.keep_seeded,
                sizes.world,
                seed_world=lambda conn: seed(conn, sizes),
            )
        database_url = stack.enter_context(
            bench_database(options.server_url, template=options.keep_seeded)
        )
        timings = measure(database_url, sizes, checks, seeded=bool(options.keep_seeded))
        text = report(timings, sizes, measured=naming.measured(), machine_line=naming.machine())
        return "\n".join([text, *checks.warnings, ""])

    return bench_main(
        module="bench.dashboard",
        target="bench-dashboard",
        heading="Dashboard",
        parser=parser,
        argv=argv,
        section=section,
    )


if __name__ == "__main__":
    sys.exit(main())
