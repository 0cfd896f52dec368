"""The native JSON payload (docs/mqtt.md), decoded into candidate readings or quarantine entries.

Decoding is pure and total: every input yields readings, quarantine entries, or both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core import catalog
from ingest.quarantine import QuarantineEntry, QuarantineReason


class WireReading(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: Annotated[str, Field(min_length=1, max_length=32, strict=True)]
    value: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    unit: Annotated[str, Field(min_length=1, max_length=32, strict=True)]


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    msg_id: UUID
    measured_at: AwareDatetime
    readings: Annotated[list[Any], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A reading that passed every check that needs no database."""

    device_id: str
    msg_id: UUID
    measured_at: datetime
    code: str
    value: float
    unit: str
    received_at: datetime


@dataclass(slots=True)
class Decoded:
    candidates: list[Candidate] = field(default_factory=list)
    quarantined: list[QuarantineEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Where a payload came from: what the transport, not the payload, tells us."""

    channel: str
    topic: str | None
    device_id: str
    received_at: datetime
    max_future: timedelta


_SYSTOLIC = catalog.lookup("sys")
_DIASTOLIC = catalog.lookup("dia")


def decode_native(payload: bytes, envelope: Envelope) -> Decoded:
    try:
        return _decode(payload, envelope)
    except Exception as error:  # noqa: BLE001  # a decoder bug must not lose the message
        decoded = Decoded()
        decoded.quarantined.append(
            _entry(envelope, payload, None, QuarantineReason.DECODE_ERROR, repr(error))
        )
        return decoded


def _decode(payload: bytes, envelope: Envelope) -> Decoded:
    decoded = Decoded()
    try:
        message = WireMessage.model_validate_json(payload)
    except ValidationError as error:
        reason, detail = _explain(error)
        decoded.quarantined.append(_entry(envelope, payload, None, reason, detail))
        return decoded

    if message.measured_at > envelope.received_at + envelope.max_future:
        decoded.quarantined.append(
            _entry(
                envelope,
                payload,
                message.msg_id,
                QuarantineReason.FUTURE_TIMESTAMP,
                f"measured_at {message.measured_at.isoformat()} is ahead of the receive time "
                f"{envelope.received_at.isoformat()} by more than {envelope.max_future}",
            )
        )
        return decoded

    for index, item in enumerate(message.readings):
        outcome = _decode_reading(item, index, message, envelope)
        if isinstance(outcome, Candidate):
            decoded.candidates.append(outcome)
        else:
            decoded.quarantined.append(outcome)
    _refuse_inverted_blood_pressure(decoded, envelope)
    return decoded


def _decode_reading(
    item: Any, index: int, message: WireMessage, envelope: Envelope
) -> Candidate | QuarantineEntry:
    raw = _reading_bytes(item)

    def refuse(reason: QuarantineReason, detail: str) -> QuarantineEntry:
        return _entry(envelope, raw, message.msg_id, reason, f"readings[{index}]: {detail}")

    try:
        reading = WireReading.model_validate(item)
    except ValidationError as error:
        reason, detail = _explain(error)
        return refuse(reason, detail)
    measurement = catalog.lookup(reading.code)
    if measurement is None:
        return refuse(QuarantineReason.UNKNOWN_CODE, f"code {reading.code!r} is not in the catalog")
    try:
        value = catalog.to_canonical(measurement, reading.value, reading.unit)
    except catalog.UnknownUnitError as error:
        return refuse(QuarantineReason.UNKNOWN_UNIT, str(error))
    if not measurement.is_plausible(value):
        return refuse(
            QuarantineReason.IMPLAUSIBLE_VALUE,
            f"{measurement.alias} {value:g} {measurement.unit} is outside "
            f"{measurement.plausible_min:g}..{measurement.plausible_max:g}",
        )
    return Candidate(
        device_id=envelope.device_id,
        msg_id=message.msg_id,
        measured_at=message.measured_at,
        code=measurement.code,
        value=value,
        unit=measurement.unit,
        received_at=envelope.received_at,
    )


def _refuse_inverted_blood_pressure(decoded: Decoded, envelope: Envelope) -> None:
    """A systolic at or below the diastolic of the same cuff reading is a device or typing error."""
    assert _SYSTOLIC is not None
    assert _DIASTOLIC is not None
    systolic = [c for c in decoded.candidates if c.code == _SYSTOLIC.code]
    diastolic = [c for c in decoded.candidates if c.code == _DIASTOLIC.code]
    if len(systolic) != 1 or len(diastolic) != 1 or systolic[0].value > diastolic[0].value:
        return
    pair = (systolic[0], diastolic[0])
    decoded.candidates = [c for c in decoded.candidates if c not in pair]
    for candidate in pair:
        decoded.quarantined.append(
            _entry(
                envelope,
                _reading_bytes(
                    {"code": candidate.code, "value": candidate.value, "unit": candidate.unit}
                ),
                candidate.msg_id,
                QuarantineReason.INCONSISTENT_BLOOD_PRESSURE,
                f"systolic {pair[0].value:g} is not above diastolic {pair[1].value:g}",
            )
        )


def _explain(error: ValidationError) -> tuple[QuarantineReason, str]:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    if first["type"] == "json_invalid":
        return QuarantineReason.MALFORMED_JSON, f"not valid JSON: {first['msg']}"
    if first["type"] == "missing":
        return QuarantineReason.MISSING_FIELD, f"{where}: required field is missing"
    return QuarantineReason.INVALID_FIELD, f"{where}: {first['msg']}"


def _reading_bytes(item: Any) -> bytes:
    return json.dumps(item, default=str).encode()


def _entry(
    envelope: Envelope,
    payload: bytes,
    msg_id: UUID | None,
    reason: QuarantineReason,
    detail: str,
) -> QuarantineEntry:
    return QuarantineEntry(
        received_at=envelope.received_at,
        channel=envelope.channel,
        topic=envelope.topic,
        device_id=envelope.device_id,
        msg_id=msg_id,
        reason=reason,
        detail=detail,
        payload=payload,
    )
