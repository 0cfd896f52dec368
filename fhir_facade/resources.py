"""Heimvakt's rows as HL7 FHIR R4 resources (JSON), and the ids that name them.

Codes and units come from the measurement catalog (core/catalog.py) and the ingest's mapping
tables (ingest/mappings.py: LOINC, IEEE 11073 MDC, UCUM), the same rows that read FHIR on the
way in, so what Heimvakt accepts and what it shows cannot drift apart. docs/fhir.md lists the
mapping element by element.

Ids. A FHIR id is at most 64 of ``[A-Za-z0-9.-]``. A patient's is its UUID. A device id may
hold ``_`` and ``:``, so a Device is known by the MD5 of its device id (hex, 32 characters; not
a secret, only a name that fits). A reading has no surrogate key: an Observation is known by
``<device hash>.<LOINC code>.<measured_at in microseconds since 1970, base 36>``, which names
exactly one row by the readings' primary key (device, code, measured_at), or for blood
pressure the systolic and diastolic pair of one measurement (the panel code 85354-9).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from alerts.queries import Alert
from care.models import Organisation
from care.people import Staff
from core import catalog
from ingest import mappings

FHIR_JSON: Final = "application/fhir+json"
CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
PROFILE: Final = "http://hl7.org/fhir/StructureDefinition/"
NATIONAL_ID_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.1"
"""The Norwegian national identity number (fødselsnummer), as HL7 Norway's no-basis names it."""
DEVICE_ID_SYSTEM: Final = "urn:heimvakt:device-id"
"""The device id a gateway publishes under (docs/mqtt.md)."""

BP_PANEL: Final = "85354-9"
SYSTOLIC: Final = "8480-6"
DIASTOLIC: Final = "8462-4"
BP_COMPONENTS: Final = (SYSTOLIC, DIASTOLIC)

_PANEL_DISPLAY: Final = "Blood pressure panel with all children optional"
VITAL_SIGNS_PROFILE: Final[dict[str, str]] = {
    "59408-5": "oxygensat",
    "8867-4": "heartrate",
    BP_PANEL: "bp",
    "29463-7": "bodyweight",
    "8310-5": "bodytemp",
    "9279-1": "resprate",
}
"""The R4 core vital-signs profile of each code; PEF and FEV1 are lung function, not vital
signs, and go under category ``exam`` without a profile."""
_OXYGENSAT_CODE: Final = ("2708-6", "Oxygen saturation in Arterial blood")
"""The R4 ``oxygensat`` profile requires LOINC 2708-6 beside the pulse-oximetry code 59408-5."""

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def device_resource_id(device_id: str) -> str:
    """The FHIR id of the Device for `device_id`."""
    return hashlib.md5(device_id.encode(), usedforsecurity=False).hexdigest()


def is_resource_id(text: str) -> bool:
    return _ID.match(text) is not None


def _base36(number: int) -> str:
    digits = []
    while True:
        number, rest = divmod(number, 36)
        digits.append(_DIGITS[rest])
        if number == 0:
            return "".join(reversed(digits))


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ObservationKey:
    """What an Observation id names: a device hash, an Observation code and a moment."""

    device_hash: str
    code: str
    measured_at: datetime

    @property
    def id(self) -> str:
        return f"{self.device_hash}.{self.code}.{_base36(_microseconds(self.measured_at))}"


def parse_observation_id(text: str) -> ObservationKey | None:
    parts = text.split(".")
    if len(parts) != 3 or not is_resource_id(text):
        return None
    device_hash, code, moment = parts
    if observation_code(code) != code or len(device_hash) != 32:
        return None
    try:
        micros = int(moment, 36)
        return ObservationKey(device_hash, code, _EPOCH + timedelta(microseconds=micros))
    except (ValueError, OverflowError):
        return None


def observation_code(reading_code: str) -> str | None:
    """The Observation.code a stored reading appears under: the panel for blood pressure."""
    if reading_code in BP_COMPONENTS or reading_code == BP_PANEL:
        return BP_PANEL
    measurement = catalog.lookup(reading_code)
    return None if measurement is None else measurement.code


def reading_codes(code: str) -> tuple[str, ...]:
    """The stored reading codes behind an Observation.code."""
    return BP_COMPONENTS if code == BP_PANEL else (code,)


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """One Observation's worth of stored readings: one reading, or a blood-pressure pair."""

    patient_id: UUID
    device_id: str
    code: str
    """The Observation code (85354-9 for blood pressure)."""
    measured_at: datetime
    received_at: datetime
    values: dict[str, tuple[float, str]]
    """Reading code -> (value, UCUM unit)."""

    @property
    def key(self) -> ObservationKey:
        return ObservationKey(device_resource_id(self.device_id), self.code, self.measured_at)


def _mdc(code: str) -> mappings.CodeMapping | None:
    """The first MDC row that names this catalog measurement (HL7 PHD: MDC beside LOINC)."""
    for row in mappings.MDC_CODES:
        measurement = catalog.lookup(row.catalog_code)
        if measurement is not None and measurement.code == code:
            return row
    return None


def _concept(code: str) -> dict[str, Any]:
    if code == BP_PANEL:
        return {
            "coding": [{"system": mappings.LOINC, "code": BP_PANEL, "display": _PANEL_DISPLAY}],
            "text": _PANEL_DISPLAY,
        }
    measurement = catalog.lookup(code)
    assert measurement is not None, code
    name = measurement.name("en")
    codings = [{"system": mappings.LOINC, "code": measurement.code, "display": name}]
    if measurement.code == "59408-5":
        codings.append(
            {"system": mappings.LOINC, "code": _OXYGENSAT_CODE[0], "display": _OXYGENSAT_CODE[1]}
        )
    mdc = _mdc(measurement.code)
    if mdc is not None:
        codings.append({"system": mappings.MDC, "code": mdc.code, "display": mdc.display})
    return {"coding": codings, "text": name}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": mappings.UCUM, "code": unit}


def reference(kind: str, resource_id: str | UUID) -> dict[str, str]:
    return {"reference": f"{kind}/{resource_id}"}


def instant(moment: datetime) -> str:
    """A FHIR instant in UTC with microseconds when there are any (never lost on the way)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def observation(row: ObservationRow) -> dict[str, Any]:
    """An R4 vital-signs Observation; blood pressure as the ``bp`` profile's panel."""
    profile = VITAL_SIGNS_PROFILE.get(row.code)
    category = "vital-signs" if profile else "exam"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": row.key.id,
        "meta": {"lastUpdated": instant(row.received_at)},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": CATEGORY_SYSTEM,
                        "code": category,
                        "display": "Vital Signs" if profile else "Exam",
                    }
                ],
            }
        ],
        "code": _concept(row.code),
        "subject": reference("Patient", row.patient_id),
        "effectiveDateTime": instant(row.measured_at),
        "performer": [reference("Patient", row.patient_id)],
        "device": reference("Device", device_resource_id(row.device_id)),
    }
    if profile:
        resource["meta"]["profile"] = [PROFILE + "vitalsigns", PROFILE + profile]
    if row.code == BP_PANEL:
        resource["component"] = [
            {"code": _concept(code), "valueQuantity": _quantity(*row.values[code])}
            for code in BP_COMPONENTS
            if code in row.values
        ]
    else:
        resource["valueQuantity"] = _quantity(*row.values[row.code])
    return resource


@dataclass(frozen=True, slots=True)
class PatientRow:
    """care.models.Patient's columns (care.service.PATIENT_COLUMNS), then what FHIR adds."""

    id: UUID
    display_name: str
    birth_date: date | None
    conditions: list[str]
    preferred_language: str
    responsible_unit: str | None
    national_id: str | None
    phone: str | None


def patient(row: PatientRow) -> dict[str, Any]:
    """An R4 Patient in the shape of HL7 Norway's no-basis-Patient (no profile claimed)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(row.id),
        "active": True,
        "name": [{"text": row.display_name}],
        "communication": [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": row.preferred_language}]
                },
                "preferred": True,
            }
        ],
    }
    if row.national_id is not None:
        resource["identifier"] = [
            {"use": "official", "system": NATIONAL_ID_SYSTEM, "value": row.national_id}
        ]
    if row.birth_date is not None:
        resource["birthDate"] = row.birth_date.isoformat()
    if row.phone is not None:
        resource["telecom"] = [{"system": "phone", "value": row.phone, "use": "mobile"}]
    if row.responsible_unit is not None:
        resource["managingOrganization"] = {"display": row.responsible_unit}
    return resource


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    kind: str
    vendor: str | None
    model: str | None
    patient_id: UUID | None
    """The patient it is assigned to now, if the caller may see them; else None."""


def device(row: DeviceRow) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": device_resource_id(row.id),
        "identifier": [{"system": DEVICE_ID_SYSTEM, "value": row.id}],
        "status": "active",
        "type": {"text": row.kind},
    }
    if row.vendor is not None:
        resource["manufacturer"] = row.vendor
    if row.model is not None:
        resource["deviceName"] = [{"name": row.model, "type": "model-name"}]
    if row.patient_id is not None:
        resource["patient"] = reference("Patient", row.patient_id)
    return resource


FLAG_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/flag-category"
FLAG_PRIORITY: Final = "http://hl7.org/fhir/StructureDefinition/flag-priority"
RULE_SYSTEM: Final = "urn:heimvakt:rule"
"""An alert's rule instance (``threshold:59408-5:low``), as the rule catalogue names it."""
_FLAG_CATEGORIES: Final = {"clinical": "clinical", "adherence": "behavioral", "technical": "admin"}
"""Heimvakt's alert categories as HL7's flag categories: missed measurements are about what the
patient does; a silent device or an undeliverable notification is an administrative matter."""
_FLAG_PRIORITIES: Final = {"red": ("PH", "High priority"), "yellow": ("PM", "Medium priority")}


def flag(alert: Alert) -> dict[str, Any]:
    """An open (unresolved) alert as a Flag on the patient's record, with its priority."""
    priority, priority_name = _FLAG_PRIORITIES.get(alert.severity, ("PL", "Low priority"))
    category = _FLAG_CATEGORIES.get(alert.category, "clinical")
    resource: dict[str, Any] = {
        "resourceType": "Flag",
        "id": str(alert.id),
        "meta": {"lastUpdated": instant(alert.updated_at)},
        "extension": [
            {
                "url": FLAG_PRIORITY,
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/flag-priority-code",
                            "code": priority,
                            "display": priority_name,
                        }
                    ]
                },
            }
        ],
        "status": "inactive" if alert.state == "resolved" else "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": category}]}],
        "code": {"coding": [{"system": RULE_SYSTEM, "code": alert.instance}]},
        "subject": reference("Patient", alert.patient_id),
        "period": {"start": instant(alert.first_measured_at)},
    }
    if alert.resolved_at is not None:
        resource["period"]["end"] = instant(alert.resolved_at)
    return resource


ORGANISATION_NUMBER_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.101"
"""The Norwegian organisation number (Enhetsregisteret), as HL7 Norway's no-basis names it."""
HPR_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.4"
"""The Norwegian health personnel register number (HPR), as HL7 Norway's no-basis names it."""


def organization(unit: Organisation) -> dict[str, Any]:
    """A unit (hospital department, municipal service, GP office) as an Organization."""
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": str(unit.id),
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                        "display": "Healthcare Provider",
                    }
                ],
                "text": str(unit.kind),
            }
        ],
        "name": unit.name,
    }
    if unit.org_number is not None:
        resource["identifier"] = [{"system": ORGANISATION_NUMBER_SYSTEM, "value": unit.org_number}]
    return resource


def practitioner(person: Staff) -> dict[str, Any]:
    """A staff member as a Practitioner, known by the HPR number where there is one."""
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": str(person.id),
        "active": True,
        "name": [{"text": person.display_name}],
    }
    if person.hpr_number is not None:
        resource["identifier"] = [{"system": HPR_SYSTEM, "value": person.hpr_number}]
    return resource


def outcome(code: str, diagnostics: str, *, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue (R4 IssueType `code`)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def searchset(
    base: str,
    matches: Sequence[dict[str, Any]],
    includes: Iterable[dict[str, Any]] = (),
    *,
    self_url: str,
    next_url: str | None,
) -> dict[str, Any]:
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})

    def entry(resource: dict[str, Any], mode: str) -> dict[str, Any]:
        url = f"{base}/{resource['resourceType']}/{resource['id']}"
        return {"fullUrl": url, "resource": resource, "search": {"mode": mode}}

    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            *(entry(r, "match") for r in matches),
            *(entry(r, "include") for r in includes),
        ],
    }
