"""The native JSON payload (docs/mqtt.md), decoded into candidate readings or quarantine entries.

Every reading of every device passes through here, so the common case, a well-formed message
whose readings all pass, is decoded by msgspec straight from bytes into typed structs and
checked against the catalog's precomputed table: a few microseconds per message. Anything
else takes the precise path, which decodes field by field with the very same types to say
which field is at fault and to refuse only the readings that are bad. Both paths give the
same verdict for every payload (tests/ingest/test_native_properties.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from ingest.decoding import (
    Candidate,
    Decoded,
    Envelope,
    check_reading,
    refusal,
    too_far_ahead,
    too_many_readings,
    too_old,
    total,
)
from ingest.quarantine import QuarantineEntry, QuarantineReason

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
_AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
"""RFC 3339 with a time zone offset; a Unix time (a JSON number) is not accepted."""


class WireReading(msgspec.Struct, gc=False):
    """One reading as sent. msgspec is strict: no number in a string, no boolean as a number,
    and a float must be finite (a JSON number beyond a float's range is refused)."""

    code: _Text
    value: float
    unit: _Text


class WireMessage(msgspec.Struct, gc=False):
    msg_id: UUID
    measured_at: _AwareTime
    readings: Annotated[list[WireReading], msgspec.Meta(min_length=1)]


_MESSAGE = msgspec.json.Decoder(WireMessage)
_SYNTAX = msgspec.json.Decoder(msgspec.Raw)
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_MESSAGE_FIELDS: dict[str, msgspec.json.Decoder[Any]] = {
    "msg_id": msgspec.json.Decoder(UUID),
    "measured_at": msgspec.json.Decoder(_AwareTime),
    "readings": msgspec.json.Decoder(Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1)]),
}
_READING_FIELDS: dict[str, msgspec.json.Decoder[Any]] = {
    field.name: msgspec.json.Decoder(field.type) for field in msgspec.structs.fields(WireReading)
}


@total
def decode_native(payload: bytes, envelope: Envelope) -> Decoded:
    return _decode_fast(payload, envelope) or _decode_precisely(payload, envelope)


def _decode_fast(payload: bytes, envelope: Envelope) -> Decoded | None:
    """The readings of a message that passes every check; None for any other message."""
    # msgspec skips unknown fields without checking their UTF-8; the precise path checks it.
    if not payload.isascii():
        return None
    try:
        message = _MESSAGE.decode(payload)
    except (msgspec.MsgspecError, RecursionError):
        return None
    if len(message.readings) > envelope.max_readings:
        return None
    decoded = Decoded()
    for reading in message.readings:
        outcome = check_reading(
            code=reading.code,
            value=reading.value,
            unit=reading.unit,
            measured_at=message.measured_at,
            msg_id=message.msg_id,
            envelope=envelope,
            raw=b"",  # a refusal sends the whole message down the precise path
            where="",
        )
        if not isinstance(outcome, Candidate):
            return None
        decoded.candidates.append(outcome)
    return decoded


def _decode_precisely(payload: bytes, envelope: Envelope) -> Decoded:
    """Every reading that passes, and every refusal with its reason and where it is."""
    decoded = Decoded()
    fields = _message_fields(payload)
    if isinstance(fields, _Refused):
        decoded.add(refusal(envelope, payload, None, fields.reason, fields.detail))
        return decoded
    msg_id: UUID = fields["msg_id"]
    measured_at: datetime = fields["measured_at"]
    readings: list[msgspec.Raw] = fields["readings"]

    too_many = too_many_readings(len(readings), envelope)
    future = too_far_ahead(measured_at, envelope)
    old = too_old(measured_at, envelope)
    if too_many is not None:
        reason = QuarantineReason.TOO_MANY_READINGS
        decoded.add(refusal(envelope, payload, msg_id, reason, too_many))
    elif future is not None:
        reason = QuarantineReason.FUTURE_TIMESTAMP
        decoded.add(refusal(envelope, payload, msg_id, reason, future))
    elif old is not None:
        decoded.add(refusal(envelope, payload, msg_id, QuarantineReason.TOO_OLD, old))
    else:
        for index, raw in enumerate(readings):
            decoded.add(_reading(raw, f"readings[{index}]", msg_id, measured_at, envelope))
    return decoded


def _message_fields(payload: bytes) -> dict[str, Any] | _Refused:
    try:
        payload.decode("utf-8")
        _SYNTAX.decode(payload)
    except UnicodeDecodeError as error:
        return _Refused(QuarantineReason.MALFORMED_JSON, f"not UTF-8: {error}")
    except msgspec.DecodeError as error:
        return _Refused(QuarantineReason.MALFORMED_JSON, f"not valid JSON: {error}")
    except RecursionError:
        return _Refused(QuarantineReason.MALFORMED_JSON, "not usable JSON: nested too deeply")
    return _fields(payload, _MESSAGE_FIELDS, where="")


def _reading(
    raw: msgspec.Raw, where: str, msg_id: UUID, measured_at: datetime, envelope: Envelope
) -> Candidate | QuarantineEntry:
    reading = _fields(raw, _READING_FIELDS, where=where)
    if isinstance(reading, _Refused):
        return refusal(envelope, bytes(raw), msg_id, reading.reason, reading.detail)
    return check_reading(
        code=reading["code"],
        value=reading["value"],
        unit=reading["unit"],
        measured_at=measured_at,
        msg_id=msg_id,
        envelope=envelope,
        raw=bytes(raw),
        where=where,
    )


class _Refused(msgspec.Struct, frozen=True):
    reason: QuarantineReason
    detail: str


def _fields(
    document: bytes | msgspec.Raw, decoders: dict[str, msgspec.json.Decoder[Any]], *, where: str
) -> dict[str, Any] | _Refused:
    """Each field decoded with its own type, in declaration order, so the first bad field in
    the contract's order is the one named, whatever order the sender wrote them in."""
    try:
        members = _OBJECT.decode(document)
    except msgspec.ValidationError:
        return _Refused(QuarantineReason.INVALID_FIELD, f"{where or 'payload'}: not a JSON object")
    values = {}
    for name, decoder in decoders.items():
        at = f"{where}: {name}" if where else name
        if name not in members:
            return _Refused(QuarantineReason.MISSING_FIELD, f"{at}: required field is missing")
        try:
            values[name] = decoder.decode(members[name])
        except msgspec.ValidationError as error:
            return _Refused(QuarantineReason.INVALID_FIELD, f"{at}: {error}")
    return values
