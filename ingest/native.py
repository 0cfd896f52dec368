"""The native JSON payload (docs/mqtt.md), decoded into candidate readings or quarantine entries."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ingest.decoding import (
    Decoded,
    Envelope,
    as_json_bytes,
    check_reading,
    explain,
    refusal,
    too_far_ahead,
    too_many_readings,
    total,
)
from ingest.quarantine import QuarantineReason


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


@total
def decode_native(payload: bytes, envelope: Envelope) -> Decoded:
    decoded = Decoded()
    try:
        message = WireMessage.model_validate_json(payload)
    except ValidationError as error:
        reason, detail = explain(error)
        decoded.add(refusal(envelope, payload, None, reason, detail))
        return decoded

    too_many = too_many_readings(len(message.readings), envelope)
    if too_many is not None:
        decoded.add(
            refusal(envelope, payload, message.msg_id, QuarantineReason.TOO_MANY_READINGS, too_many)
        )
        return decoded

    future = too_far_ahead(message.measured_at, envelope)
    if future is not None:
        decoded.add(
            refusal(envelope, payload, message.msg_id, QuarantineReason.FUTURE_TIMESTAMP, future)
        )
        return decoded

    for index, item in enumerate(message.readings):
        where = f"readings[{index}]"
        try:
            reading = WireReading.model_validate(item)
        except ValidationError as error:
            reason, detail = explain(error)
            raw = as_json_bytes(item)
            decoded.add(refusal(envelope, raw, message.msg_id, reason, f"{where}: {detail}"))
            continue
        decoded.add(
            check_reading(
                code=reading.code,
                value=reading.value,
                unit=reading.unit,
                measured_at=message.measured_at,
                msg_id=message.msg_id,
                envelope=envelope,
                raw=item,
                where=where,
            )
        )
    return decoded
