"""Decoding the native JSON payload: good readings out, the rest quarantined with a reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest.decoding import Envelope
from ingest.native import decode_native
from ingest.quarantine import QuarantineReason

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENVELOPE = Envelope(
    channel="mqtt",
    topic="heimvakt/v1/devices/ox-1/readings",
    device_id="ox-1",
    received_at=NOW,
    max_future=timedelta(minutes=5),
)


def message(*readings: dict[str, Any], **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "msg_id": str(uuid.uuid4()),
        "measured_at": "2026-11-22T08:15:00+01:00",
        "readings": list(readings) or [{"code": "59408-5", "value": 93, "unit": "%"}],
    }
    body.update(fields)
    return json.dumps(body).encode()


def test_the_documented_example_decodes_to_one_reading() -> None:
    decoded = decode_native(message(), ENVELOPE)
    assert decoded.quarantined == []
    [reading] = decoded.candidates
    assert (reading.code, reading.value, reading.unit) == ("59408-5", 93.0, "%")
    assert reading.measured_at == datetime(2026, 11, 22, 7, 15, tzinfo=UTC)
    assert reading.device_id == "ox-1"


def test_a_blood_pressure_is_one_message_with_systolic_and_diastolic() -> None:
    decoded = decode_native(
        message(
            {"code": "sys", "value": 132, "unit": "mm[Hg]"},
            {"code": "8462-4", "value": 84, "unit": "mm[Hg]"},
        ),
        ENVELOPE,
    )
    assert [(c.code, c.value) for c in decoded.candidates] == [("8480-6", 132), ("8462-4", 84)]


@pytest.mark.parametrize(
    ("code", "value", "unit", "stored"),
    [
        ("weight", 180, "[lb_av]", ("29463-7", 81.6466266, "kg")),
        ("temp", 98.6, "[degF]", ("8310-5", 37.0, "Cel")),
        ("sys", 16, "kPa", ("8480-6", 120.0098521, "mm[Hg]")),
        ("pulse", 72, "{beats}/min", ("8867-4", 72.0, "/min")),
        ("8889-8", 72, "/min", ("8867-4", 72.0, "/min")),
        ("33452-4", 6, "L/s", ("19935-6", 360.0, "L/min")),
    ],
)
def test_alternative_codes_and_units_are_stored_in_catalog_terms(
    code: str, value: float, unit: str, stored: tuple[str, float, str]
) -> None:
    [reading] = decode_native(
        message({"code": code, "value": value, "unit": unit}), ENVELOPE
    ).candidates
    assert reading.code == stored[0]
    assert reading.value == pytest.approx(stored[1])
    assert reading.unit == stored[2]


def test_unknown_fields_are_ignored() -> None:
    payload = message({"code": "spo2", "value": 95, "unit": "%", "vendor": "x"}, firmware="1.2")
    assert len(decode_native(payload, ENVELOPE).candidates) == 1


BAD_MESSAGES = {
    "not JSON": (b"{not json", QuarantineReason.MALFORMED_JSON),
    "not UTF-8": (b"\xff\xfe\x00garbage", QuarantineReason.MALFORMED_JSON),
    "a JSON list": (b"[1, 2]", QuarantineReason.INVALID_FIELD),
    "no msg_id": (
        json.dumps({"measured_at": "2026-11-22T08:15:00+01:00", "readings": [{}]}).encode(),
        QuarantineReason.MISSING_FIELD,
    ),
    "msg_id not a uuid": (message(msg_id="abc"), QuarantineReason.INVALID_FIELD),
    "time without zone": (
        message(measured_at="2026-11-22T08:15:00"),
        QuarantineReason.INVALID_FIELD,
    ),
    "no readings": (message(readings=[]), QuarantineReason.INVALID_FIELD),
    "readings not a list": (message(readings={"code": "spo2"}), QuarantineReason.INVALID_FIELD),
    "readings null": (message(readings=None), QuarantineReason.INVALID_FIELD),
    "more readings than the limit": (
        message(*[{"code": "spo2", "value": 93, "unit": "%"}] * 101),
        QuarantineReason.TOO_MANY_READINGS,
    ),
    "a Unix time": (message(measured_at=1795331700), QuarantineReason.INVALID_FIELD),
    "a Unix time as text": (message(measured_at="1795331700"), QuarantineReason.INVALID_FIELD),
    "a date alone": (message(measured_at="2026-11-22"), QuarantineReason.INVALID_FIELD),
    "a time without seconds (not RFC 3339)": (
        message(measured_at="2026-11-22T08:15+01:00"),
        QuarantineReason.INVALID_FIELD,
    ),
    "msg_id in braces": (
        message(msg_id="{6f1c1f0e-4d1e-4c39-9d6a-3b1e1f5f2a10}"),
        QuarantineReason.INVALID_FIELD,
    ),
    "not UTF-8 in a field nobody reads": (
        message().replace(b'"msg_id"', b'"vendor": "\xff", "msg_id"'),
        QuarantineReason.MALFORMED_JSON,
    ),
    "nested too deeply in a field nobody reads": (
        message().replace(
            b'"msg_id"', b'"vendor": ' + b"[" * 100_000 + b"]" * 100_000 + b', "msg_id"'
        ),
        QuarantineReason.MALFORMED_JSON,
    ),
    "trailing text": (message() + b" x", QuarantineReason.MALFORMED_JSON),
    "far future": (
        message(measured_at="2026-11-22T08:06:00+00:00"),
        QuarantineReason.FUTURE_TIMESTAMP,
    ),
}


@pytest.mark.parametrize("case", BAD_MESSAGES)
def test_a_bad_message_is_quarantined_whole_with_its_reason(case: str) -> None:
    payload, reason = BAD_MESSAGES[case]
    decoded = decode_native(payload, ENVELOPE)
    assert decoded.candidates == []
    [entry] = decoded.quarantined
    assert entry.reason is reason
    assert entry.payload == payload
    assert entry.device_id == "ox-1"
    assert entry.detail


def test_the_first_bad_field_in_the_contract_order_is_named_whatever_the_senders_order() -> None:
    payload = b'{"readings": "spo2=93", "measured_at": 5, "msg_id": "abc"}'
    [entry] = decode_native(payload, ENVELOPE).quarantined
    assert entry.reason is QuarantineReason.INVALID_FIELD
    assert entry.detail.startswith("msg_id: ")

    payload = b'{"readings": "spo2=93", "measured_at": 5}'
    [entry] = decode_native(payload, ENVELOPE).quarantined
    assert (entry.reason, entry.detail) == (
        QuarantineReason.MISSING_FIELD,
        "msg_id: required field is missing",
    )


@pytest.mark.parametrize(
    "measured_at",
    [
        "2026-11-22T07:15:00Z",
        "2026-11-22t07:15:00z",
        "2026-11-22 07:15:00Z",
        "2026-11-22T08:15:00.000+01:00",
        "2026-11-22T02:45:00-04:30",
    ],
)
def test_rfc_3339_times_with_an_offset_are_accepted(measured_at: str) -> None:
    [reading] = decode_native(message(measured_at=measured_at), ENVELOPE).candidates
    assert reading.measured_at == datetime(2026, 11, 22, 7, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "msg_id",
    ["6F1C1F0E-4D1E-4C39-9D6A-3B1E1F5F2A10", "6f1c1f0e4d1e4c399d6a3b1e1f5f2a10"],
)
def test_a_uuid_is_accepted_in_capitals_and_without_hyphens(msg_id: str) -> None:
    [reading] = decode_native(message(msg_id=msg_id), ENVELOPE).candidates
    assert reading.msg_id == uuid.UUID("6f1c1f0e-4d1e-4c39-9d6a-3b1e1f5f2a10")


def test_a_time_within_the_five_minute_tolerance_is_accepted() -> None:
    payload = message(measured_at="2026-11-22T08:04:59+00:00")
    assert len(decode_native(payload, ENVELOPE).candidates) == 1


BAD_READINGS: dict[str, tuple[Any, QuarantineReason]] = {
    "unknown code": ({"code": "1234-5", "value": 1, "unit": "%"}, QuarantineReason.UNKNOWN_CODE),
    "unknown unit": ({"code": "spo2", "value": 0.93, "unit": "1"}, QuarantineReason.UNKNOWN_UNIT),
    "unit of another quantity": (
        {"code": "weight", "value": 80, "unit": "mm[Hg]"},
        QuarantineReason.UNKNOWN_UNIT,
    ),
    "implausible": (
        {"code": "spo2", "value": 130, "unit": "%"},
        QuarantineReason.IMPLAUSIBLE_VALUE,
    ),
    "negative pulse": (
        {"code": "pulse", "value": -4, "unit": "/min"},
        QuarantineReason.IMPLAUSIBLE_VALUE,
    ),
    "value as text": ({"code": "spo2", "value": "93", "unit": "%"}, QuarantineReason.INVALID_FIELD),
    "value true": ({"code": "spo2", "value": True, "unit": "%"}, QuarantineReason.INVALID_FIELD),
    "no unit": ({"code": "spo2", "value": 93}, QuarantineReason.MISSING_FIELD),
    "value null": ({"code": "spo2", "value": None, "unit": "%"}, QuarantineReason.INVALID_FIELD),
    "value beyond a float": (
        {"code": "spo2", "value": 10**400, "unit": "%"},
        QuarantineReason.INVALID_FIELD,
    ),
    "code empty": ({"code": "", "value": 93, "unit": "%"}, QuarantineReason.INVALID_FIELD),
    "code longer than 32": (
        {"code": "5" * 33, "value": 93, "unit": "%"},
        QuarantineReason.INVALID_FIELD,
    ),
    "unit a number": ({"code": "spo2", "value": 93, "unit": 1}, QuarantineReason.INVALID_FIELD),
    "no code": ({"value": 93, "unit": "%"}, QuarantineReason.MISSING_FIELD),
    "not an object": ("spo2=93", QuarantineReason.INVALID_FIELD),
    "a list": ([{"code": "spo2", "value": 93, "unit": "%"}], QuarantineReason.INVALID_FIELD),
}


@pytest.mark.parametrize("case", BAD_READINGS)
def test_a_bad_reading_is_quarantined_and_its_good_neighbour_kept(case: str) -> None:
    bad, reason = BAD_READINGS[case]
    decoded = decode_native(message({"code": "pulse", "value": 71, "unit": "/min"}, bad), ENVELOPE)
    assert [c.code for c in decoded.candidates] == ["8867-4"]
    [entry] = decoded.quarantined
    assert entry.reason is reason
    assert entry.detail.startswith("readings[1]: ")
    assert entry.payload == json.dumps(bad).encode(), "the reading is kept as it was sent"


def test_a_refusal_names_the_reading_and_the_field() -> None:
    bad = {"code": "spo2", "value": "93", "unit": "%"}
    decoded = decode_native(message({"code": "pulse", "value": 71, "unit": "/min"}, bad), ENVELOPE)
    [entry] = decoded.quarantined
    assert entry.detail == "readings[1]: value: Expected `float`, got `str`"


def test_not_a_number_is_refused() -> None:
    payload = message().replace(b"93", b"NaN")
    decoded = decode_native(payload, ENVELOPE)
    assert decoded.candidates == []
    assert decoded.quarantined[0].reason in {
        QuarantineReason.MALFORMED_JSON,
        QuarantineReason.INVALID_FIELD,
    }


def test_a_systolic_not_above_the_diastolic_quarantines_both() -> None:
    decoded = decode_native(
        message(
            {"code": "sys", "value": 80, "unit": "mm[Hg]"},
            {"code": "dia", "value": 90, "unit": "mm[Hg]"},
        ),
        ENVELOPE,
    )
    assert decoded.candidates == []
    assert {q.reason for q in decoded.quarantined} == {QuarantineReason.INCONSISTENT_BLOOD_PRESSURE}
    assert len(decoded.quarantined) == 2
