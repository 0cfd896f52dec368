"""SenML JSON packs (RFC 8428), decoded into candidate readings or quarantine entries.

A pack is resolved the way RFC 8428 §4.6 resolves records (base name, time, unit and value
carried forward; a time below 2**28 is relative to "now", which is the receive time), then
each record is held to the same rules as a native reading by `check_reading`.

Which measurement a record is: its resolved name (base name + name) ends in a LOINC code or a
catalog alias, after the last ':' or '/' (``urn:dev:mac:0024befffe804ff1:spo2``,
``urn:dev:mac:0024befffe804ff1/59408-5``). The rest of the name is the sender's business: the
device is the one the topic names. Units are SenML units (`ingest.mappings.SENML`); only numeric
values ("v") are measurements, so string, boolean and data values and sums are refused.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core import catalog
from ingest import mappings
from ingest.decoding import (
    Candidate,
    Decoded,
    Envelope,
    MalformedJsonError,
    as_json_bytes,
    as_number,
    canonical_json,
    check_reading,
    load_json,
    refusal,
    too_many_readings,
    total,
)
from ingest.quarantine import QuarantineEntry, QuarantineReason

RELATIVE_TIME_LIMIT = 2**28
"""RFC 8428 §4.5.3: a time below this is seconds relative to now; at or above, POSIX time."""
VERSION = 10
"""The SenML version RFC 8428 defines; a pack of a later version must not be used (§4.4)."""

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:heimvakt:ingest:senml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:./_-]*$")
"""RFC 8428 §4.5.1: the characters a resolved name may have, and how it must start."""
_NAME_SEPARATOR = re.compile(r"[:/]")
_BASE_LABELS: dict[str, type] = {"bn": str, "bt": float, "bu": str, "bv": float, "bs": float}
_REGULAR_LABELS: dict[str, type] = {"n": str, "u": str, "v": float, "t": float, "ut": float}
_OTHER_VALUES = ("vs", "vb", "vd")
_REGULAR = frozenset({*_REGULAR_LABELS, *_OTHER_VALUES, "s"})


@dataclass(frozen=True, slots=True)
class _Base:
    """The base values in force at a record (RFC 8428 §4.1): they apply until replaced."""

    name: str = ""
    time: float = 0.0
    unit: str | None = None
    value: float = 0.0
    has_sum: bool = False

    def updated(self, record: dict[str, Any]) -> _Base:
        base = self
        if "bn" in record:
            base = replace(base, name=record["bn"])
        if "bt" in record:
            base = replace(base, time=float(record["bt"]))
        if "bu" in record:
            base = replace(base, unit=record["bu"])
        if "bv" in record:
            base = replace(base, value=float(record["bv"]))
        if "bs" in record:
            base = replace(base, has_sum=True)
        return base


@dataclass(frozen=True, slots=True)
class _Record:
    """A resolved record (RFC 8428 §4.6): what it measured, in what, and when."""

    code: str
    unit: str
    value: float
    measured_at: datetime
    relative: bool


class _Refused(Exception):
    """A record or pack that cannot become readings, and why."""

    def __init__(self, reason: QuarantineReason, detail: str, label: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.label = label
        """The SenML label at fault, if one is."""

    def at(self, where: str) -> str:
        return f"{where}.{self.label}: {self.detail}" if self.label else f"{where}: {self.detail}"


_INVALID = QuarantineReason.INVALID_FIELD
_MISSING = QuarantineReason.MISSING_FIELD


@total
def decode_senml(payload: bytes, envelope: Envelope) -> Decoded:
    decoded = Decoded()
    try:
        pack = _pack(payload, envelope)
    except _Refused as refused:
        decoded.add(refusal(envelope, payload, None, refused.reason, refused.detail))
        return decoded

    resolved: list[_Record | _Refused | None] = []
    base = _Base()
    for record in pack:
        if isinstance(record, dict):
            base = base.updated(record)
        try:
            resolved.append(_resolve(record, base, envelope))
        except _Refused as refused:
            resolved.append(refused)
    if all(outcome is None for outcome in resolved):
        detail = "no record has a name, unit or value"
        decoded.add(refusal(envelope, payload, None, _MISSING, detail))
        return decoded

    msg_id = _msg_id(pack, resolved, envelope)
    for index, (record, outcome) in enumerate(zip(pack, resolved, strict=True)):
        if outcome is not None:
            raw = as_json_bytes(record)
            decoded.add(_reading(outcome, f"records[{index}]", raw, msg_id, envelope))
    return decoded


def _pack(payload: bytes, envelope: Envelope) -> list[Any]:
    """The pack's records, or `_Refused` for what makes the whole pack unusable."""
    try:
        pack = load_json(payload)
    except MalformedJsonError as error:
        raise _Refused(QuarantineReason.MALFORMED_JSON, str(error)) from error
    if not isinstance(pack, list):
        raise _Refused(_INVALID, "a SenML pack is a JSON array of records")
    if not pack:
        raise _Refused(_MISSING, "the pack has no records")
    too_many = too_many_readings(len(pack), envelope)
    if too_many is not None:
        raise _Refused(QuarantineReason.TOO_MANY_READINGS, too_many)
    versions: list[object] = []
    for index, record in enumerate(pack):
        if isinstance(record, dict):
            _check_base_fields(record, f"records[{index}]")
            if "bver" in record:
                versions.append(record["bver"])
    _check_versions(versions)
    return pack


def _check_base_fields(record: dict[str, Any], where: str) -> None:
    """Base fields apply to every later record, so a bad one spoils the pack (RFC 8428 §4.4)."""
    must_understand = sorted(label for label in record if label.endswith("_"))
    if must_understand:
        detail = f"{where}: must-understand field {must_understand[0]!r} is not understood"
        raise _Refused(_INVALID, detail)
    for label, kind in _BASE_LABELS.items():
        if label in record and not _has_type(record[label], kind):
            raise _Refused(_INVALID, f"{where}.{label}: must be a JSON {_type_name(kind)}")


def _check_versions(versions: list[object]) -> None:
    for version in versions:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _Refused(_INVALID, f"bver {version!r} is not a positive integer")
        if version > VERSION:
            detail = f"SenML version {version} is newer than {VERSION}, the version understood"
            raise _Refused(_INVALID, detail)
    if len(set(versions)) > 1:
        raise _Refused(_INVALID, f"all records of a pack have one version, not {versions}")


def _resolve(record: object, base: _Base, envelope: Envelope) -> _Record | None:
    """The record resolved against the base values in force; None for a base-only record."""
    if not isinstance(record, dict):
        raise _Refused(_INVALID, "a record is a JSON object")
    if _REGULAR.isdisjoint(record):
        return None
    value = _value(record, base)
    name = base.name + record.get("n", "")
    if not name:
        raise _Refused(_MISSING, "the record has no name (n or bn)", "n")
    if _NAME.match(name) is None:
        raise _Refused(_INVALID, f"name {name!r} has characters RFC 8428 does not allow", "n")
    unit = record.get("u", base.unit)
    if unit is None:
        raise _Refused(_MISSING, "the record has no unit (u or bu)", "u")
    measured_at, relative = _time(base.time + float(record.get("t", 0.0)), envelope)
    code = _NAME_SEPARATOR.split(name)[-1]
    return _Record(code=code, unit=unit, value=value, measured_at=measured_at, relative=relative)


def _value(record: dict[str, Any], base: _Base) -> float:
    """The record's numeric value (base value + value); other kinds of value are refused."""
    for label, kind in _REGULAR_LABELS.items():
        if label in record and not _has_type(record[label], kind):
            raise _Refused(_INVALID, f"must be a JSON {_type_name(kind)}", label)
    others = [label for label in _OTHER_VALUES if label in record]
    if others:
        raise _Refused(_INVALID, "only numeric values (v) are measurements", others[0])
    if "s" in record or base.has_sum:
        raise _Refused(_INVALID, "sums are not measurements", "s" if "s" in record else "bs")
    if "v" not in record:
        raise _Refused(_MISSING, "the record has no value", "v")
    value = base.value + float(record["v"])
    if not math.isfinite(value):
        raise _Refused(_INVALID, "base value plus value is not a finite number", "v")
    return value


def _time(time: float, envelope: Envelope) -> tuple[datetime, bool]:
    """When the record was measured (RFC 8428 §4.5.3), and whether relative to now."""
    relative = time < RELATIVE_TIME_LIMIT
    try:
        if relative:
            return envelope.received_at + timedelta(seconds=time), True
        return datetime.fromtimestamp(time, UTC), False
    except (OverflowError, OSError, ValueError) as error:
        raise _Refused(_INVALID, f"time {time:g} is out of range", "t") from error


def _reading(
    outcome: _Record | _Refused, where: str, raw: bytes, msg_id: uuid.UUID, envelope: Envelope
) -> Candidate | QuarantineEntry:
    if isinstance(outcome, _Refused):
        return refusal(envelope, raw, msg_id, outcome.reason, outcome.at(where))
    converted = mappings.to_ucum(mappings.SENML_UNITS, outcome.unit, outcome.value)
    if converted is None and catalog.lookup(outcome.code) is not None:
        detail = f"{where}: unit {outcome.unit!r} is not a SenML unit (RFC 8428 §12.1) we map"
        return refusal(envelope, raw, msg_id, QuarantineReason.UNKNOWN_UNIT, detail)
    value, unit = converted or (outcome.value, outcome.unit)
    return check_reading(
        code=outcome.code,
        value=value,
        unit=unit,
        measured_at=outcome.measured_at,
        msg_id=msg_id,
        envelope=envelope,
        raw=raw,
        where=where,
    )


def _msg_id(
    pack: list[Any], resolved: list[_Record | _Refused | None], envelope: Envelope
) -> uuid.UUID:
    """SenML carries no message id: derive one from the device and the pack's content.

    A redelivered pack gets the same id. A pack with relative times also depends on when it
    arrived, as its readings' times do: the same relative pack sent twice is two measurements.
    """
    relative = any(isinstance(r, _Record) and r.relative for r in resolved)
    anchor = envelope.received_at.isoformat() if relative else None
    return uuid.uuid5(_NAMESPACE, canonical_json([envelope.device_id, pack, anchor]))


def _has_type(item: object, kind: type) -> bool:
    if kind is float:
        return as_number(item) is not None
    return isinstance(item, kind)


def _type_name(kind: type) -> str:
    return "number" if kind is float else "string"
