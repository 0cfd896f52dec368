"""National identity numbers: registered by a coordinator, stored sealed with a keyed hash,
found by it, and never in the database, an answer or the access log in the clear."""

from __future__ import annotations

import psycopg

from care.national_ids import (
    NationalIds,
    do_register_national_id,
    do_seal_unsealed_national_ids,
    masked,
    national_id_of,
    patient_with_national_id,
)
from tests.care.conftest import WorldClient
from tests.care.world import World
from tests.dashboard import seed_patient

NUMBER = "01017012345"
KEYS = NationalIds.from_installation_key(bytes(32))
"""The keys tests/care/conftest.py's app is built with."""


def _dump(conn: psycopg.Connection, table: str) -> str:
    return "".join(row[0] for row in conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t"))


def test_a_number_is_sealed_found_by_its_hash_and_opened_only_with_the_keys(
    conn: psycopg.Connection,
) -> None:
    patient = seed_patient(conn, name="Kari Testesen").patient_id
    do_register_national_id(conn, patient_id=patient, national_id=NUMBER, keys=KEYS)
    assert NUMBER not in _dump(conn, "patients")
    assert patient_with_national_id(conn, national_id=NUMBER, keys=KEYS) == patient
    other_keys = NationalIds.from_installation_key(bytes(range(32)))
    assert patient_with_national_id(conn, national_id=NUMBER, keys=other_keys) is None
    assert national_id_of(conn, patient_id=patient, keys=KEYS) == NUMBER
    assert masked(NUMBER) == "•••••••••45"

    # One stored in plain text before migration 0026 is sealed at the next start.
    earlier, number = seed_patient(conn, name="Ola Annensen").patient_id, "02027012345"
    conn.execute("UPDATE patients SET national_id_unsealed = %s WHERE id = %s", (number, earlier))
    assert do_seal_unsealed_national_ids(conn, keys=KEYS) == 1
    assert number not in _dump(conn, "patients")
    assert patient_with_national_id(conn, national_id=number, keys=KEYS) == earlier


def test_a_coordinator_registers_a_number_that_no_answer_or_log_shows(
    world: World, world_client: WorldClient
) -> None:
    own = world.scenarios["own"].patient
    url = f"/api/v1/patients/{own}/national-id"
    coordinator = {"Authorization": f"Bearer {world.tokens['coordinator']}"}
    with world_client() as (client, conn):
        answer = client.put(url, json={"national_id": NUMBER}, headers=coordinator)
        assert (answer.status_code, answer.content) == (204, b"")
        shown = client.get(f"/api/v1/patients/{own}", headers=coordinator).text
        exported = client.get(f"/api/v1/patients/{own}/export", headers=coordinator).text
        fhir = client.get(
            f"/fhir/Patient?identifier={NUMBER}",
            headers={**coordinator, "Accept": "application/fhir+json"},
        ).json()
        other = world.scenarios["other_team"].patient
        taken = client.put(
            f"/api/v1/patients/{other}/national-id",
            json={"national_id": NUMBER},
            headers=coordinator,
        )
        wrong = client.put(url, json={"national_id": "0101701234"}, headers=coordinator)
        log = _dump(conn, "access_log")
    assert NUMBER not in shown
    assert NUMBER not in exported
    assert '"national_id_registered":true' in exported
    # FHIR is the one interface that carries it, as the official identifier.
    assert [e["resource"]["id"] for e in fhir["entry"]] == [str(own)]
    assert taken.status_code == 404  # not the coordinator's patient: nothing is said
    assert wrong.status_code == 422
    assert "0101701234" not in wrong.text
    assert NUMBER not in log
    assert '"national-id"' in log
