"""The CapabilityStatement (``GET /fhir/metadata``): exactly what the facade supports.

The search parameter lists here are the ones the routes accept (fhir_facade.search.only
refuses any other), so the statement and the server cannot disagree.
"""

from __future__ import annotations

from typing import Any, Final

PATIENT_PARAMETERS: Final = ("_id", "identifier", "_count", "_cursor")
FLAG_PARAMETERS: Final = ("patient", "subject")
OBSERVATION_PARAMETERS: Final = (
    "patient",
    "subject",
    "code",
    "category",
    "date",
    "_lastUpdated",
    "_sort",
    "_count",
    "_include",
    "_cursor",
)

_TYPES: Final = {
    "patient": "reference",
    "subject": "reference",
    "code": "token",
    "category": "token",
    "date": "date",
    "_lastUpdated": "date",
    "_id": "token",
    "identifier": "token",
}
_DOCUMENTATION: Final = {
    "date": "Prefixes ge, gt, le and lt; a date without a time of day is a day in Norway.",
    "_lastUpdated": "When Heimvakt received the reading; prefixes ge, gt, le and lt.",
    "code": "LOINC or IEEE 11073 MDC; blood pressure is the panel 85354-9.",
    "category": "vital-signs or exam (PEF, FEV1).",
    "identifier": "The national identity number (urn:oid:2.16.578.1.12.4.1.4.1).",
}


def _search_params(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"name": name, "type": _TYPES[name], **_doc(name)} for name in names if name in _TYPES]


def _doc(name: str) -> dict[str, str]:
    return {"documentation": _DOCUMENTATION[name]} if name in _DOCUMENTATION else {}


def statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-30",
        "kind": "instance",
        "software": {"name": "Heimvakt"},
        "implementation": {"description": "Heimvakt FHIR facade", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Search results page by keyset: follow the next link; _count from 1 to "
                    "1000 (default 100). Unsupported parameters are refused with an "
                    "OperationOutcome. _cursor is opaque and only valid in links this server "
                    "gave."
                ),
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "OpenID Connect bearer tokens (HelseID, ID-porten); SMART "
                    "on FHIR scopes in a token (user/, patient/; v1 and v2) narrow what it "
                    "reads. A gateway posts with its device token.",
                },
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": _search_params(PATIENT_PARAMETERS),
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/"
                                "Patient-everything",
                            }
                        ],
                    },
                    {
                        "type": "Observation",
                        "supportedProfile": [
                            "http://hl7.org/fhir/StructureDefinition/" + name
                            for name in (
                                "vitalsigns",
                                "bp",
                                "heartrate",
                                "oxygensat",
                                "bodyweight",
                                "bodytemp",
                                "resprate",
                            )
                        ],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchInclude": ["Observation:device"],
                        "searchParam": _search_params(OBSERVATION_PARAMETERS),
                    },
                    {"type": "Device", "interaction": [{"code": "read"}]},
                    {
                        "type": "Organization",
                        "documentation": "The units; a search takes no parameters and "
                        "returns them all.",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                    },
                    {"type": "Practitioner", "interaction": [{"code": "read"}]},
                    {
                        "type": "Flag",
                        "documentation": "An alert as a Flag (active while unresolved), with "
                        "the flag-priority extension: high for red, medium for yellow. A "
                        "search returns the active Flags, all on one page.",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": _search_params(FLAG_PARAMETERS),
                    },
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
