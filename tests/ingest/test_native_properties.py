"""Properties of the native decoder over generated messages, good and bad.

Each generated message knows what it should become: which readings are stored (in catalog
terms) and why each of the others is refused. The decoder must agree exactly, and its fast
path, whenever it answers, must answer as the precise path does.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core import catalog
from ingest import native
from ingest.decoding import Envelope
from ingest.native import decode_native
from ingest.quarantine import QuarantineReason as Reason

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENVELOPE = Envelope(
    channel="mqtt",
    topic="heimvakt/v1/devices/ox-1/readings",
    device_id="ox-1",
    received_at=NOW,
    max_future=timedelta(minutes=5),
    max_readings=6,
)
# The diastolic is left out: a systolic not above it refuses both, a rule with its own tests.
MEASUREMENTS = [m for m in catalog.MEASUREMENTS if m.alias != "dia"]
UNITS = sorted(
    {u for m in catalog.MEASUREMENTS for u in (m.unit, *(c.unit for c in m.alternative_units))}
)


@dataclass(frozen=True)
class Expected:
    """A reading as sent, and what it must become: a stored (code, value, unit) or a reason."""

    sent: object
    stored: tuple[str, float, str] | None = None
    reason: Reason | None = None


@st.composite
def good_readings(draw: st.DrawFn) -> Expected:
    m = draw(st.sampled_from(MEASUREMENTS))
    code = draw(st.sampled_from([m.code, m.alias, *m.alternative_codes]))
    conversion = draw(st.sampled_from([None, *m.alternative_units]))
    margin = (m.plausible_max - m.plausible_min) / 100
    canonical = draw(st.floats(m.plausible_min + margin, m.plausible_max - margin))
    if conversion is None:
        unit, value = m.unit, canonical
    else:
        unit = conversion.unit
        value = (canonical - conversion.offset) / conversion.factor
    unit = draw(st.sampled_from([unit, "{as sent}" + unit]))
    sent = {"code": code, "value": value, "unit": unit, **draw(extra_fields)}
    return Expected(sent, stored=(m.code, canonical, m.unit))


@st.composite
def bad_readings(draw: st.DrawFn) -> Expected:
    good = draw(good_readings())
    assert isinstance(good.sent, dict)
    assert good.stored is not None
    m = catalog.lookup(good.stored[0])
    assert m is not None
    reading = dict(good.sent)
    kind = draw(
        st.sampled_from(
            ["code", "unit", "implausible", "bad value", "bad text", "missing", "not an object"]
        )
    )
    if kind == "code":
        reading["code"] = draw(st.from_regex(r"[0-9]{3,6}-[0-9]", fullmatch=True))
        reason = Reason.UNKNOWN_CODE
    elif kind == "unit":
        accepted = {m.unit, *(c.unit for c in m.alternative_units)}
        reading["unit"] = draw(st.sampled_from([*(set(UNITS) - accepted), "1", "mmol/L"]))
        reason = Reason.UNKNOWN_UNIT
    elif kind == "implausible":
        reading["code"], reading["unit"] = m.code, m.unit
        reading["value"] = draw(
            st.one_of(
                st.floats(max_value=m.plausible_min, exclude_max=True, allow_infinity=False),
                st.floats(min_value=m.plausible_max, exclude_min=True, allow_infinity=False),
            )
        )
        reason = Reason.IMPLAUSIBLE_VALUE
    elif kind == "bad value":
        reading["value"] = draw(st.sampled_from(["93", True, None, [], {}, 10**400]))
        reason = Reason.INVALID_FIELD
    elif kind == "bad text":
        label = draw(st.sampled_from(["code", "unit"]))
        reading[label] = draw(st.sampled_from(["", "x" * 33, 93, None]))
        reason = Reason.INVALID_FIELD
    elif kind == "missing":
        del reading[draw(st.sampled_from(["code", "value", "unit"]))]
        reason = Reason.MISSING_FIELD
    else:
        reading = draw(st.sampled_from(["spo2=93", 93, None, [good.sent]]))
        reason = Reason.INVALID_FIELD
    return Expected(reading, reason=reason)


extra_fields = st.dictionaries(
    st.sampled_from(["vendor", "firmware", "note"]), st.one_of(st.text(max_size=8), st.integers())
)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-7, minutes=-30))]
)
measured_times = st.builds(
    lambda at, tz: at.replace(tzinfo=UTC).astimezone(tz),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 11, 22, 8, 4)),
    offsets,
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, list[Expected], datetime, Reason | None]:
    """A payload, its readings' fates, its time, and the reason if the message is refused whole."""
    readings = draw(st.lists(st.one_of(good_readings(), bad_readings()), min_size=1, max_size=6))
    at = draw(measured_times)
    body: dict[str, Any] = {
        "msg_id": str(draw(st.uuids())),
        "measured_at": at.isoformat(),
        "readings": [r.sent for r in readings],
        **draw(extra_fields),
    }
    defect = draw(
        st.sampled_from([None] * 6 + ["missing", "msg_id", "time", "readings", "many", "future"])
    )
    reason = None
    if defect == "missing":
        del body[draw(st.sampled_from(["msg_id", "measured_at", "readings"]))]
        reason = Reason.MISSING_FIELD
    elif defect == "msg_id":
        body["msg_id"] = draw(st.sampled_from(["abc", "", 42, None, str(uuid.uuid4())[:-1]]))
        reason = Reason.INVALID_FIELD
    elif defect == "time":
        naive, unix = at.replace(tzinfo=None).isoformat(), at.timestamp()
        body["measured_at"] = draw(st.sampled_from([naive, at.date().isoformat(), unix, int(unix)]))
        reason = Reason.INVALID_FIELD
    elif defect == "readings":
        body["readings"] = draw(st.sampled_from([[], {}, "spo2=93", None]))
        reason = Reason.INVALID_FIELD
    elif defect == "many":
        body["readings"] = body["readings"] * (ENVELOPE.max_readings + 1)
        reason = Reason.TOO_MANY_READINGS
    elif defect == "future":
        ahead = draw(st.timedeltas(timedelta(minutes=5, microseconds=1), timedelta(days=400)))
        body["measured_at"] = (NOW + ahead).isoformat()
        reason = Reason.FUTURE_TIMESTAMP
    fields = draw(st.permutations(list(body.items())))
    return json.dumps(dict(fields)).encode(), readings, at, reason


@settings(max_examples=400)
@given(messages())
def test_every_message_becomes_exactly_the_readings_and_refusals_it_should(
    message: tuple[bytes, list[Expected], datetime, Reason | None],
) -> None:
    payload, readings, at, refused_whole = message
    decoded = decode_native(payload, ENVELOPE)

    if refused_whole is not None:
        assert decoded.candidates == []
        [entry] = decoded.quarantined
        assert (entry.reason, entry.payload) == (refused_whole, payload)
        return
    stored = [r.stored for r in readings if r.stored is not None]
    assert [(c.code, c.unit) for c in decoded.candidates] == [(s[0], s[2]) for s in stored]
    for candidate, (_, value, _) in zip(decoded.candidates, stored, strict=True):
        assert abs(candidate.value - value) <= 1e-9 * max(1.0, abs(value))
        assert candidate.measured_at == at
    refused = [(i, r.reason) for i, r in enumerate(readings) if r.reason is not None]
    assert [q.reason for q in decoded.quarantined] == [reason for _, reason in refused]
    for entry, (index, _) in zip(decoded.quarantined, refused, strict=True):
        assert entry.detail.startswith(f"readings[{index}]: ")
        assert json.loads(entry.payload) == readings[index].sent


@settings(max_examples=400)
@given(messages(), st.sampled_from([b"", b" ", b"]", b"\xff", b'"\\ud800"']), st.integers(0, 400))
def test_the_fast_path_answers_as_the_precise_path_does(
    message: tuple[bytes, list[Expected], datetime, Reason | None], junk: bytes, at: int
) -> None:
    payload = message[0]
    for variant in (payload, payload[:at] + junk + payload[at:]):
        fast = native._decode_fast(variant, ENVELOPE)
        if fast is not None:
            assert fast == native._decode_precisely(variant, ENVELOPE)
