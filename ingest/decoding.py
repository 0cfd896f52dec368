"""What every payload format shares: the envelope, the checks a reading must pass, the result.

A codec (native JSON, SenML, FHIR) only finds the code, value, unit and time of each reading in
its format; `check_reading` applies the catalog, the unit conversion, the plausible range and
the clock, so every format is held to exactly the same rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from uuid import UUID

import msgspec
from pydantic import ValidationError

from core import catalog
from ingest.quarantine import QuarantineEntry, QuarantineReason


@dataclass(slots=True)
class Envelope:
    """Where a payload came from: what the transport, not the payload, tells us."""

    channel: str
    topic: str | None
    device_id: str
    received_at: datetime
    max_future: timedelta
    max_readings: int = 100
    """More readings than this in one message is a misbehaving sender: the message is refused."""
    max_age: timedelta | None = None
    """How long ago a reading may have been measured; None accepts any age."""


@dataclass(slots=True)
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

    def add(self, outcome: Candidate | QuarantineEntry) -> None:
        if isinstance(outcome, Candidate):
            self.candidates.append(outcome)
        else:
            self.quarantined.append(outcome)


Decoder = Callable[[bytes, Envelope], Decoded]


def total(decode: Decoder) -> Decoder:
    """Make a decoder total: a bug in it quarantines the message instead of losing it."""

    @wraps(decode)
    def guarded(payload: bytes, envelope: Envelope) -> Decoded:
        try:
            decoded = decode(payload, envelope)
        except Exception as error:  # noqa: BLE001  # a decoder bug must not lose the message
            decoded = Decoded()
            decoded.add(
                refusal(envelope, payload, None, QuarantineReason.DECODE_ERROR, repr(error))
            )
            return decoded
        refuse_inverted_blood_pressure(decoded, envelope)
        return decoded

    return guarded


def too_far_ahead(measured_at: datetime, envelope: Envelope) -> str | None:
    """Why a time is refused as being in the future, or None when it is acceptable."""
    if measured_at <= envelope.received_at + envelope.max_future:
        return None
    return (
        f"measured_at {measured_at.isoformat()} is ahead of the receive time "
        f"{envelope.received_at.isoformat()} by more than {envelope.max_future}"
    )


def too_old(measured_at: datetime, envelope: Envelope) -> str | None:
    """Why a time is refused as being too long ago, or None when it is acceptable."""
    if envelope.max_age is None or envelope.received_at - measured_at <= envelope.max_age:
        return None
    return (
        f"measured_at {measured_at.isoformat()} is more than {envelope.max_age} before the "
        f"receive time {envelope.received_at.isoformat()}"
    )


def too_many_readings(count: int, envelope: Envelope) -> str | None:
    """Why a message with `count` readings is refused, or None when it is within the limit."""
    if count <= envelope.max_readings:
        return None
    return f"{count} readings in one message; at most {envelope.max_readings} are accepted"


def check_reading(
    *,
    code: str,
    value: float,
    unit: str,
    measured_at: datetime,
    msg_id: UUID,
    envelope: Envelope,
    raw: bytes | Any,
    where: str,
) -> Candidate | QuarantineEntry:
    """A candidate reading in catalog terms, or the reason it is refused.

    `raw` is what quarantine keeps of a refused reading: its bytes, or a JSON value that is
    serialised only if it is refused (most readings are not, and this is the hot path).
    """
    accepted = catalog.accepted(code, unit)
    if accepted is not None:
        canonical = accepted.to_canonical(value)
        measurement = accepted.measurement
        if (
            measurement.plausible_min <= canonical <= measurement.plausible_max
            and measured_at <= envelope.received_at + envelope.max_future
            and (envelope.max_age is None or envelope.received_at - measured_at <= envelope.max_age)
        ):
            return Candidate(
                device_id=envelope.device_id,
                msg_id=msg_id,
                measured_at=measured_at,
                code=measurement.code,
                value=canonical,
                unit=measurement.unit,
                received_at=envelope.received_at,
            )
    kept = raw if isinstance(raw, bytes) else as_json_bytes(raw)
    reason, detail = _why_refused(code, value, unit, measured_at, envelope)
    return refusal(envelope, kept, msg_id, reason, f"{where}: {detail}")


def _why_refused(
    code: str, value: float, unit: str, measured_at: datetime, envelope: Envelope
) -> tuple[QuarantineReason, str]:
    """The first check a reading fails, in the order the checks are documented."""
    measurement = catalog.lookup(code)
    if measurement is None:
        return QuarantineReason.UNKNOWN_CODE, f"code {code!r} is not in the catalog"
    accepted = catalog.accepted(code, unit)
    if accepted is None:
        return (
            QuarantineReason.UNKNOWN_UNIT,
            f"unit {unit!r} is not accepted for {measurement.alias}",
        )
    canonical = accepted.to_canonical(value)
    if not measurement.is_plausible(canonical):
        return (
            QuarantineReason.IMPLAUSIBLE_VALUE,
            f"{measurement.alias} {canonical:g} {measurement.unit} is outside "
            f"{measurement.plausible_min:g}..{measurement.plausible_max:g}",
        )
    future = too_far_ahead(measured_at, envelope)
    if future is not None:
        return QuarantineReason.FUTURE_TIMESTAMP, future
    old = too_old(measured_at, envelope)
    assert old is not None, "a reading that passed every check was refused"
    return QuarantineReason.TOO_OLD, old


_SYSTOLIC = catalog.BY_CODE["sys"].code
_DIASTOLIC = catalog.BY_CODE["dia"].code


def refuse_inverted_blood_pressure(decoded: Decoded, envelope: Envelope) -> None:
    """A systolic at or below the diastolic of the same cuff reading is a device or typing error.

    Readings of one cuff measurement share device and time, whatever the format carried them.
    """
    if len(decoded.candidates) < 2:
        return
    systolic = {c.measured_at: c for c in decoded.candidates if c.code == _SYSTOLIC}
    diastolic = {c.measured_at: c for c in decoded.candidates if c.code == _DIASTOLIC}
    inverted = [
        (systolic[at], diastolic[at])
        for at in systolic.keys() & diastolic.keys()
        if systolic[at].value <= diastolic[at].value
    ]
    for pair in inverted:
        decoded.candidates = [c for c in decoded.candidates if c not in pair]
        for candidate in pair:
            raw = {"code": candidate.code, "value": candidate.value, "unit": candidate.unit}
            decoded.add(
                refusal(
                    envelope,
                    as_json_bytes(raw),
                    candidate.msg_id,
                    QuarantineReason.INCONSISTENT_BLOOD_PRESSURE,
                    f"systolic {pair[0].value:g} is not above diastolic {pair[1].value:g}",
                )
            )


def as_storage_error(decoded: Decoded, error: Exception, *, channel: str) -> Decoded:
    """The same message with its readings moved to quarantine, because the database refused it."""
    detail = str(error).replace("\x00", "")[:500]
    refused = [
        QuarantineEntry(
            received_at=c.received_at,
            channel=channel,
            topic=None,
            device_id=c.device_id,
            msg_id=c.msg_id,
            reason=QuarantineReason.STORAGE_ERROR,
            detail=detail,
            payload=as_json_bytes(
                {"code": c.code, "value": c.value, "unit": c.unit, "measured_at": c.measured_at}
            ),
        )
        for c in decoded.candidates
    ]
    return Decoded(quarantined=[*refused, *decoded.quarantined])


class MalformedJsonError(ValueError):
    """The payload is not UTF-8 JSON as RFC 8259 defines it."""


_JSON = msgspec.json.Decoder()


def load_json(payload: bytes) -> Any:
    """The JSON value of a payload, as the stdlib would give it, at msgspec's speed.

    NaN and Infinity, which Python would accept, are refused. msgspec refuses numbers beyond
    a float's range outright, where the stdlib gives big integers and infinities that the
    codecs refuse per reading (`as_number`); those rare payloads are read by the stdlib so the
    refusal keeps its reading-scoped reason.
    """
    try:
        return _JSON.decode(payload)
    except msgspec.DecodeError as error:
        raise MalformedJsonError(f"not valid JSON: {error}") from error
    except RecursionError as error:
        raise MalformedJsonError("not usable JSON: nested too deeply") from error
    except msgspec.ValidationError:
        return _load_json_slowly(payload)


def _refuse_constant(name: str) -> Any:
    raise MalformedJsonError(f"not valid JSON: {name} is not a JSON number")


def _load_json_slowly(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except MalformedJsonError:
        raise
    except (ValueError, RecursionError) as error:
        # Numbers of thousands of digits, or nesting deeper than the parser's stack.
        raise MalformedJsonError(f"not usable JSON: {error!r}") from error


def as_number(item: object) -> float | None:
    """A JSON number as a finite float, or None (strings, booleans and overflow are not)."""
    if isinstance(item, bool) or not isinstance(item, int | float):
        return None
    try:
        number = float(item)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def canonical_json(item: Any) -> str:
    """One spelling of a JSON value, so the same content always hashes to the same id."""
    return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def explain(error: ValidationError) -> tuple[QuarantineReason, str]:
    """The quarantine reason and detail for the first problem pydantic found."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    if first["type"] == "json_invalid":
        return QuarantineReason.MALFORMED_JSON, f"not valid JSON: {first['msg']}"
    if first["type"] == "missing":
        return QuarantineReason.MISSING_FIELD, f"{where}: required field is missing"
    return QuarantineReason.INVALID_FIELD, f"{where}: {first['msg']}"


def as_json_bytes(item: Any) -> bytes:
    return json.dumps(item, default=str).encode()


def refusal(
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
