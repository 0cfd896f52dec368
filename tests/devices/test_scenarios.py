"""The simulator's patients: the same seed gives the same month, and `heimvakt simulate` sends
it through a real broker and the real ingest, each device with its own login."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from typer.testing import CliRunner

from devices.scenarios import SCENARIOS, mornings
from heimvakt.cli import app
from tests.ingest.conftest import make_ingest
from tests.processes import MOSQUITTO, Mosquitto
from tests.support import eventually

START = datetime(2026, 10, 1, 8, tzinfo=UTC)


def test_the_same_seed_gives_the_same_month_and_another_seed_another() -> None:
    first = list(mornings(SCENARIOS, seed=5, days=30, start=START))
    again = list(mornings(SCENARIOS, seed=5, days=30, start=START))
    other = list(mornings(SCENARIOS, seed=6, days=30, start=START))
    assert first == again
    assert [m.readings for m in first] != [m.readings for m in other]
    stopped = [m for m in first if SCENARIOS[m.patient].name == "Slutter å måle"]
    assert max(m.day for m in stopped) == 14, "the patient who stops measuring stops on day 15"


@pytest.mark.slow
@pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt-get install mosquitto)")
def test_simulate_sends_each_patients_days_through_the_ingest_as_its_devices(
    conn: psycopg.Connection,
    database_url: str,
    pool: ConnectionPool,
    broker: Mosquitto,
    topic_prefix: str,
) -> None:
    ingest = make_ingest(pool, broker.url(), topic_prefix)
    ingest.start()
    try:
        assert ingest.wait_connected(10)
        result = CliRunner().invoke(
            app,
            ["simulate", "--days", "3", "--seed", "7"],
            env={
                "HEIMVAKT_DATABASE_URL": database_url,
                "HEIMVAKT_MQTT_URL": broker.url(),
                "HEIMVAKT_MQTT_CLIENT_ID": "heimvakt-ingest-simulate-test",
                "HEIMVAKT_MQTT_TOPIC_PREFIX": topic_prefix,
            },
        )
        assert result.exit_code == 0, result.output
        assert "KOLS-forverring: expected alerts news2_partial" in result.output
        planned = list(mornings(SCENARIOS, seed=7, days=3, start=START))
        expected = Counter(
            (SCENARIOS[m.patient].name, code, value)
            for m in planned
            for code, value in m.readings.items()
        )

        def stored() -> Counter[tuple[str, str, float]]:
            return Counter(
                (name.rsplit(" (", 1)[0], code, value)
                for name, code, value in conn.execute(
                    "SELECT p.display_name, r.code, r.value FROM readings r"
                    " JOIN patients p ON p.id = r.patient_id"
                )
            )

        eventually(lambda: sum(stored().values()) >= sum(expected.values()), timeout=30)
        assert stored() == expected
        assert conn.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
        devices = conn.execute("SELECT DISTINCT device_id FROM readings").fetchall()
        assert all(d.startswith("sim-7-") for (d,) in devices), "each device speaks for itself"
        answers = conn.execute("SELECT count(*) FROM questionnaire_responses").fetchone()
        assert answers == (sum(1 for m in planned if m.symptoms is not None),)
    finally:
        ingest.stop()
