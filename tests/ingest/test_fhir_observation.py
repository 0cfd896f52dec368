"""Decoding FHIR R4 Observations and Bundles: readings out, the rest quarantined with a reason."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.decoding import Decoded, Envelope
from ingest.fhir_observation import decode_fhir
from ingest.quarantine import QuarantineReason

FIXTURES = Path(__file__).parent / "fixtures"
R4 = FIXTURES / "fhir-r4"
PHD = FIXTURES / "phd-ig"
MORNING = FIXTURES / "morning"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENVELOPE = Envelope(
    channel="mqtt",
    topic="heimvakt/v1/devices/gw-1/fhir",
    device_id="gw-1",
    received_at=NOW,
    max_future=timedelta(minutes=5),
    max_readings=20,
)
AT = "2026-11-22T07:30:00+01:00"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"

Reason = QuarantineReason


def decode(document: dict[str, Any] | list[Any] | bytes) -> Decoded:
    payload = document if isinstance(document, bytes) else json.dumps(document).encode()
    return decode_fhir(payload, ENVELOPE)


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def observation(
    code: str = "59408-5",
    value: object = 93,
    unit: str = "%",
    *,
    system: str = LOINC,
    unit_system: str = UCUM,
    **fields: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/someone-else"},
        "effectiveDateTime": AT,
        "valueQuantity": {"value": value, "unit": unit, "system": unit_system, "code": unit},
    }
    resource.update(fields)
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def readings(decoded: Decoded) -> list[tuple[str, float, str, datetime]]:
    return [(c.code, round(c.value, 4), c.unit, c.measured_at) for c in decoded.candidates]


def reasons(decoded: Decoded) -> list[QuarantineReason]:
    return [q.reason for q in decoded.quarantined]


# --- the published examples -----------------------------------------------------------------

SAT_O2_AT = datetime(2014, 12, 5, 8, 30, 10, tzinfo=UTC)
SPIRO_AT = datetime(2017, 5, 3, 19, 54, 26, tzinfo=UTC)
PHD_AT = datetime(2019, 9, 20, 16, 40, 16, 936000, tzinfo=UTC)
BP_AT = datetime(2018, 11, 11, 16, 38, 15, tzinfo=UTC)

PUBLISHED = {
    # FHIR R4: coded LOINC 2708-6 first (it maps, and is stored as SpO2 59408-5).
    "fhir-r4/observation-example-satO2.json": ([("59408-5", 95.0, "%", SAT_O2_AT)], []),
    # FHIR R4: MDC code and MDC unit only, 820 cL/s = 492 L/min.
    "fhir-r4/observation-example-spirometry.json": (
        [("19935-6", 492.0, "L/min", SPIRO_AT)],
        [],
    ),
    # FHIR R4 vital signs dated without a time of day: no reading time, so refused.
    "fhir-r4/observation-example-heart-rate.json": ([], [Reason.INVALID_FIELD]),
    "fhir-r4/observation-example-respiratory-rate.json": ([], [Reason.INVALID_FIELD]),
    "fhir-r4/observation-example-body-temperature.json": ([], [Reason.INVALID_FIELD]),
    "fhir-r4/observation-example-bloodpressure.json": ([], [Reason.INVALID_FIELD]),
    "fhir-r4/observation-example.json": ([], [Reason.INVALID_FIELD]),
    "fhir-r4/observation-example-bloodpressure-cancel.json": ([], [Reason.INVALID_FIELD]),
    # A panel that only points at its members carries no measurement.
    "fhir-r4/observation-example-vitals-panel.json": ([], [Reason.MISSING_FIELD]),
    # PHD IG: the coincident time stamp (MDC_ATTR_TIME_ABS) is not a measurement we know.
    "phd-ig/bundle-example-1.json": (
        [("59408-5", 98.0, "%", PHD_AT), ("8867-4", 47.0, "/min", PHD_AT)],
        [Reason.UNKNOWN_CODE],
    ),
    # PHD IG: the mean arterial pressure (MDC 150023) is not in the catalog.
    "phd-ig/compound-numeric-blood-pressure.json": (
        [("8480-6", 116.0, "mm[Hg]", BP_AT), ("8462-4", 71.0, "mm[Hg]", BP_AT)],
        [Reason.UNKNOWN_CODE],
    ),
    "phd-ig/temperature-observation.json": (
        [("8310-5", 36.5, "Cel", datetime(2025, 1, 9, 0, 7, 48, tzinfo=UTC))],
        [],
    ),
    # PHD IG: the supplemental-types component only qualifies the value.
    "phd-ig/numeric-spotnumeric.json": (
        [("8867-4", 48.0, "/min", datetime(2018, 11, 13, 22, 59, 3, tzinfo=UTC))],
        [],
    ),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_published_examples_decode_or_are_refused_with_the_right_reason(name: str) -> None:
    expected, refused = PUBLISHED[name]
    decoded = decode((FIXTURES / name).read_bytes())
    assert readings(decoded) == expected
    assert reasons(decoded) == refused


def test_the_published_refusals_say_why() -> None:
    heart_rate = decode((R4 / "observation-example-heart-rate.json").read_bytes())
    cancelled = decode((R4 / "observation-example-bloodpressure-cancel.json").read_bytes())
    phd = decode((PHD / "bundle-example-1.json").read_bytes())
    assert heart_rate.quarantined[0].detail == (
        "Observation.effectiveDateTime: '1999-07-02' has no time of day and time zone"
    )
    assert "'cancelled'" in cancelled.quarantined[0].detail
    assert phd.quarantined[0].detail.startswith("Bundle.entry[3].resource.code:")
    assert f"{MDC}|67975" in phd.quarantined[0].detail


WITH_A_TIME = {
    "observation-example-heart-rate.json": [("8867-4", 44.0, "/min")],
    "observation-example-respiratory-rate.json": [("9279-1", 26.0, "/min")],
    "observation-example-body-temperature.json": [("8310-5", 36.5, "Cel")],
    "observation-example-bloodpressure.json": [
        ("8480-6", 107.0, "mm[Hg]"),
        ("8462-4", 60.0, "mm[Hg]"),
    ],
    # 185 [lb_av], coded LOINC 29463-7 and 3141-9, SNOMED CT and a local code.
    "observation-example.json": [("29463-7", 83.9146, "kg")],
}


@pytest.mark.parametrize("name", WITH_A_TIME)
def test_the_r4_vital_signs_decode_once_they_carry_a_time_of_day(name: str) -> None:
    resource = load(R4 / name)
    resource["effectiveDateTime"] += "T09:30:00+01:00"
    decoded = decode(resource)
    assert decoded.quarantined == []
    assert [r[:3] for r in readings(decoded)] == WITH_A_TIME[name]


# --- status, time, codes, values ------------------------------------------------------------


@pytest.mark.parametrize("status", ["final", "amended", "corrected"])
def test_final_amended_and_corrected_results_are_read(status: str) -> None:
    assert len(decode(observation(status=status)).candidates) == 1


@pytest.mark.parametrize(
    "status",
    ["preliminary", "registered", "cancelled", "entered-in-error", "unknown", 7, ["final"]],
)
def test_results_that_are_not_final_are_refused(status: object) -> None:
    decoded = decode(observation(status=status))
    assert decoded.candidates == []
    assert reasons(decoded) == [Reason.INVALID_FIELD]
    assert "status" in decoded.quarantined[0].detail


@pytest.mark.parametrize(
    "effective",
    [
        {"effectiveDateTime": "2026-11-22T06:30:00Z"},
        {"effectiveDateTime": "2026-11-22T07:30:00.000+01:00"},
        {"effectiveInstant": "2026-11-22T06:30:00.000Z"},
        {"effectivePeriod": {"start": AT, "end": "2026-11-22T07:31:00+01:00"}},
    ],
)
def test_the_time_is_the_effective_date_time_instant_or_period_start(
    effective: dict[str, Any],
) -> None:
    resource = observation()
    del resource["effectiveDateTime"]
    resource.update(effective)
    [reading] = decode(resource).candidates
    assert reading.measured_at == datetime(2026, 11, 22, 6, 30, tzinfo=UTC)


def test_the_first_coding_that_maps_names_the_measurement() -> None:
    resource = observation()
    resource["code"]["coding"] = [
        {"system": "http://acme.org/devices/clinical-codes", "code": "spo2"},
        {"system": LOINC, "code": "1234-5"},
        {"system": LOINC, "code": "spo2"},
        {"system": MDC, "code": "150456", "display": "MDC_PULS_OXIM_SAT_O2"},
        {"system": LOINC, "code": "8867-4"},
    ]
    assert [c.code for c in decode(resource).candidates] == ["59408-5"]


@pytest.mark.parametrize(
    ("code", "value", "unit", "stored"),
    [
        ("150456", 93, "262688", ("59408-5", 93.0, "%")),
        ("149530", 88, "264864", ("8867-4", 88.0, "/min")),
        ("149546", 88, "264864", ("8867-4", 88.0, "/min")),
        ("147842", 88, "264864", ("8867-4", 88.0, "/min")),
        ("152584", 600, "265201", ("19935-6", 360.0, "L/min")),
    ],
)
def test_mdc_codes_and_mdc_units_are_read_as_phd_gateways_send_them(
    code: str, value: float, unit: str, stored: tuple[str, float, str]
) -> None:
    resource = observation(code, value, unit, system=MDC, unit_system=MDC)
    [reading] = decode(resource).candidates
    assert (reading.code, round(reading.value, 4), reading.unit) == stored


@pytest.mark.parametrize(
    ("code", "value", "unit", "stored"),
    [
        ("188736", 81.4, "kg", ("29463-7", 81.4, "kg")),
        ("150364", 98.6, "[degF]", ("8310-5", 37.0, "Cel")),
        ("151562", 18, "/min", ("9279-1", 18.0, "/min")),
        ("150324", 95, "%", ("59408-5", 95.0, "%")),
    ],
)
def test_mdc_codes_with_ucum_units(
    code: str, value: float, unit: str, stored: tuple[str, float, str]
) -> None:
    [reading] = decode(observation(code, value, unit, system=MDC)).candidates
    assert (reading.code, round(reading.value, 4), reading.unit) == stored


def test_the_subject_is_not_who_the_reading_belongs_to() -> None:
    ours = decode(observation(subject={"reference": "Patient/a"})).candidates
    theirs = decode(observation(subject={"reference": "Patient/b"})).candidates
    assert [(c.device_id, c.code, c.value) for c in ours] == [
        (c.device_id, c.code, c.value) for c in theirs
    ]
    assert {c.device_id for c in ours} == {"gw-1"}


def test_a_bundle_ignores_resources_that_are_not_observations() -> None:
    decoded = decode((MORNING / "fhir-bundle.json").read_bytes())
    assert len(decoded.candidates) == 5
    assert decoded.quarantined == []


def test_a_bad_observation_in_a_bundle_leaves_its_neighbours_stored() -> None:
    decoded = decode(
        bundle(
            {"resourceType": "Patient", "id": "p"},
            observation(),
            observation("8867-4", 88, "/min", status="preliminary"),
            observation("8867-4", 88, "{beats}/min"),
        )
    )
    assert [c.code for c in decoded.candidates] == ["59408-5", "8867-4"]
    [entry] = decoded.quarantined
    assert entry.reason is Reason.INVALID_FIELD
    assert entry.detail.startswith("Bundle.entry[2].resource.status")
    assert json.loads(entry.payload)["status"] == "preliminary"


def test_an_entry_without_a_resource_is_quarantined_and_the_rest_read() -> None:
    document = bundle(observation())
    document["entry"].append({"fullUrl": "urn:uuid:5b7842fe-978d-4182-a41f-0d07a8617bc2"})
    decoded = decode(document)
    assert len(decoded.candidates) == 1
    assert reasons(decoded) == [Reason.INVALID_FIELD]
    assert decoded.quarantined[0].detail.startswith("Bundle.entry[1].resource")


def test_a_systolic_not_above_the_diastolic_quarantines_both() -> None:
    panel = load(MORNING / "fhir-bp-panel.json")
    panel["component"][0]["valueQuantity"]["value"] = 80
    decoded = decode(panel)
    assert decoded.candidates == []
    assert reasons(decoded) == [Reason.INCONSISTENT_BLOOD_PRESSURE] * 2


def test_a_bad_component_leaves_the_other_component_stored() -> None:
    panel = load(MORNING / "fhir-bp-panel.json")
    panel["component"][1]["valueQuantity"]["value"] = "84"
    decoded = decode(panel)
    assert [c.code for c in decoded.candidates] == ["8480-6"]
    assert reasons(decoded) == [Reason.INVALID_FIELD]
    assert decoded.quarantined[0].detail.startswith("Observation.component[1].valueQuantity")


# --- what is refused ------------------------------------------------------------------------


def without(field: str, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    resource = copy.deepcopy(resource or observation())
    del resource[field]
    return resource


def quantity(**changes: Any) -> dict[str, Any]:
    resource = observation()
    resource["valueQuantity"].update(changes)
    return resource


def drop_from_quantity(field: str) -> dict[str, Any]:
    resource = observation()
    del resource["valueQuantity"][field]
    return resource


TOO_MANY = bundle(*[observation(effectiveDateTime=f"2026-11-22T06:{m:02}:00Z") for m in range(21)])

BAD: dict[str, tuple[dict[str, Any] | list[Any] | bytes, Reason]] = {
    "not JSON": (b'{"resourceType": "Observation",', Reason.MALFORMED_JSON),
    "not UTF-8": (b"\xff\xfe{}", Reason.MALFORMED_JSON),
    "NaN": (json.dumps(observation(value=float("nan"))).encode(), Reason.MALFORMED_JSON),
    "a JSON array": ([observation()], Reason.INVALID_FIELD),
    "wrong resourceType": ({"resourceType": "Patient", "id": "p"}, Reason.INVALID_FIELD),
    "no resourceType": (without("resourceType"), Reason.MISSING_FIELD),
    "empty Bundle": ({"resourceType": "Bundle", "type": "collection"}, Reason.MISSING_FIELD),
    "Bundle without Observations": (
        bundle({"resourceType": "Device", "id": "d"}, {"resourceType": "Patient", "id": "p"}),
        Reason.MISSING_FIELD,
    ),
    "too many readings": (TOO_MANY, Reason.TOO_MANY_READINGS),
    "no status": (without("status"), Reason.MISSING_FIELD),
    "no effective time": (without("effectiveDateTime"), Reason.MISSING_FIELD),
    "a date without a time": (observation(effectiveDateTime="2026-11-22"), Reason.INVALID_FIELD),
    "a time without a zone": (
        observation(effectiveDateTime="2026-11-22T07:30:00"),
        Reason.INVALID_FIELD,
    ),
    "not a dateTime": (observation(effectiveDateTime="2026-11-22T25:00:00Z"), Reason.INVALID_FIELD),
    "a period without a start": (
        observation(effectivePeriod={"end": AT}, effectiveDateTime=None),
        Reason.MISSING_FIELD,
    ),
    "no value": (without("valueQuantity"), Reason.MISSING_FIELD),
    "value absent with a reason": (
        observation(
            valueQuantity=None,
            dataAbsentReason={"coding": [{"code": "not-a-number"}]},
        ),
        Reason.MISSING_FIELD,
    ),
    "a string value": (
        observation(valueQuantity=None, valueString="93 %"),
        Reason.INVALID_FIELD,
    ),
    "the value as text": (quantity(value="93"), Reason.INVALID_FIELD),
    "the value true": (quantity(value=True), Reason.INVALID_FIELD),
    "no value in the quantity": (drop_from_quantity("value"), Reason.MISSING_FIELD),
    "a bound, not a value": (quantity(comparator=">"), Reason.INVALID_FIELD),
    "unknown code": (observation("2339-0", 5.5, "mmol/L"), Reason.UNKNOWN_CODE),
    "unknown MDC code": (observation("150023", 86, "mm[Hg]", system=MDC), Reason.UNKNOWN_CODE),
    "no code": (without("code"), Reason.MISSING_FIELD),
    "unknown unit": (observation("29463-7", 12, "[stone_av]"), Reason.UNKNOWN_UNIT),
    "unit of another quantity": (observation("29463-7", 80, "mm[Hg]"), Reason.UNKNOWN_UNIT),
    "unknown MDC unit": (
        observation("29463-7", 81.4, "263875", unit_system=MDC),
        Reason.UNKNOWN_UNIT,
    ),
    "unknown unit system": (
        observation(unit_system="http://example.org/units"),
        Reason.UNKNOWN_UNIT,
    ),
    "a unit without a code": (drop_from_quantity("code"), Reason.MISSING_FIELD),
    "a unit without a system": (drop_from_quantity("system"), Reason.MISSING_FIELD),
    "far future": (observation(effectiveDateTime="2026-11-22T08:06:00Z"), Reason.FUTURE_TIMESTAMP),
    "implausible": (observation(value=130), Reason.IMPLAUSIBLE_VALUE),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_message_is_quarantined_with_its_reason(case: str) -> None:
    document, reason = BAD[case]
    if isinstance(document, dict):
        document = {k: v for k, v in document.items() if v is not None}
    decoded = decode(document)
    assert decoded.candidates == []
    [entry] = decoded.quarantined
    assert entry.reason is reason
    assert entry.device_id == "gw-1"
    assert entry.detail


def test_a_time_within_the_five_minute_tolerance_is_accepted() -> None:
    assert len(decode(observation(effectiveDateTime="2026-11-22T08:04:59Z")).candidates) == 1


# --- msg_id ---------------------------------------------------------------------------------


def test_the_msg_id_follows_the_observation_identity_and_time() -> None:
    def msg_id(resource: dict[str, Any]) -> object:
        [reading] = decode(resource).candidates
        return reading.msg_id

    base = observation()
    identified = observation(identifier=[{"system": "urn:x", "value": "o-1"}])
    assert msg_id(base) == msg_id(copy.deepcopy(base))
    assert msg_id(base) != msg_id(observation(id="obs-2"))
    assert msg_id(base) != msg_id(observation(effectiveDateTime="2026-11-22T07:31:00+01:00"))
    assert msg_id(identified) == msg_id(
        observation(id="other", identifier=identified["identifier"])
    )
    assert msg_id(without("id")) == msg_id(without("id"))
    assert msg_id(without("id")) != msg_id(without("id", observation(value=94)))


def test_the_readings_of_one_observation_share_its_msg_id() -> None:
    decoded = decode((MORNING / "fhir-bp-panel.json").read_bytes())
    assert len({c.msg_id for c in decoded.candidates}) == 1
    bundled = decode((MORNING / "fhir-bundle.json").read_bytes())
    assert len({c.msg_id for c in bundled.candidates}) == 4
