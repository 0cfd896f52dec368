"""What vendor-neutral formats call our measurements and units, as rows of data.

SenML and FHIR name a quantity and its unit in their own vocabularies (LOINC, IEEE 11073 MDC,
the SenML units registry). The codecs look those names up here and hand `check_reading` a
catalog code and a UCUM unit, so the catalog stays the only place that knows measurements,
canonical units and ranges. A new code or unit is a new row, not new code.

Only rows checked against a published source are listed; each table says where it was checked.
A code that is not here is refused as `unknown_code` or `unknown_unit`, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from core import catalog

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MDC = "urn:iso:std:iso:11073:10101"
"""IEEE 11073-10101 nomenclature, the FHIR system for MDC codes (HL7 PHD IG)."""
SENML_UNITS = "urn:ietf:rfc:8428"
"""Heimvakt's key for the SenML Units registry (RFC 8428 §12.1); not a FHIR system."""


@dataclass(frozen=True, slots=True)
class CodeMapping:
    """A code in some system that names a catalog measurement."""

    system: str
    code: str
    catalog_code: str
    """A code `core.catalog.lookup` knows (primary or alternative LOINC code)."""
    display: str
    source: str


@dataclass(frozen=True, slots=True)
class UnitMapping:
    """A unit in some system and the UCUM unit it is, after a linear conversion.

    ucum = value * factor + offset. The catalog then converts UCUM into the canonical unit and
    refuses a unit that does not fit the measurement, so a row never needs to know which
    measurement it is used for.
    """

    system: str
    code: str
    ucum: str
    factor: float = 1.0
    offset: float = 0.0
    source: str = ""

    def to_ucum(self, value: float) -> float:
        return value * self.factor + self.offset


def _loinc_rows() -> tuple[CodeMapping, ...]:
    """LOINC codes come from the catalog itself, so a code added there is accepted here."""
    return tuple(
        CodeMapping(LOINC, code, code, measurement.name("en"), "core/catalog.py")
        for measurement in catalog.MEASUREMENTS
        for code in (measurement.code, *measurement.alternative_codes)
    )


# IEEE 11073-10101 (MDC) observation codes, each checked against an HL7 publication:
#   [R4]  FHIR R4 (4.0.1) examples: observation-example-satO2 (150456 next to LOINC 2708-6 and
#         59408-5), observation-example-spirometry (152584 MDC_FLOW_AWAY_EXP_FORCED_PEAK).
#   [PHD] HL7 Personal Health Device IG (github.com/HL7/phd, input/examples and pagecontent):
#         bundle-example-1 (150456, 149530), compound-numeric-blood-pressure (150021 and 150022
#         next to 8480-6 and 8462-4), temperature-observation (150364 next to 8310-5),
#         ProfileConsumers.md (149546 and 149530 both map to LOINC 8867-4), Nomenclaturecodes.md
#         (147842 MDC_ECG_HEART_RATE).
#   [DK]  HL7 Denmark DK Core IG, ValueSet dk-core-IEEEBasicObservation (github.com/hl7dk/dk-core,
#         input/fsh/valueSets.fsh) with IEEE fully specified names; its examples pair 188736 with
#         29463-7 and 149546 with 8867-4 (input/fsh/DkCoreObservation.fsh).
# Left out for want of such a source: FEV1 (MDC_VOL_AWAY_EXP_FORCED_1S) and site-specific body
# temperatures (oral, ear, axillary): PHD senders add LOINC 8310-5 or 20150-9, which maps.
MDC_CODES: tuple[CodeMapping, ...] = (
    CodeMapping(MDC, "150456", "59408-5", "MDC_PULS_OXIM_SAT_O2", "[R4] [PHD] [DK]"),
    CodeMapping(MDC, "150324", "2708-6", "MDC_SAT_O2_ART", "[DK]"),
    CodeMapping(MDC, "149530", "8889-8", "MDC_PULS_OXIM_PULS_RATE", "[PHD] [DK]"),
    CodeMapping(MDC, "149546", "8867-4", "MDC_PULS_RATE_NON_INV", "[PHD] [DK]"),
    CodeMapping(MDC, "147842", "8867-4", "MDC_ECG_HEART_RATE", "[PHD] [DK]"),
    CodeMapping(MDC, "150021", "8480-6", "MDC_PRESS_BLD_NONINV_SYS", "[PHD] [DK]"),
    CodeMapping(MDC, "150022", "8462-4", "MDC_PRESS_BLD_NONINV_DIA", "[PHD] [DK]"),
    CodeMapping(MDC, "188736", "29463-7", "MDC_MASS_BODY_ACTUAL", "[DK]"),
    CodeMapping(MDC, "150364", "8310-5", "MDC_TEMP_BODY", "[PHD] [DK]"),
    CodeMapping(MDC, "151562", "9279-1", "MDC_RESP_RATE", "[DK]"),
    CodeMapping(MDC, "152584", "33452-4", "MDC_FLOW_AWAY_EXP_FORCED_PEAK", "[R4]"),
)

CODES: tuple[CodeMapping, ...] = (*_loinc_rows(), *MDC_CODES)

# MDC unit codes (partition 4), checked against HL7 publications:
#   262688 MDC_DIM_PERCENT: FHIR R4 devicemetric-example.
#   264864 MDC_DIM_BEAT_PER_MIN: HL7 PoCD IG example DeviceMetric-HeartRateNumericDeviceMetric.
#   266016 MDC_DIM_MMHG: HL7 PHD IG example bp-devicemetric-example.
#   265201 "cL/s": FHIR R4 observation-example-spirometry (unit text only, no reference id).
# The PHD IG requires MDC units to be sent as UCUM where one exists, so these are a fallback.
# Left out, seen only in third-party code: 263875 (kg), 268192 (Cel), 264928 (breaths/min).
MDC_UNITS: tuple[UnitMapping, ...] = (
    UnitMapping(MDC, "262688", "%", source="FHIR R4 devicemetric-example"),
    UnitMapping(MDC, "264864", "/min", source="HL7 PoCD IG HeartRateNumericDeviceMetric"),
    UnitMapping(MDC, "266016", "mm[Hg]", source="HL7 PHD IG bp-devicemetric-example"),
    UnitMapping(MDC, "265201", "L/s", 0.01, source="FHIR R4 observation-example-spirometry"),
)

# SenML units (RFC 8428 §12.1, IANA "SenML Units"). SenML has one unit per quantity, mostly
# unscaled SI, so some rows convert. Note 2 of §12.1: "%" is a deprecated synonym of "/" and is
# NOT a percentage but a ratio (0..1); SpO2 93 % is {"u": "/", "v": 0.93}. Blood pressure has
# no SenML unit but Pa. Secondary units (RFC 8798, e.g. "/100", "hPa") are not allowed in "u" in
# SenML version 10 and are refused like any unregistered unit.
SENML: tuple[UnitMapping, ...] = (
    UnitMapping(SENML_UNITS, "/", "%", 100, source="RFC 8428 §12.1 (ratio)"),
    UnitMapping(SENML_UNITS, "%", "%", 100, source="RFC 8428 §12.1 Note 2 (ratio, deprecated)"),
    UnitMapping(SENML_UNITS, "beat/min", "/min", source="RFC 8428 §12.1 (heart rate)"),
    UnitMapping(SENML_UNITS, "1/min", "/min", source="RFC 8428 §12.1 (event rate)"),
    UnitMapping(SENML_UNITS, "1/s", "/min", 60, source="RFC 8428 §12.1 (event rate)"),
    UnitMapping(SENML_UNITS, "kg", "kg", source="RFC 8428 §12.1"),
    UnitMapping(SENML_UNITS, "g", "g", source="RFC 8428 §12.1 (deprecated)"),
    UnitMapping(SENML_UNITS, "Cel", "Cel", source="RFC 8428 §12.1"),
    UnitMapping(SENML_UNITS, "K", "Cel", 1, -273.15, source="RFC 8428 §12.1"),
    UnitMapping(SENML_UNITS, "Pa", "kPa", 0.001, source="RFC 8428 §12.1"),
    UnitMapping(SENML_UNITS, "l", "L", source="RFC 8428 §12.1 (deprecated)"),
    UnitMapping(SENML_UNITS, "m3", "L", 1000, source="RFC 8428 §12.1"),
    UnitMapping(SENML_UNITS, "l/s", "L/s", source="RFC 8428 §12.1 (deprecated)"),
    UnitMapping(SENML_UNITS, "m3/s", "L/s", 1000, source="RFC 8428 §12.1"),
)

UNITS: tuple[UnitMapping, ...] = (*MDC_UNITS, *SENML)

_CODES: MappingProxyType[tuple[str, str], CodeMapping] = MappingProxyType(
    {(row.system, row.code): row for row in CODES}
)
_UNITS: MappingProxyType[tuple[str, str], UnitMapping] = MappingProxyType(
    {(row.system, row.code): row for row in UNITS}
)


def catalog_code(system: str, code: str) -> str | None:
    """The catalog code for a (system, code) pair, or None when no row maps it."""
    row = _CODES.get((system, code))
    return row.catalog_code if row else None


def to_ucum(system: str, code: str, value: float) -> tuple[float, str] | None:
    """The value and UCUM unit for a unit in `system`, or None when no row maps it.

    UCUM units pass through unchanged: the catalog decides whether one fits the measurement.
    """
    if system == UCUM:
        return value, code
    row = _UNITS.get((system, code))
    return (row.to_ucum(value), row.ucum) if row else None
