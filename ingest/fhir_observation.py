"""HL7 FHIR R4 Observations (alone or in a Bundle), decoded into candidate readings.

What is read, following the R4 vital-signs profiles and the HL7 Personal Health Device IG:

- ``Observation.status`` final, amended or corrected; anything else is not (or no longer) a
  measurement to act on and is refused as `invalid_field`.
- The time: ``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start``, with a
  time of day and a time zone.
- The measurement: the first coding of ``Observation.code`` (or ``component.code``) that a row
  of `ingest.mappings` maps: LOINC, or IEEE 11073 MDC as PHD gateways send it.
- The value: ``valueQuantity`` in UCUM, or an MDC unit code that `ingest.mappings` maps. An
  Observation without a value whose components have values (the blood-pressure panel 85354-9
  with 8480-6 and 8462-4) gives one reading per component; when it has a value, its components
  only qualify it (PHD supplemental information) and are not read.

``subject`` is ignored: the patient is the one the device (named by the topic or the token) is
assigned to. In a Bundle, resources other than Observation (Patient, Device, ...) are ignored,
and so is an Observation that only groups others (``hasMember``, no value, no component).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

FINAL_STATUSES = frozenset({"final", "amended", "corrected"})
"""Observation.status values whose value is a measurement (R4 ObservationStatus)."""

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:heimvakt:ingest:fhir")
_EFFECTIVE = ("effectiveDateTime", "effectiveInstant", "effectivePeriod")
_INVALID = QuarantineReason.INVALID_FIELD
_MISSING = QuarantineReason.MISSING_FIELD


class _Refused(Exception):
    """A resource, Observation or value that cannot become a reading, and why."""

    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Observation:
    """An Observation to read, where it sits in the message, and its raw JSON for quarantine."""

    resource: dict[str, Any]
    where: str
    raw: bytes
    full_url: object = None


@total
def decode_fhir(payload: bytes, envelope: Envelope) -> Decoded:
    decoded = Decoded()
    try:
        observations, bad_entries = _observations(payload, envelope)
    except _Refused as refused:
        decoded.add(refusal(envelope, payload, None, refused.reason, refused.detail))
        return decoded
    decoded.quarantined.extend(bad_entries)
    for observation in observations:
        for outcome in _readings(observation, envelope):
            decoded.add(outcome)
    if not decoded.candidates and not decoded.quarantined:
        detail = "the message holds no measurement, only Observations that group others"
        decoded.add(refusal(envelope, payload, None, _MISSING, detail))
    return decoded


def _observations(
    payload: bytes, envelope: Envelope
) -> tuple[list[_Observation], list[QuarantineEntry]]:
    """The Observations of the message, and the Bundle entries that hold no resource."""
    try:
        document = load_json(payload)
    except MalformedJsonError as error:
        raise _Refused(QuarantineReason.MALFORMED_JSON, str(error)) from error
    if not isinstance(document, dict):
        raise _Refused(_INVALID, "a FHIR resource is a JSON object")
    kind = document.get("resourceType")
    bad_entries: list[QuarantineEntry] = []
    if kind == "Observation":
        observations = [_Observation(document, "Observation", payload)]
    elif kind == "Bundle":
        observations = _bundle_observations(document, bad_entries, envelope)
    elif kind is None:
        raise _Refused(_MISSING, "resourceType: required field is missing")
    else:
        raise _Refused(_INVALID, f"resourceType {kind!r} is neither Observation nor Bundle")
    too_many = too_many_readings(sum(_reading_slots(o.resource) for o in observations), envelope)
    if too_many is not None:
        raise _Refused(QuarantineReason.TOO_MANY_READINGS, too_many)
    return observations, bad_entries


def _bundle_observations(
    bundle: dict[str, Any], bad_entries: list[QuarantineEntry], envelope: Envelope
) -> list[_Observation]:
    entries = bundle.get("entry")
    if not entries:
        raise _Refused(_MISSING, "Bundle.entry: the Bundle has no entries")
    if not isinstance(entries, list):
        raise _Refused(_INVALID, "Bundle.entry: must be a JSON array")
    observations = []
    for index, entry in enumerate(entries):
        where = f"Bundle.entry[{index}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            detail = f"{where}.resource: an entry holds a resource object"
            bad_entries.append(refusal(envelope, as_json_bytes(entry), None, _INVALID, detail))
        elif resource.get("resourceType") == "Observation":
            raw = as_json_bytes(resource)
            full_url = entry.get("fullUrl")
            observations.append(_Observation(resource, f"{where}.resource", raw, full_url))
    if not observations and not bad_entries:
        raise _Refused(_MISSING, "Bundle.entry: the Bundle holds no Observation")
    return observations


def _reading_slots(resource: dict[str, Any]) -> int:
    """How many readings an Observation can give, for the per-message limit."""
    if _value_labels(resource):
        return 1
    components = resource.get("component")
    return len(components) if isinstance(components, list) else 0


def _readings(
    observation: _Observation, envelope: Envelope
) -> Iterator[Candidate | QuarantineEntry]:
    """The readings of one Observation, or why it (or one of its components) is refused."""
    resource, where = observation.resource, observation.where
    has_value = bool(_value_labels(resource))
    if "hasMember" in resource and not has_value and "component" not in resource:
        return
    msg_id = _msg_id(observation, envelope)
    try:
        _check_status(resource, where)
        measured_at = _effective(resource, where)
        if has_value:
            elements: list[tuple[object, str, bytes]] = [(resource, where, observation.raw)]
        else:
            elements = list(_components(resource, where))
    except _Refused as refused:
        yield refusal(envelope, observation.raw, msg_id, refused.reason, refused.detail)
        return
    for element, at, raw in elements:
        try:
            code, value, unit = _measurement(element, at)
        except _Refused as refused:
            yield refusal(envelope, raw, msg_id, refused.reason, refused.detail)
            continue
        yield check_reading(
            code=code,
            value=value,
            unit=unit,
            measured_at=measured_at,
            msg_id=msg_id,
            envelope=envelope,
            raw=raw,
            where=at,
        )


def _check_status(resource: dict[str, Any], where: str) -> None:
    status = resource.get("status")
    if status is None:
        raise _Refused(_MISSING, f"{where}.status: required field is missing")
    if not isinstance(status, str) or status not in FINAL_STATUSES:
        accepted = ", ".join(sorted(FINAL_STATUSES))
        detail = f"{where}.status {status!r} is not a result to store; accepted: {accepted}"
        raise _Refused(_INVALID, detail)


def _effective(resource: dict[str, Any], where: str) -> datetime:
    """When it was measured: a dateTime, an instant, or the start of a period."""
    for label in ("effectiveDateTime", "effectiveInstant"):
        if label in resource:
            return _instant(resource[label], f"{where}.{label}")
    if "effectivePeriod" in resource:
        period = resource["effectivePeriod"]
        start = period.get("start") if isinstance(period, dict) else None
        if start is None:
            raise _Refused(_MISSING, f"{where}.effectivePeriod.start: required field is missing")
        return _instant(start, f"{where}.effectivePeriod.start")
    accepted = "effectiveDateTime, effectiveInstant or effectivePeriod.start"
    raise _Refused(_MISSING, f"{where}.effective[x]: the time is missing ({accepted})")


def _instant(text: object, where: str) -> datetime:
    """A FHIR dateTime with a time of day and a time zone (a date alone is not a reading time)."""
    if not isinstance(text, str):
        raise _Refused(_INVALID, f"{where}: must be a string")
    if "T" not in text:
        raise _Refused(_INVALID, f"{where}: {text!r} has no time of day and time zone")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise _Refused(_INVALID, f"{where}: {text!r} is not a dateTime") from error
    if value.tzinfo is None:
        raise _Refused(_INVALID, f"{where}: {text!r} has no time zone")
    return value


def _components(resource: dict[str, Any], where: str) -> Iterator[tuple[object, str, bytes]]:
    components = resource.get("component")
    if not components:
        absent = _absent_reason(resource)
        detail = f"{where}: no valueQuantity and no component" + absent
        raise _Refused(_MISSING, detail)
    if not isinstance(components, list):
        raise _Refused(_INVALID, f"{where}.component: must be a JSON array")
    for index, component in enumerate(components):
        at = f"{where}.component[{index}]"
        yield component, at, as_json_bytes(component)


def _measurement(element: object, where: str) -> tuple[str, float, str]:
    """The catalog code, value and UCUM unit of an Observation or a component."""
    if not isinstance(element, dict):
        raise _Refused(_INVALID, f"{where}: must be a JSON object")
    code = _catalog_code(element.get("code"), where)
    quantity = element.get("valueQuantity")
    if quantity is None:
        others = _value_labels(element)
        if others:
            raise _Refused(_INVALID, f"{where}.{others[0]}: a measurement is a valueQuantity")
        detail = f"{where}.valueQuantity: the value is missing" + _absent_reason(element)
        raise _Refused(_MISSING, detail)
    if not isinstance(quantity, dict):
        raise _Refused(_INVALID, f"{where}.valueQuantity: must be a JSON object")
    value = _quantity_value(quantity, f"{where}.valueQuantity")
    system, unit = quantity.get("system"), quantity.get("code")
    if not isinstance(unit, str) or not isinstance(system, str):
        label = "code" if not isinstance(unit, str) else "system"
        raise _Refused(_MISSING, f"{where}.valueQuantity.{label}: the coded unit is missing")
    converted = mappings.to_ucum(system, unit, value)
    if converted is None:
        detail = f"{where}.valueQuantity: unit {system}|{unit} is not one we map"
        raise _Refused(QuarantineReason.UNKNOWN_UNIT, detail)
    return code, *converted


def _catalog_code(concept: object, where: str) -> str:
    """The first coding that names a catalog measurement; the others may be anything."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list) or not codings:
        raise _Refused(_MISSING, f"{where}.code.coding: required field is missing")
    seen = []
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str):
            mapped = mappings.catalog_code(system, code)
            if mapped is not None:
                return mapped
            seen.append(f"{system}|{code}")
    detail = f"{where}.code: no coding names a catalog measurement ({', '.join(seen) or 'none'})"
    raise _Refused(QuarantineReason.UNKNOWN_CODE, detail)


def _quantity_value(quantity: dict[str, Any], where: str) -> float:
    if "value" not in quantity:
        raise _Refused(_MISSING, f"{where}.value: required field is missing")
    value = as_number(quantity["value"])
    if value is None:
        raise _Refused(_INVALID, f"{where}.value: must be a JSON number")
    if "comparator" in quantity:
        detail = f"{where}.comparator: a bound ({quantity['comparator']!r}) is not a measurement"
        raise _Refused(_INVALID, detail)
    return value


def _value_labels(element: dict[str, Any]) -> list[str]:
    return [label for label in element if label.startswith("value")]


def _absent_reason(element: dict[str, Any]) -> str:
    reason = element.get("dataAbsentReason")
    codings = reason.get("coding") if isinstance(reason, dict) else None
    if isinstance(codings, list) and codings and isinstance(codings[0], dict):
        return f" (dataAbsentReason {codings[0].get('code')!r})"
    return ""


def _msg_id(observation: _Observation, envelope: Envelope) -> uuid.UUID:
    """A FHIR message carries no message id: derive one from the device and the Observation.

    The Observation is known by its identifier, else its id, else its Bundle entry's fullUrl,
    else its content; its time is part of the key, as devices often reuse local ids. The same
    Observation redelivered, alone or in a Bundle, gets the same id.
    """
    resource = observation.resource
    identifiers = resource.get("identifier")
    first = identifiers[0] if isinstance(identifiers, list) and identifiers else None
    if isinstance(first, dict) and "value" in first:
        identity: object = ["identifier", first.get("system"), first["value"]]
    elif "id" in resource:
        identity = ["id", resource["id"]]
    elif observation.full_url is not None:
        identity = ["fullUrl", observation.full_url]
    else:
        identity = ["content", resource]
    effective = {label: resource[label] for label in _EFFECTIVE if label in resource}
    return uuid.uuid5(_NAMESPACE, canonical_json([envelope.device_id, identity, effective]))
