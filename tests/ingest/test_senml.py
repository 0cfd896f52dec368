"""Decoding SenML packs (RFC 8428): resolved records out, the rest quarantined with a reason."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.decoding import Decoded, Envelope
from ingest.quarantine import QuarantineReason
from ingest.senml import RELATIVE_TIME_LIMIT, decode_senml

RFC = Path(__file__).parent / "fixtures" / "rfc8428"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENVELOPE = Envelope(
    channel="mqtt",
    topic="heimvakt/v1/devices/ox-1/senml",
    device_id="ox-1",
    received_at=NOW,
    max_future=timedelta(minutes=5),
    max_readings=20,
)
BT = NOW.timestamp() - 3600
"""An absolute base time: an hour before the receive time."""

Reason = QuarantineReason


def decode(pack: list[Any] | bytes, envelope: Envelope = ENVELOPE) -> Decoded:
    payload = pack if isinstance(pack, bytes) else json.dumps(pack).encode()
    return decode_senml(payload, envelope)


def one(pack: list[Any]) -> tuple[str, float, str, datetime]:
    decoded = decode(pack)
    assert decoded.quarantined == []
    [c] = decoded.candidates
    return c.code, c.value, c.unit, c.measured_at


# --- the published examples of RFC 8428 -----------------------------------------------------

U, INVALID = Reason.UNKNOWN_CODE, Reason.INVALID_FIELD
PUBLISHED = {
    # 1-wire temperature sensor: the name ends in its address, not a measurement.
    "5.1.1-single-data-point.json": [U],
    "5.1.2-multiple-data-points.json": [U, U],
    "5.1.2-multiple-data-points-relative-time.json": [U] * 7,
    # humidity, position and battery: nothing Heimvakt measures.
    "5.1.3-multiple-measurements.json": [U] * 13,
    "5.1.4-resolved-data.json": [U] * 13,
    # "temp" is our alias for body temperature: a 23.1 Cel machine room is not plausible.
    "5.1.5-multiple-data-types.json": [Reason.IMPLAUSIBLE_VALUE, INVALID, INVALID, INVALID],
    "5.1.6-collection-of-resources.json": [U] * 4,
    # The first record carries only a base name and gives no reading.
    "5.1.7-setting-an-actuator.json": [Reason.IMPLAUSIBLE_VALUE, U, U],
    "5.1.7-lights-on.json": [U, U],
    "5.1.7-lights-off.json": [U] * 4,
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_rfc_examples_are_refused_record_by_record_with_the_right_reason(name: str) -> None:
    decoded = decode((RFC / name).read_bytes())
    assert decoded.candidates == []
    assert [q.reason for q in decoded.quarantined] == PUBLISHED[name]
    assert all(q.detail.startswith("records[") for q in decoded.quarantined)
    assert len({q.msg_id for q in decoded.quarantined}) == 1


def test_a_published_record_names_its_sensor_and_value_kind_in_the_detail() -> None:
    decoded = decode((RFC / "5.1.5-multiple-data-types.json").read_bytes())
    details = [q.detail for q in decoded.quarantined]
    assert details[0] == "records[0]: temp 23.1 Cel is outside 30..43"
    assert details[1] == "records[1].vs: only numeric values (v) are measurements"


def test_the_rfc_example_with_our_measurement_names_decodes() -> None:
    """RFC 8428 §5.1.2, renamed to measurements we know: base fields carry over."""
    pack = json.loads((RFC / "5.1.2-multiple-data-points-relative-time.json").read_text())
    pack[0].update({"bn": "urn:dev:ow:10e2073a0108006:", "bu": "beat/min", "n": "resp_rate"})
    pack[0]["u"] = "1/min"
    pack[0]["v"] = 16
    for record in pack[1:]:
        record.update({"n": "pulse", "v": 60 + record.get("t", 0)})
    decoded = decode(pack)
    assert decoded.quarantined == []
    bt = datetime(2010, 6, 8, 18, 1, 16, 1000, tzinfo=UTC)
    assert [(c.code, c.value, c.measured_at) for c in decoded.candidates] == [
        ("9279-1", 16.0, bt),
        *[("8867-4", 60.0 + t, bt + timedelta(seconds=t)) for t in (-5, -4, -3, -2, -1, 0)],
    ]


# --- names, units, values, times ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "spo2",
        "59408-5",
        "2708-6",
        "urn:dev:mac:0024befffe804ff1:spo2",
        "urn:dev:mac:0024befffe804ff1/59408-5",
        "2001:db8::2/oximeter/spo2",
    ],
)
def test_the_measurement_is_the_last_segment_of_the_name(name: str) -> None:
    assert one([{"n": name, "u": "/", "v": 0.95, "bt": BT}])[:3] == ("59408-5", 95.0, "%")


def test_the_base_name_and_the_name_are_joined() -> None:
    pack = [{"bn": "urn:dev:mac:0024befffe804ff1:", "n": "pulse", "u": "beat/min", "v": 71}]
    assert one(pack)[:2] == ("8867-4", 71.0)


def test_a_name_that_is_only_a_device_address_is_an_unknown_code() -> None:
    decoded = decode([{"n": "urn:dev:mac:0024befffe804ff1", "u": "/", "v": 0.95}])
    assert [q.reason for q in decoded.quarantined] == [Reason.UNKNOWN_CODE]


@pytest.mark.parametrize(
    ("unit", "value", "stored"),
    [
        ("/", 0.93, ("59408-5", 93.0, "%")),
        # RFC 8428 §12.1 Note 2: "%" is a ratio, not a percentage.
        ("%", 0.93, ("59408-5", 93.0, "%")),
    ],
)
def test_spo2_is_a_ratio_in_senml(unit: str, value: float, stored: tuple[str, float, str]) -> None:
    code, got, canonical, _ = one([{"n": "spo2", "u": unit, "v": value}])
    assert (code, canonical) == stored[::2]
    assert got == pytest.approx(stored[1])


def test_a_percentage_sent_as_senml_percent_is_refused_not_misread() -> None:
    decoded = decode([{"n": "spo2", "u": "%", "v": 93}])
    assert [q.reason for q in decoded.quarantined] == [Reason.IMPLAUSIBLE_VALUE]


@pytest.mark.parametrize(
    ("name", "unit", "value", "stored"),
    [
        ("pulse", "beat/min", 72, ("8867-4", 72.0, "/min")),
        ("pulse", "1/min", 72, ("8867-4", 72.0, "/min")),
        ("resp_rate", "1/s", 0.25, ("9279-1", 15.0, "/min")),
        ("sys", "Pa", 17331.9, ("8480-6", 130.0, "mm[Hg]")),
        ("weight", "kg", 81.4, ("29463-7", 81.4, "kg")),
        ("weight", "g", 81400, ("29463-7", 81.4, "kg")),
        ("temp", "Cel", 37.2, ("8310-5", 37.2, "Cel")),
        ("temp", "K", 310.35, ("8310-5", 37.2, "Cel")),
        ("fev1", "l", 2.1, ("20150-9", 2.1, "L")),
        ("fev1", "m3", 0.0021, ("20150-9", 2.1, "L")),
        ("pef", "l/s", 6, ("19935-6", 360.0, "L/min")),
        ("33452-4", "m3/s", 0.006, ("19935-6", 360.0, "L/min")),
    ],
)
def test_senml_units_are_converted_into_catalog_terms(
    name: str, unit: str, value: float, stored: tuple[str, float, str]
) -> None:
    code, got, canonical, _ = one([{"n": name, "u": unit, "v": value}])
    assert (code, canonical) == (stored[0], stored[2])
    assert got == pytest.approx(stored[1], rel=1e-4)


def test_base_unit_and_base_value_apply_to_later_records_until_replaced() -> None:
    pack = [
        {"bn": "cuff:", "bu": "Pa", "bv": 10000, "n": "sys", "v": 7331.9},
        {"n": "dia", "v": 1199.1},
        {"bu": "beat/min", "bv": 0, "n": "pulse", "v": 64},
    ]
    decoded = decode(pack)
    assert [(c.code, round(c.value)) for c in decoded.candidates] == [
        ("8480-6", 130),
        ("8462-4", 84),
        ("8867-4", 64),
    ]


def test_a_time_from_2_to_the_28_on_is_posix_time() -> None:
    assert one([{"n": "spo2", "u": "/", "v": 0.95, "t": RELATIVE_TIME_LIMIT}])[3] == datetime(
        1978, 7, 4, 21, 24, 16, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("record", "ago"), [({}, 0), ({"t": -90}, 90), ({"bt": -3600, "t": 60}, 3540)]
)
def test_a_time_below_2_to_the_28_is_relative_to_the_receive_time(
    record: dict[str, Any], ago: int
) -> None:
    pack = [{"n": "spo2", "u": "/", "v": 0.95, **record}]
    assert one(pack)[3] == NOW - timedelta(seconds=ago)


def test_a_record_ahead_of_the_clock_is_refused_and_its_neighbour_kept() -> None:
    decoded = decode(
        [
            {"bt": NOW.timestamp(), "n": "spo2", "u": "/", "v": 0.95},
            {"n": "pulse", "u": "beat/min", "v": 70, "t": 600},
        ]
    )
    assert [c.code for c in decoded.candidates] == ["59408-5"]
    [entry] = decoded.quarantined
    assert entry.reason is Reason.FUTURE_TIMESTAMP
    assert entry.detail.startswith("records[1]")


def test_a_base_only_record_gives_no_reading() -> None:
    pack = [{"bn": "urn:dev:mac:0024befffe804ff1:", "bu": "/", "bver": 10}, {"n": "spo2", "v": 0.9}]
    assert one(pack)[:2] == ("59408-5", 90.0)


def test_fields_we_do_not_know_are_ignored() -> None:
    assert one([{"n": "spo2", "u": "/", "v": 0.95, "vendor": {"x": 1}, "ut": 60}])[0] == "59408-5"


def test_all_readings_of_a_pack_share_its_msg_id() -> None:
    decoded = decode([{"n": "spo2", "u": "/", "v": 0.95}, {"n": "pulse", "u": "1/min", "v": 70}])
    assert len({c.msg_id for c in decoded.candidates}) == 1


# --- what is refused ------------------------------------------------------------------------

BAD_PACKS = {
    "not JSON": (b"[{not json", Reason.MALFORMED_JSON),
    "not UTF-8": (b"\xff\xfe[]", Reason.MALFORMED_JSON),
    "NaN": (b'[{"n": "spo2", "u": "/", "v": NaN}]', Reason.MALFORMED_JSON),
    "an object, not an array": (b'{"n": "spo2", "u": "/", "v": 0.95}', Reason.INVALID_FIELD),
    "no records": (b"[]", Reason.MISSING_FIELD),
    "only base fields": (b'[{"bn": "urn:dev:mac:1:"}]', Reason.MISSING_FIELD),
    "too many records": (
        json.dumps([{"n": "spo2", "u": "/", "v": 0.95, "t": -i} for i in range(21)]).encode(),
        Reason.TOO_MANY_READINGS,
    ),
    "a newer version": (b'[{"bver": 11, "n": "spo2", "u": "/", "v": 0.95}]', Reason.INVALID_FIELD),
    "mixed versions": (
        b'[{"bver": 10, "n": "spo2", "u": "/", "v": 0.95}, {"bver": 5, "n": "spo2", "v": 0.9}]',
        Reason.INVALID_FIELD,
    ),
    "a must-understand field": (
        b'[{"n": "spo2", "u": "/", "v": 0.95, "calibrated_": true}]',
        Reason.INVALID_FIELD,
    ),
    "a base name that is not a string": (
        b'[{"bn": 7, "n": "spo2", "u": "/", "v": 0.95}]',
        Reason.INVALID_FIELD,
    ),
    "a base time as text": (
        b'[{"bt": "1795329000", "n": "spo2", "u": "/", "v": 0.95}]',
        Reason.INVALID_FIELD,
    ),
}


@pytest.mark.parametrize("case", BAD_PACKS)
def test_a_bad_pack_is_quarantined_whole_with_its_reason(case: str) -> None:
    payload, reason = BAD_PACKS[case]
    decoded = decode(payload)
    assert decoded.candidates == []
    [entry] = decoded.quarantined
    assert entry.reason is reason
    assert entry.payload == payload
    assert entry.device_id == "ox-1"
    assert entry.detail


BAD_RECORDS = {
    "unknown code": ({"n": "glucose", "u": "/", "v": 5.5}, Reason.UNKNOWN_CODE),
    "unit not in the SenML registry": ({"n": "sys", "u": "mm[Hg]", "v": 130}, Reason.UNKNOWN_UNIT),
    "humidity, not saturation": ({"n": "spo2", "u": "%RH", "v": 95}, Reason.UNKNOWN_UNIT),
    "unit of another quantity": ({"n": "weight", "u": "Pa", "v": 80}, Reason.UNKNOWN_UNIT),
    "no unit": ({"n": "spo2", "v": 0.95}, Reason.MISSING_FIELD),
    "no value": ({"n": "spo2", "u": "/"}, Reason.MISSING_FIELD),
    "value as text": ({"n": "spo2", "u": "/", "v": "0.95"}, Reason.INVALID_FIELD),
    "value true": ({"n": "spo2", "u": "/", "v": True}, Reason.INVALID_FIELD),
    "string value": ({"n": "spo2", "vs": "95 %"}, Reason.INVALID_FIELD),
    "boolean value": ({"n": "spo2", "vb": True}, Reason.INVALID_FIELD),
    "data value": ({"n": "spo2", "vd": "aGkgCg"}, Reason.INVALID_FIELD),
    "a sum": ({"n": "pulse", "u": "beat/min", "v": 70, "s": 4200}, Reason.INVALID_FIELD),
    "a name with a space": ({"n": "sp o2", "u": "/", "v": 0.95}, Reason.INVALID_FIELD),
    "a time as text": ({"n": "spo2", "u": "/", "v": 0.95, "t": "now"}, Reason.INVALID_FIELD),
    "a time out of range": ({"n": "spo2", "u": "/", "v": 0.95, "t": 1e300}, Reason.INVALID_FIELD),
    "implausible": ({"n": "pulse", "u": "beat/min", "v": 400}, Reason.IMPLAUSIBLE_VALUE),
    "not an object": ("spo2=0.95", Reason.INVALID_FIELD),
}


@pytest.mark.parametrize("case", BAD_RECORDS)
def test_a_bad_record_is_quarantined_and_its_good_neighbour_kept(case: str) -> None:
    bad, reason = BAD_RECORDS[case]
    decoded = decode([{"n": "pulse", "u": "beat/min", "v": 71}, bad])
    assert [c.code for c in decoded.candidates] == ["8867-4"]
    [entry] = decoded.quarantined
    assert entry.reason is reason
    assert entry.detail.startswith("records[1]")
    assert json.loads(entry.payload) == bad
    assert entry.msg_id == decoded.candidates[0].msg_id


def test_a_base_sum_makes_every_later_record_a_sum() -> None:
    decoded = decode([{"bs": 0, "n": "pulse", "u": "beat/min", "v": 71}])
    assert [q.reason for q in decoded.quarantined] == [Reason.INVALID_FIELD]
    assert decoded.quarantined[0].detail == "records[0].bs: sums are not measurements"


def test_a_systolic_not_above_the_diastolic_quarantines_both() -> None:
    decoded = decode([{"n": "sys", "u": "Pa", "v": 10000}, {"n": "dia", "u": "Pa", "v": 12000}])
    assert decoded.candidates == []
    assert {q.reason for q in decoded.quarantined} == {Reason.INCONSISTENT_BLOOD_PRESSURE}


# --- msg_id ---------------------------------------------------------------------------------


def test_a_redelivered_pack_has_the_same_msg_id_however_it_is_spelled() -> None:
    pack = [{"bt": BT, "n": "spo2", "u": "/", "v": 0.95}]
    spelled_again = b'[ {"v": 0.95, "u": "/", "n": "spo2", "bt": %r} ]' % BT
    [first] = decode(pack).candidates
    [again] = decode(spelled_again).candidates
    assert first.msg_id == again.msg_id


def test_packs_with_other_content_have_other_msg_ids() -> None:
    [first] = decode([{"bt": BT, "n": "spo2", "u": "/", "v": 0.95}]).candidates
    [other] = decode([{"bt": BT, "n": "spo2", "u": "/", "v": 0.96}]).candidates
    assert first.msg_id != other.msg_id


def test_a_relative_pack_received_later_is_another_measurement() -> None:
    pack = [{"n": "spo2", "u": "/", "v": 0.95}]
    later = replace(ENVELOPE, received_at=NOW + timedelta(hours=1))
    [first] = decode(pack).candidates
    [again] = decode(pack).candidates
    [next_hour] = decode(pack, later).candidates
    assert first.msg_id == again.msg_id
    assert next_hour.msg_id != first.msg_id
    assert next_hour.measured_at - first.measured_at == timedelta(hours=1)
