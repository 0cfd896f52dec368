"""The format registry, and the same readings arriving in every format.

A morning's readings (tests/ingest/fixtures/morning/) sent as native JSON, SenML, single FHIR
Observations, a FHIR Bundle, and a PHD-style Bundle of MDC codes must become the very same
candidate readings: the format is how a device speaks, not what it measured.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import catalog
from ingest import formats, mappings
from ingest.decoding import Candidate, Decoded, Envelope
from ingest.quarantine import QuarantineReason

FIXTURES = Path(__file__).parent / "fixtures"
MORNING = FIXTURES / "morning"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
AT = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)


def envelope(kind: str, device_id: str = "gw-7") -> Envelope:
    return Envelope(
        channel="mqtt",
        topic=f"heimvakt/v1/devices/{device_id}/{kind}",
        device_id=device_id,
        received_at=NOW,
        max_future=timedelta(minutes=5),
    )


def decode(kind: str, payload: bytes, device_id: str = "gw-7") -> Decoded:
    payload_format = formats.for_topic_kind(kind)
    assert payload_format is not None
    return payload_format.decode(payload, envelope(kind, device_id))


EXPECTED = [
    ("59408-5", 93.0, "%"),
    ("8867-4", 88.0, "/min"),
    ("8480-6", 132.0, "mm[Hg]"),
    ("8462-4", 84.0, "mm[Hg]"),
    ("29463-7", 81.4, "kg"),
]
BLOOD_PRESSURE = [row for row in EXPECTED if row[0] in {"8480-6", "8462-4"}]

FORMS = {
    "native": ("readings", ["native.json"], EXPECTED),
    "SenML": ("senml", ["senml.json"], EXPECTED),
    "FHIR Observations": (
        "fhir",
        ["fhir-spo2.json", "fhir-pulse.json", "fhir-bp-panel.json", "fhir-weight.json"],
        EXPECTED,
    ),
    "FHIR Bundle": ("fhir", ["fhir-bundle.json"], EXPECTED),
    "FHIR Bundle, MDC codes": ("fhir", ["fhir-bundle-mdc.json"], EXPECTED),
    "FHIR blood-pressure panel": ("fhir", ["fhir-bp-panel.json"], BLOOD_PRESSURE),
}


def readings(candidates: list[Candidate]) -> list[tuple[str, float, str, datetime]]:
    return sorted((c.code, c.value, c.unit, c.measured_at) for c in candidates)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_of_the_morning_decodes_to_the_same_readings(form: str) -> None:
    kind, files, expected = FORMS[form]
    candidates: list[Candidate] = []
    for name in files:
        decoded = decode(kind, (MORNING / name).read_bytes())
        assert decoded.quarantined == [], name
        candidates += decoded.candidates

    got = readings(candidates)
    assert [(code, unit, at) for code, _, unit, at in got] == [
        (code, unit, AT) for code, _, unit in sorted(expected)
    ]
    assert [value for _, value, _, _ in got] == pytest.approx(
        [value for _, value, _ in sorted(expected)], rel=1e-6
    )
    assert {c.device_id for c in candidates} == {"gw-7"}
    assert {c.received_at for c in candidates} == {NOW}


@pytest.mark.parametrize("form", FORMS)
def test_in_every_form_a_reading_older_than_the_maximum_age_is_too_old(form: str) -> None:
    kind, files, expected = FORMS[form]
    payload_format = formats.for_topic_kind(kind)
    assert payload_format is not None
    for max_age, reason in ((NOW - AT, None), (NOW - AT - timedelta(seconds=1), "too_old")):
        aged = replace(envelope(kind), max_age=max_age)
        decoded = [payload_format.decode((MORNING / name).read_bytes(), aged) for name in files]
        refused = {str(q.reason) for d in decoded for q in d.quarantined}
        stored = sum(len(d.candidates) for d in decoded)
        assert (refused, stored) == (({reason}, 0) if reason else (set(), len(expected)))


@pytest.mark.parametrize("form", FORMS)
def test_the_same_payload_decoded_twice_has_the_same_msg_id(form: str) -> None:
    kind, files, _ = FORMS[form]
    for name in files:
        payload = (MORNING / name).read_bytes()
        first, again = decode(kind, payload), decode(kind, payload)
        assert [c.msg_id for c in first.candidates] == [c.msg_id for c in again.candidates]


@pytest.mark.parametrize("kind", ["senml", "fhir"])
def test_a_derived_msg_id_depends_on_the_device(kind: str) -> None:
    payload = (MORNING / ("senml.json" if kind == "senml" else "fhir-bundle.json")).read_bytes()
    ours = {c.msg_id for c in decode(kind, payload, "gw-7").candidates}
    theirs = {c.msg_id for c in decode(kind, payload, "gw-8").candidates}
    assert ours.isdisjoint(theirs)


def test_an_observation_has_the_same_msg_id_alone_and_in_a_bundle() -> None:
    alone = decode("fhir", (MORNING / "fhir-spo2.json").read_bytes()).candidates
    bundled = decode("fhir", (MORNING / "fhir-bundle.json").read_bytes()).candidates
    [spo2] = alone
    assert spo2.msg_id in {c.msg_id for c in bundled if c.code == "59408-5"}


GARBAGE = [
    b"",
    b"null",
    b"1",
    b'"text"',
    b"{}",
    b"[]",
    b"[[]]",
    b"[{}]",
    b"[" * 100_000,
    b'[{"v": ' + b"9" * 5000 + b"}]",
]


@pytest.mark.parametrize("kind", ["readings", "senml", "fhir"])
@pytest.mark.parametrize("payload", GARBAGE, ids=lambda p: repr(p[:12]))
def test_garbage_is_quarantined_with_a_reason_and_never_lost(kind: str, payload: bytes) -> None:
    decoded = decode(kind, payload)
    assert decoded.candidates == []
    assert decoded.quarantined
    assert all(q.reason is not QuarantineReason.DECODE_ERROR for q in decoded.quarantined)
    assert all(q.detail for q in decoded.quarantined)


# --- the registry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"), [("readings", "native"), ("senml", "senml"), ("fhir", "fhir")]
)
def test_each_topic_kind_names_its_format(kind: str, name: str) -> None:
    payload_format = formats.for_topic_kind(kind)
    assert payload_format is not None
    assert payload_format.name == name


@pytest.mark.parametrize(
    ("content_type", "name"),
    [
        ("application/json", "native"),
        ("application/json; charset=utf-8", "native"),
        ("application/senml+json", "senml"),
        ("Application/SenML+JSON", "senml"),
        ("application/fhir+json", "fhir"),
        ("application/fhir+json; fhirVersion=4.0", "fhir"),
        ("application/json+fhir", "fhir"),
    ],
)
def test_each_content_type_names_its_format(content_type: str, name: str) -> None:
    payload_format = formats.for_content_type(content_type)
    assert payload_format is not None
    assert payload_format.name == name


@pytest.mark.parametrize(
    "content_type", ["application/senml+cbor", "application/fhir+xml", "text/plain"]
)
def test_formats_we_do_not_decode_are_not_registered(content_type: str) -> None:
    assert formats.for_content_type(content_type) is None


def test_topic_kinds_and_content_types_are_unique() -> None:
    kinds = [f.topic_kind for f in formats.FORMATS]
    types = [t for f in formats.FORMATS for t in f.content_types]
    assert len(kinds) == len(set(kinds))
    assert len(types) == len(set(types))
    assert "status" not in kinds


# --- the mapping tables ---------------------------------------------------------------------


def test_every_code_row_names_a_catalog_measurement() -> None:
    for row in mappings.CODES:
        assert catalog.lookup(row.catalog_code) is not None, row
        assert row.source, row


def test_every_unit_row_gives_a_unit_some_measurement_accepts() -> None:
    for row in mappings.UNITS:
        assert any(_accepts(m, row.ucum) for m in catalog.MEASUREMENTS), row
        assert row.source, row


def test_no_code_or_unit_is_mapped_twice() -> None:
    codes = [(row.system, row.code) for row in mappings.CODES]
    units = [(row.system, row.code) for row in mappings.UNITS]
    assert len(codes) == len(set(codes))
    assert len(units) == len(set(units))


def test_ucum_units_pass_through_for_the_catalog_to_judge() -> None:
    assert mappings.to_ucum(mappings.UCUM, "[lb_av]", 180.0) == (180.0, "[lb_av]")
    assert mappings.to_ucum(mappings.MDC, "262688", 93.0) == (93.0, "%")
    assert mappings.to_ucum(mappings.SENML_UNITS, "/", 0.5) == (50.0, "%")
    assert mappings.to_ucum(mappings.SENML_UNITS, "mm[Hg]", 1.0) is None
    assert mappings.to_ucum("http://example.org/units", "%", 93.0) is None


def _accepts(measurement: catalog.Measurement, unit: str) -> bool:
    try:
        catalog.to_canonical(measurement, 1.0, unit)
    except catalog.UnknownUnitError:
        return False
    return True
