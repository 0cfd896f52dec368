"""The FHIR R4 facade on the shared-care world: what it returns validates against the R4
models of fhir.resources (its R4B package), searches page without losing or repeating a
reading while new ones arrive, and nobody sees a patient outside their care, however asked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from psycopg_pool import ConnectionPool

from care.people import do_link_identity
from core.auth import Principal
from core.catalog import MEASUREMENTS
from core.clock import DISPLAY_TIMEZONE
from fhir_facade.export import export_ndjson
from fhir_facade.queries import count_observations
from fhir_facade.resources import device_resource_id
from tests.care.conftest import WorldClient, local_issuer
from tests.care.world import MEASURED, World
from tests.support import scalar

FHIR_JSON = "application/fhir+json"
VALUES = {"%": 94.0, "/min": 72.0, "mm[Hg]": 120.0, "kg": 81.5, "Cel": 37.1, "L": 2.4, "L/min": 380}


def _headers(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


def _get(client: TestClient, url: str, world: World, role: str = "hospital_nurse") -> Any:
    response = client.get(url, headers=_headers(world, role))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == FHIR_JSON
    return _valid(response.json())


def _valid(resource: dict[str, Any]) -> dict[str, Any]:
    """Validated by the library, contained resources included (a Bundle validates its entries)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def _store(
    conn: psycopg.Connection, device: str, patient: uuid.UUID, readings: list[tuple]
) -> None:
    """Readings as ingest stores them: (code, value, unit, measured_at, received_at)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (device_id, code, measured_at, patient_id, value, unit,"
            " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(device, c, at, patient, v, u, received) for c, v, u, at, received in readings],
        )


def _pages(
    client: TestClient, url: str, world: World, role: str = "hospital_nurse"
) -> Iterator[dict]:
    while url:
        bundle = _get(client, url, world, role)
        yield bundle
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        next_url = links.get("next")
        url = "" if next_url is None else _path(next_url)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_every_resource_validates_and_blood_pressure_has_the_bp_shape(
    world_client: WorldClient, world: World
) -> None:
    own = world.scenarios["own"]
    at = MEASURED + timedelta(hours=1)
    every = [(m.code, VALUES[m.unit], m.unit, at, at) for m in MEASUREMENTS]
    with world_client() as (client, conn):
        _store(conn, own.device, own.patient, every)
        metadata = _get(client, "/fhir/metadata", world)
        patient = _get(client, f"/fhir/Patient/{own.patient}", world)
        found = _get(
            client, f"/fhir/Observation?patient={own.patient}&_include=Observation:device", world
        )
        everything = _get(client, f"/fhir/Patient/{own.patient}/$everything", world)
        observations = _resources(found, "Observation")
        read = [_get(client, f"/fhir/Observation/{o['id']}", world) for o in observations]
        device = _get(client, f"/fhir/Device/{device_resource_id(own.device)}", world)
        flags = _get(client, f"/fhir/Flag?patient={own.patient}", world)
        flag = _get(client, f"/fhir/Flag/{own.alert}", world)
        units = _get(client, "/fhir/Organization", world)
        unit = _get(client, f"/fhir/Organization/{own.organisation}", world)
        colleague = _get(client, f"/fhir/Practitioner/{own.staff}", world, "coordinator")
    assert metadata["fhirVersion"] == "4.0.1"
    assert unit in _resources(units, "Organization")
    assert unit["name"] == "Sykehuset"
    assert colleague["identifier"] == [
        {"system": "urn:oid:2.16.578.1.12.4.1.4.4", "value": "1234567"}
    ]
    assert _resources(flags, "Flag") == [flag] == _resources(everything, "Flag")
    assert flag["status"] == "active"
    assert flag["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "PM"
    assert flag["code"]["coding"][0]["code"] == "threshold:59408-5:low"
    assert patient["name"] == [{"text": "Pasient own"}]
    # Every catalog measurement, with systolic and diastolic as one panel, twice (the world's
    # own reading and these).
    assert len(observations) == len(MEASUREMENTS) - 1 + 2
    assert read == observations
    assert _resources(found, "Device") == [device]
    assert device["patient"] == {"reference": f"Patient/{own.patient}"}
    assert [r["resourceType"] for r in _resources(everything, "Patient")] == ["Patient"]
    assert len(_resources(everything, "Observation")) == len(observations)
    [bp, *_] = [o for o in observations if o["code"]["coding"][0]["code"] == "85354-9"]
    assert "http://hl7.org/fhir/StructureDefinition/bp" in bp["meta"]["profile"]
    assert bp["category"][0]["coding"][0]["code"] == "vital-signs"
    assert "valueQuantity" not in bp
    assert [
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["system"], c["valueQuantity"]["code"])
        for c in bp["component"]
    ] == [
        ("8480-6", "http://unitsofmeasure.org", "mm[Hg]"),
        ("8462-4", "http://unitsofmeasure.org", "mm[Hg]"),
    ]
    [spo2, *_] = [o for o in observations if o["code"]["coding"][0]["code"] == "59408-5"]
    codings = {(c["system"], c["code"]) for c in spo2["code"]["coding"]}
    assert {("http://loinc.org", "2708-6"), ("urn:iso:std:iso:11073:10101", "150456")} <= codings
    assert spo2["valueQuantity"]["code"] == "%"
    assert spo2["device"] == {"reference": f"Device/{device['id']}"}


def test_search_by_date_range_and_code(world_client: WorldClient, world: World) -> None:
    own = world.scenarios["own"]
    days = [MEASURED + timedelta(days=d) for d in range(1, 6)]
    with world_client() as (client, conn):
        _store(conn, own.device, own.patient, [("8867-4", 70, "/min", d, MEASURED) for d in days])
        base = f"/fhir/Observation?patient=Patient/{own.patient}"
        pulse = _get(client, f"{base}&code=http://loinc.org|8867-4", world)
        ranged = _get(
            client,
            f"{base}&code=8867-4&date=ge{days[1].isoformat().replace('+00:00', 'Z')}"
            f"&date=lt{days[3].isoformat().replace('+00:00', 'Z')}",
            world,
        )
        # A date alone is a whole day in Norway; gt a day means from the next day on.
        oslo_day = days[2].astimezone(DISPLAY_TIMEZONE).date()
        by_day = _get(client, f"{base}&code=8867-4&date=gt{oslo_day}", world)
        mdc = _get(client, f"{base}&code=urn:iso:std:iso:11073:10101|150456", world)
        oldest_first = _get(client, f"{base}&_sort=date", world)
        refused = client.get(f"{base}&status=final", headers=_headers(world, "hospital_nurse"))
        bad_date = client.get(
            f"{base}&date=eq2026-01-01", headers=_headers(world, "hospital_nurse")
        )
    moments = [o["effectiveDateTime"] for o in _resources(pulse, "Observation")]
    assert len(moments) == 5
    assert moments == sorted(moments, reverse=True)
    assert len(_resources(ranged, "Observation")) == 2
    assert len(_resources(by_day, "Observation")) == 2
    assert [o["code"]["coding"][0]["code"] for o in _resources(mdc, "Observation")] == ["59408-5"]
    oldest = [o["effectiveDateTime"] for o in _resources(oldest_first, "Observation")]
    assert oldest == sorted(oldest)
    for response in (refused, bad_date):
        assert response.status_code == 400
        assert response.headers["content-type"] == FHIR_JSON
        outcome = _valid(response.json())
        assert outcome["issue"][0]["code"] == "not-supported"


def test_paging_loses_and_repeats_nothing_while_readings_arrive(
    world_client: WorldClient, world: World
) -> None:
    own = world.scenarios["own"]
    start = MEASURED + timedelta(days=1)
    # SpO2 readings and blood-pressure pairs (two readings, one Observation) in turn, so that
    # page boundaries fall next to pairs.
    history = [
        (code, value, unit, start + timedelta(hours=i), start + timedelta(hours=i))
        for i in range(25)
        for code, value, unit in (
            [("59408-5", 90 + i % 8, "%")]
            if i % 2
            else [("8480-6", 130, "mm[Hg]"), ("8462-4", 80, "mm[Hg]")]
        )
    ]
    with world_client() as (client, conn):
        _store(conn, own.device, own.patient, history)
        expected = {
            o["id"]
            for o in _resources(
                _get(client, f"/fhir/Observation?patient={own.patient}&_count=1000", world),
                "Observation",
            )
        }
        seen: list[str] = []
        pairs: list[int] = []
        pages = 0
        for bundle in _pages(client, f"/fhir/Observation?patient={own.patient}&_count=7", world):
            pages += 1
            seen += [o["id"] for o in _resources(bundle, "Observation")]
            pairs += [
                len(o["component"]) for o in _resources(bundle, "Observation") if "component" in o
            ]
            # New readings arrive between pages: newer ones, and a late upload of an old one
            # that lands among the pages already read and among those still to come.
            now = datetime.now(UTC)
            _store(
                conn,
                own.device,
                own.patient,
                [
                    ("8867-4", 70, "/min", now + timedelta(seconds=pages), now),
                    ("8867-4", 71, "/min", start + timedelta(hours=pages * 3, minutes=1), now),
                ],
            )
    assert pages == 4
    assert len(seen) == len(set(seen)) == len(expected) == 25 + 2
    assert set(seen) == expected
    assert pairs == [2] * (13 + 1)


def test_another_team_sees_nothing_however_asked(world_client: WorldClient, world: World) -> None:
    other = world.scenarios["other_team"]
    own = world.scenarios["own"]
    other_device = device_resource_id(other.device)
    with world_client() as (client, conn):
        nurse = _headers(world, "hospital_nurse")
        searched = _get(
            client, f"/fhir/Observation?patient={other.patient}&_include=Observation:device", world
        )
        everything = client.get(f"/fhir/Patient/{other.patient}/$everything", headers=nurse)
        device = client.get(f"/fhir/Device/{other_device}", headers=nurse)
        # The other team's Observation, read by its id.
        other_id = _resources(
            _get(client, f"/fhir/Observation?patient={other.patient}", world, "b_nurse"),
            "Observation",
        )[0]["id"]
        read = client.get(f"/fhir/Observation/{other_id}", headers=nurse)
        flag = client.get(f"/fhir/Flag/{other.alert}", headers=nurse)
        flags = _get(client, f"/fhir/Flag?patient={other.patient}", world)
        # A next link taken from the other team's nurse leads nowhere for this one.
        link = next(
            _get(client, f"/fhir/Observation?patient={other.patient}&_count=1", world, "b_nurse")[
                "link"
            ][i]["url"]
            for i in (1,)
        )
        followed = _get(client, _path(link), world)
        # Everything this nurse can find without naming a patient is her own team's.
        unnamed = _get(client, "/fhir/Observation?_include=Observation:device&_count=1000", world)
        patients = _get(client, "/fhir/Patient", world)
        # The own device moves to the other team's patient: an include of the old reading
        # shows the device, but not whom it measures now.
        conn.execute(
            "UPDATE device_assignments SET valid_to = %s WHERE device_id = %s",
            (MEASURED + timedelta(days=1), own.device),
        )
        conn.execute(
            "INSERT INTO device_assignments (device_id, patient_id, valid_from)"
            " VALUES (%s, %s, %s)",
            (own.device, other.patient, MEASURED + timedelta(days=1)),
        )
        moved = _get(
            client, f"/fhir/Observation?patient={own.patient}&_include=Observation:device", world
        )
        patient_view = _get(client, "/fhir/Observation?_count=1000", world, "patient")
    assert searched["entry"] == []
    assert flags["entry"] == []
    for refused in (everything, device, read, flag):
        assert refused.status_code == 404
        assert refused.headers["content-type"] == FHIR_JSON
        assert _valid(refused.json())["issue"][0]["code"] == "not-found"
    assert followed["entry"] == []
    subjects = {o["subject"]["reference"] for o in _resources(unnamed, "Observation")}
    assert subjects == {f"Patient/{own.patient}"}
    assert {d["id"] for d in _resources(unnamed, "Device")} == {device_resource_id(own.device)}
    assert str(other.patient) not in str(patients)
    [moved_device] = _resources(moved, "Device")
    assert "patient" not in moved_device
    assert str(other.patient) not in str(moved)
    assert {o["subject"]["reference"] for o in _resources(patient_view, "Observation")} == {
        f"Patient/{own.patient}"
    }


def test_every_page_leaves_one_access_log_row_naming_what_it_shows(
    world_client: WorldClient, world: World
) -> None:
    own = world.scenarios["own"]
    with world_client() as (client, conn):
        before = conn.execute("SELECT max(id) FROM access_log").fetchone()
        pages = list(_pages(client, f"/fhir/Patient/{own.patient}/$everything?_count=1", world))
        rows = conn.execute(
            "SELECT patient_ids, resource, interface FROM access_log WHERE id > coalesce(%s, 0)",
            before,
        ).fetchall()
    assert len(pages) == 2
    assert rows == [([own.patient], "fhir:Patient/$everything", "fhir")] * 2


def _bundle(kind: str, moments: list[datetime], *, code: str = "59408-5") -> dict[str, Any]:
    def observation(at: datetime, index: int) -> dict[str, Any]:
        return {
            "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{at}{index}')}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "effectiveDateTime": at.isoformat(),
                "valueQuantity": {"value": 96, "system": "http://unitsofmeasure.org", "code": "%"},
            },
            "request": {"method": "POST", "url": "Observation"},
        }

    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [observation(at, i) for i, at in enumerate(moments)],
    }


def test_a_transaction_posted_twice_stores_its_readings_once(
    world_client: WorldClient, world: World
) -> None:
    own = world.scenarios["own"]
    now = datetime.now(UTC).replace(microsecond=0)
    moments = [now - timedelta(minutes=m) for m in (1, 2, 3)]
    bundle = _bundle("transaction", moments)
    device = {**_headers(world, "device"), "Content-Type": FHIR_JSON}
    with world_client() as (client, conn):
        before = scalar(conn, "SELECT count(*) FROM readings")
        first = client.post("/fhir", json=bundle, headers=device)
        second = client.post("/fhir", json=bundle, headers=device)
        after = scalar(conn, "SELECT count(*) FROM readings")
        stored = _get(client, f"/fhir/Observation?patient={own.patient}&code=59408-5", world)
        # One bad entry refuses a transaction whole; a batch stores the others.
        bad = _bundle("transaction", [now - timedelta(minutes=5)], code="0000-0")
        mixed = {**bad, "entry": [*_bundle("transaction", [now])["entry"], *bad["entry"]]}
        refused = client.post("/fhir", json=mixed, headers=device)
        batch = client.post("/fhir", json={**mixed, "type": "batch"}, headers=device)
        by_staff = client.post("/fhir", json=bundle, headers=_headers(world, "hospital_nurse"))
    assert first.status_code == second.status_code == 200, first.text
    assert [e["response"]["status"] for e in _valid(first.json())["entry"]] == ["201 Created"] * 3
    assert [e["response"]["status"] for e in _valid(second.json())["entry"]] == ["200 OK"] * 3
    assert first.json()["type"] == "transaction-response"
    assert after == before + 3
    locations = {e["response"]["location"] for e in first.json()["entry"]}
    assert locations <= {f"Observation/{o['id']}" for o in _resources(stored, "Observation")}
    assert refused.status_code == 422
    assert _valid(refused.json())["resourceType"] == "OperationOutcome"
    assert batch.status_code == 200
    assert [e["response"]["status"][:3] for e in _valid(batch.json())["entry"]] == ["201", "422"]
    assert by_staff.status_code == 403


def test_the_ndjson_export_reads_back_with_counts_matching_the_database(
    world_client: WorldClient, world: World, tmp_path: Path
) -> None:
    patients = [world.scenarios["own"].patient, world.scenarios["other_org"].patient]
    own = world.scenarios["own"]
    with world_client() as (_client, conn):
        _store(
            conn,
            own.device,
            own.patient,
            [
                ("8867-4", 60 + i, "/min", MEASURED - timedelta(minutes=i), MEASURED)
                for i in range(30)
            ],
        )
        seen: list[int] = []
        operator = Principal(kind="system", id="ops", name="ops", role="operator")
        counts = export_ndjson(
            conn,
            patient_ids=patients,
            directory=tmp_path,
            principal=operator,
            now=datetime.now(UTC),
            progress=seen.append,
            page_size=7,
        )
        expected = {
            "Patient": 2,
            "Device": scalar(
                conn,
                "SELECT count(DISTINCT device_id) FROM device_assignments"
                " WHERE patient_id = ANY (%s)",
                (patients,),
            ),
            "Observation": count_observations(conn, patient_ids=patients),
        }
        logged = conn.execute(
            "SELECT patient_ids, action, interface, actor_kind FROM access_log"
            " WHERE resource = 'fhir:export'"
        ).fetchall()
    read_back = {}
    for kind in expected:
        lines = (tmp_path / f"{kind}.ndjson").read_text(encoding="utf-8").splitlines()
        model = get_fhir_model_class(kind)
        read_back[kind] = len([model.model_validate_json(line) for line in lines])
    assert read_back == counts == expected
    panels = [
        o
        for o in map(json.loads, (tmp_path / "Observation.ndjson").read_text().splitlines())
        if "component" in o
    ]
    assert [len(o["component"]) for o in panels] == [2, 2]
    assert expected["Observation"] == 2 * 2 + 30
    assert sum(seen) == expected["Observation"]
    assert len(seen) > 2
    assert logged == [(sorted(patients), "export", "cli", "system")]


def test_smart_scopes_narrow_what_a_token_reads(world_client: WorldClient, world: World) -> None:
    own = world.scenarios["own"]
    with world_client() as (client, conn), ConnectionPool(conn.info.dsn, min_size=1) as pool:
        issuer = local_issuer(pool)

        def token(scope: str, **person: uuid.UUID) -> dict[str, str]:
            subject = str(uuid.uuid4())
            do_link_identity(conn, issuer=issuer.config.issuer, subject=subject, **person)
            return {
                "Authorization": f"Bearer {issuer.issue(subject=subject, claims={'scope': scope})}"
            }

        nurse = world.staff["hospital_nurse"]
        observations_only = token("openid user/Observation.rs", staff_id=nurse)
        v1_everything = token("user/*.read", staff_id=nurse)
        launch_less = token("patient/*.rs", staff_id=nurse)
        patient_own = token("patient/Observation.read", patient_id=own.patient)
        url = f"/fhir/Observation?patient={own.patient}&_include=Observation:device"
        narrowed = client.get(url, headers=observations_only)
        device_read = client.get(
            f"/fhir/Device/{device_resource_id(own.device)}", headers=observations_only
        )
        whole = client.get(url, headers=v1_everything)
        everything = client.get(
            f"/fhir/Patient/{own.patient}/$everything", headers=observations_only
        )
        staff_patient_scope = client.get(url, headers=launch_less)
        patient_reads = client.get(url, headers=patient_own)
        patient_record = client.get(f"/fhir/Patient/{own.patient}", headers=patient_own)
    assert narrowed.status_code == whole.status_code == patient_reads.status_code == 200
    assert _resources(narrowed.json(), "Device") == []
    assert len(_resources(narrowed.json(), "Observation")) == 2
    assert len(_resources(whole.json(), "Device")) == 1
    for refused in (device_read, everything, staff_patient_scope, patient_record):
        assert refused.status_code == 403
        assert _valid(refused.json())["issue"][0]["code"] == "forbidden"
    assert len(_resources(patient_reads.json(), "Observation")) == 2
