"""The patient page's trend: the care plan's bands as each version set them, the ranges (in the
address), the daily rollup behind the long ones, and the table and CSV of what is shown."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from care.careplan import do_update_care_plan
from core.limits import Limits
from core.weeks import COUNT_READINGS
from dashboard.data.trend_days import day_summaries
from tests.dashboard import (
    BASE,
    NOW,
    Seeded,
    code_of,
    components,
    dashboard_client,
    figures,
    of_class,
    press,
    seed_patient,
    show,
    store_reading,
    team_nurse,
    texts,
)
from tests.support import plan_with_limits

SPO2 = code_of("spo2")
PAYLOAD = '<script>alert(1)</script><img src=x onerror="alert(2)">'
LIMIT_CHANGED = NOW - timedelta(days=3)


@pytest.fixture
def eva(conn: psycopg.Connection, pool: ConnectionPool) -> Seeded:
    """SpO2 limit 90 from ten days ago, raised to 92 three days ago; readings on both sides,
    one below the new limit (an alert) with a note carrying markup."""
    eva = seed_patient(conn, name="Eva Hansen")
    plan_with_limits(
        conn, eva.patient_id, Limits(SPO2, low=90, red_low=85), now=NOW - timedelta(days=10)
    )
    do_update_care_plan(
        conn,
        patient_id=eva.patient_id,
        expected_version=1,
        author=team_nurse(pool),
        now=LIMIT_CHANGED,
        reason="Tettere oppfølging",
        thresholds=[Limits(SPO2, low=92, red_low=85)],
    )
    for days, value in ((5, 95), (4, 93), (2, 94), (1, 91)):
        store_reading(conn, eva, "spo2", value, NOW - timedelta(days=days))
    row = conn.execute("SELECT id FROM alerts WHERE patient_id = %s", (eva.patient_id,)).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, action, details) VALUES (%s, %s, 'noted', %s)",
        (row[0], NOW - timedelta(hours=20), Jsonb({"note": PAYLOAD})),
    )
    return eva


def test_the_partial_news2_score_is_drawn_over_time_with_its_levels(
    pool: ConnectionPool, conn: psycopg.Connection, eva: Seeded
) -> None:
    store_reading(conn, eva, "pulse", 115, NOW - timedelta(days=1, hours=-1))
    store_reading(conn, eva, "pulse", 72, NOW - timedelta(hours=2))
    client, _ = dashboard_client(pool)

    [figure] = figures(show_page(client, eva, "?lang=en"))

    [score] = [t for t in figure["data"] if t.get("name") == "NEWS2 partial score"]
    # SpO2 91 (3) with pulse 115 (2); then pulse 72 (0) with the same SpO2 (3), 23 h later:
    # SpO2 is out of the 12-hour window by then, so there is no score.
    assert score["y"] == [5]
    levels = [s for s in figure["layout"]["shapes"] if s["name"] == "news2-level"]
    assert [(s["y0"], s["label"]["text"]) for s in levels] == [(5, "Medium ≥ 5"), (7, "High ≥ 7")]


def _path(seeded: Seeded) -> str:
    return f"{BASE}patients/{seeded.patient_id}"


def test_the_bands_change_where_the_care_plan_version_changed_and_notes_are_escaped(
    pool: ConnectionPool, eva: Seeded
) -> None:
    client, _ = dashboard_client(pool)

    [figure] = figures(show_page(client, eva, "?lang=en"))

    yellow = [s for s in figure["layout"]["shapes"] if s["name"] == "yellow-band"]
    changed = "2025-01-12T13:00:00"  # Oslo wall-clock time of LIMIT_CHANGED
    assert [(s["x0"], s["x1"], s["y0"], s["y1"]) for s in yellow] == [
        ("2025-01-08T13:00:00", changed, 85.0, 90.0),
        (changed, "2025-01-15T13:00:00", 85.0, 92.0),
    ]
    assert {s["layer"] for s in figure["layout"]["shapes"]} == {"below"}
    red = [s for s in figure["layout"]["shapes"] if s["name"] == "red-band"]
    assert [s["y1"] for s in red] == [85.0, 85.0]
    # 91 was inside the old limit but is outside the new one: judged by the version then valid.
    [outside] = [trace for trace in figure["data"] if trace.get("legendgroup") == "outside"]
    assert outside["y"] == [91.0]
    [alerts] = [trace for trace in figure["data"] if trace.get("legendgroup") == "alerts"]
    assert alerts["hovertext"] == ["Outside the limits"]
    [notes] = [trace for trace in figure["data"] if trace.get("legendgroup") == "notes"]
    [note] = notes["hovertext"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;" in note
    assert "<" not in note


def show_page(client: TestClient, seeded: Seeded, search: str) -> dict:
    return show(client, _path(seeded), search)


@pytest.mark.parametrize(
    ("search", "heading", "axis"),
    [
        ("?lang=nb&range=30", "Siste 30 dager", ["2024-12-16T13:00:00", "2025-01-15T13:00:00"]),
        (
            "?lang=en&from=2025-01-09&to=2025-01-11",
            "9 Jan 2025 to 11 Jan 2025",
            ["2025-01-09T00:00:00", "2025-01-12T00:00:00"],
        ),
        ("?lang=nb&from=2025-01-11&to=2025-01-09", "Siste 7 dager", None),  # backwards: default
    ],
)
def test_the_range_comes_from_the_address(
    pool: ConnectionPool, eva: Seeded, search: str, heading: str, axis: list[str] | None
) -> None:
    client, _ = dashboard_client(pool)

    page = show_page(client, eva, search)

    assert heading in [c["props"]["children"] for c in components(page) if c["type"] == "H2"]
    [figure] = figures(page)
    if axis is not None:
        assert figure["layout"]["xaxis"]["range"] == axis
    [choices] = of_class(page, "choices")
    links = [c["props"]["href"] for c in components(choices) if c["type"] == "Link"]
    assert f"{_path(eva)}?lang={search[6:8]}&range=365" in links


def test_a_year_is_drawn_from_daily_summaries_as_a_band_with_the_median(
    pool: ConnectionPool, eva: Seeded
) -> None:
    client, _ = dashboard_client(pool)

    [figure] = figures(show_page(client, eva, "?lang=nb&range=365"))

    low, high = [t for t in figure["data"] if t.get("legendgroup") == "day-range"]
    assert (low["fill"], high["fill"]) == ("none", "tonexty")
    [median] = [t for t in figure["data"] if t.get("name") == "Oksygenmetning"]
    assert median["y"] == [95.0, 93.0, 94.0, 91.0]
    assert median["x"][0] == "2025-01-10T12:00:00"


def test_picking_days_puts_them_in_the_address(pool: ConnectionPool, eva: Seeded) -> None:
    client, _ = dashboard_client(pool)
    where = {("url", "pathname"): _path(eva), ("url", "search"): "?lang=nn&range=90"}

    picked = press(
        client,
        "trend-range-show",
        {("trend-range-from", "value"): "2025-01-02", ("trend-range-to", "value"): "2025-01-05"}
        | where,
    )
    assert picked["url"] == {"search": "?lang=nn&from=2025-01-02&to=2025-01-05"}
    backwards = press(
        client,
        "trend-range-show",
        {("trend-range-from", "value"): "2025-01-05", ("trend-range-to", "value"): "2025-01-02"}
        | where,
    )
    assert backwards == {}  # nothing to show: the address stays


def test_the_rollup_equals_the_raw_aggregates_and_takes_a_late_reading(
    conn: psycopg.Connection,
) -> None:
    """Closed weeks are summed once and kept; a reading that arrives late for a closed day
    changes its week's count at ingest, so the next read sums that week again."""
    patient = seed_patient(conn, name="Rolf Rollup")
    today = date(2025, 1, 15)
    rows = [
        (datetime(2025, 1, 1, 6, tzinfo=UTC) + timedelta(hours=7 * n), 90.0 + (n * 7) % 9)
        for n in range(40)
    ]
    _insert(conn, patient, rows)

    found = day_summaries(
        conn, patient_id=patient.patient_id, first=date(2025, 1, 1), last=today, today=today
    )

    assert [(d.day, d.readings, d.low, d.median, d.high) for d in found] == _raw(rows)
    kept = conn.execute(
        "SELECT count(*) FROM reading_days WHERE patient_id = %s", (patient.patient_id,)
    ).fetchone()
    assert kept is not None
    assert kept[0] == len({d.day for d in found if d.day < date(2025, 1, 13)})

    late = (datetime(2025, 1, 3, 12, tzinfo=UTC), 70.0)
    _insert(conn, patient, [late])
    again = day_summaries(
        conn, patient_id=patient.patient_id, first=date(2025, 1, 1), last=today, today=today
    )

    assert [(d.day, d.readings, d.low, d.median, d.high) for d in again] == _raw([*rows, late])
    assert [d.low for d in again if d.day == date(2025, 1, 3)] == [70.0]


def _insert(conn: psycopg.Connection, patient: Seeded, rows: list[tuple[datetime, float]]) -> None:
    """Readings written and counted per week as ingest writes them (core/weeks.py)."""
    conn.execute(
        "WITH stored AS (INSERT INTO readings (device_id, code, measured_at, patient_id, value,"
        " unit, received_at) SELECT %s, %s, at, %s, value, '%%', at"
        " FROM unnest(%s::timestamptz[], %s::float8[]) AS r(at, value)"
        " RETURNING patient_id, code, measured_at), counted AS ("
        + COUNT_READINGS.format(source="stored")
        + ") SELECT 1",
        (
            patient.device_id,
            SPO2,
            patient.patient_id,
            [at for at, _value in rows],
            [value for _at, value in rows],
        ),
    )


def _raw(rows: list[tuple[datetime, float]]) -> list[tuple[date, int, float, float, float]]:
    """Per Oslo day: count, lowest, median and highest, computed here from the readings."""
    by_day: dict[date, list[float]] = {}
    for at, value in rows:
        by_day.setdefault((at + timedelta(hours=1)).date(), []).append(value)  # CET
    return [
        (day, len(v), min(v), statistics.median(v), max(v)) for day, v in sorted(by_day.items())
    ]


def test_the_table_and_the_csv_hold_what_the_chart_shows_and_the_csv_is_an_export(
    pool: ConnectionPool, conn: psycopg.Connection, eva: Seeded
) -> None:
    client, _ = dashboard_client(pool)
    search = "?lang=nb&range=30"
    [figure] = figures(show_page(client, eva, search))
    [shown] = [t for t in figure["data"] if t.get("name") == "Oksygenmetning"]

    table = _callback(client, eva, search, "trend-show-table", "trend-table.children")
    csv_text = _callback(client, eva, search, "trend-download-csv", "trend-download.data")

    cells = texts(table)
    assert cells[:4] == ["Tidspunkt", "Måling", "Verdi", "Enhet"]
    assert cells[6::4] == [f"{v:.0f}" for v in shown["y"]]
    lines = csv_text["content"].splitlines()
    assert lines[0] == "Tidspunkt,Måling,Verdi,Enhet"
    assert [line.split(",")[-2] for line in lines[1:]] == [f"{v:.0f}" for v in shown["y"]]
    assert csv_text["filename"].endswith(".csv")
    logged = conn.execute(
        "SELECT action FROM access_log WHERE resource = 'patient-trend' ORDER BY id"
    ).fetchall()
    assert logged == [("read",), ("export",)]


def _callback(client: TestClient, seeded: Seeded, search: str, button: str, output: str) -> Any:
    response = client.post(
        f"{BASE}_dash-update-component",
        json={
            "output": output,
            "outputs": dict(zip(("id", "property"), output.split("."), strict=True)),
            "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
            "state": [
                {"id": "url", "property": "pathname", "value": _path(seeded)},
                {"id": "url", "property": "search", "value": search},
            ],
            "changedPropIds": [f"{button}.n_clicks"],
        },
    )
    assert response.status_code == 200, response.text
    component, prop = output.split(".")
    return response.json()["response"][component][prop]


def test_the_csv_is_refused_to_another_patient(
    pool: ConnectionPool, conn: psycopg.Connection, eva: Seeded
) -> None:
    other = seed_patient(conn, name="Per Annen")
    client, _ = dashboard_client(pool, patient_id=other.patient_id)

    response = client.post(
        f"{BASE}_dash-update-component",
        json={
            "output": "trend-download.data",
            "outputs": {"id": "trend-download", "property": "data"},
            "inputs": [{"id": "trend-download-csv", "property": "n_clicks", "value": 1}],
            "state": [
                {"id": "url", "property": "pathname", "value": _path(eva)},
                {"id": "url", "property": "search", "value": "?lang=nb"},
            ],
            "changedPropIds": ["trend-download-csv.n_clicks"],
        },
    )

    assert response.status_code == 200
    assert response.json()["response"] == {}  # nothing sent
    exports = conn.execute("SELECT count(*) FROM access_log WHERE action = 'export'").fetchone()
    assert exports == (0,)
