"""Why a message or reading was refused, as machine-readable reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class QuarantineReason(StrEnum):
    INVALID_TOPIC = "invalid_topic"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_CODE = "unknown_code"
    UNKNOWN_UNIT = "unknown_unit"
    IMPLAUSIBLE_VALUE = "implausible_value"
    INCONSISTENT_BLOOD_PRESSURE = "inconsistent_blood_pressure"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    """Measured longer ago than HEIMVAKT_INGEST_MAX_AGE_DAYS: a replay, or a clock gone wrong."""
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_NOT_ASSIGNED = "device_not_assigned"
    DEVICE_REASSIGNED = "device_reassigned"
    """Measured during an earlier assignment of a device that is now another patient's: it may
    be a late upload, or the new holder writing into the old record; a nurse decides."""
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    """A message with a msg_id the device has used before, for other content (the first wins)."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_READINGS = "too_many_readings"
    RATE_LIMITED = "rate_limited"
    """The device sent more messages than its rate limit allows; the rest keep flowing."""
    DECODE_ERROR = "decode_error"
    """Our decoder failed on this input: a bug to fix, never a reason to lose the message."""
    STORAGE_ERROR = "storage_error"
    """Storing this one item failed (the database refused it, or the code run on it raised)
    although the rest of its batch was stored."""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    received_at: datetime
    channel: str
    topic: str | None
    device_id: str | None
    msg_id: UUID | None
    reason: QuarantineReason
    detail: str
    payload: bytes
