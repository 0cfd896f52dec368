"""The measurement catalog: every measurement Heimvakt understands, as data.

One frozen record per measurement, keyed by its LOINC code. Ingest, rules, dashboard and the
FHIR facade all read this table; nothing else in the code base knows codes, units or ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class UnitConversion:
    """A linear conversion into the canonical unit: canonical = value * factor + offset."""

    unit: str
    factor: float
    offset: float = 0.0

    def to_canonical(self, value: float) -> float:
        return value * self.factor + self.offset


@dataclass(frozen=True, slots=True)
class Measurement:
    code: str
    """The LOINC code readings are stored under."""
    alias: str
    unit: str
    """The canonical UCUM unit readings are stored in."""
    names: MappingProxyType[str, str]
    """Display name per language (nb, nn, en)."""
    plausible_min: float
    plausible_max: float
    """A value outside [min, max] (canonical unit) is physiologically impossible: quarantined."""
    alternative_units: tuple[UnitConversion, ...] = ()
    alternative_codes: tuple[str, ...] = ()
    """Other LOINC codes devices send for the same quantity."""
    decimals: int = 0
    """How many decimals a person needs to see."""
    hysteresis_margin: float = 0.0
    """How far inside a limit a value must be to count as clearly normal (canonical unit): a
    value hovering at a limit then cannot open and resolve an alert over and over
    (alerts/library/threshold.py)."""

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names["en"]

    def is_plausible(self, value: float) -> bool:
        return self.plausible_min <= value <= self.plausible_max


def _names(nb: str, nn: str, en: str) -> MappingProxyType[str, str]:
    return MappingProxyType({"nb": nb, "nn": nn, "en": en})


# Plausibility ranges follow the product team's engineering judgement (clinical reference §2.4).
MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        code="59408-5",
        alias="spo2",
        unit="%",
        names=_names("Oksygenmetning", "Oksygenmetting", "Oxygen saturation"),
        plausible_min=50,
        plausible_max=100,
        hysteresis_margin=1.0,
        alternative_codes=("2708-6",),
    ),
    Measurement(
        code="8867-4",
        alias="pulse",
        unit="/min",
        names=_names("Puls", "Puls", "Pulse"),
        plausible_min=20,
        plausible_max=250,
        hysteresis_margin=5.0,
        alternative_codes=("8889-8",),
    ),
    Measurement(
        code="8480-6",
        alias="sys",
        unit="mm[Hg]",
        names=_names("Systolisk blodtrykk", "Systolisk blodtrykk", "Systolic blood pressure"),
        plausible_min=50,
        plausible_max=280,
        hysteresis_margin=5.0,
        alternative_units=(UnitConversion("kPa", 7.500615758),),
    ),
    Measurement(
        code="8462-4",
        alias="dia",
        unit="mm[Hg]",
        names=_names("Diastolisk blodtrykk", "Diastolisk blodtrykk", "Diastolic blood pressure"),
        plausible_min=20,
        plausible_max=180,
        hysteresis_margin=5.0,
        alternative_units=(UnitConversion("kPa", 7.500615758),),
    ),
    Measurement(
        code="29463-7",
        alias="weight",
        unit="kg",
        names=_names("Vekt", "Vekt", "Body weight"),
        plausible_min=20,
        plausible_max=350,
        hysteresis_margin=0.5,
        alternative_units=(UnitConversion("[lb_av]", 0.45359237), UnitConversion("g", 0.001)),
        decimals=1,
    ),
    Measurement(
        code="8310-5",
        alias="temp",
        unit="Cel",
        names=_names("Kroppstemperatur", "Kroppstemperatur", "Body temperature"),
        plausible_min=30.0,
        plausible_max=43.0,
        hysteresis_margin=0.2,
        alternative_units=(UnitConversion("[degF]", 5 / 9, -32 * 5 / 9),),
        decimals=1,
    ),
    Measurement(
        code="9279-1",
        alias="resp_rate",
        unit="/min",
        names=_names("Respirasjonsfrekvens", "Respirasjonsfrekvens", "Respiratory rate"),
        plausible_min=3,
        plausible_max=70,
        hysteresis_margin=1.0,
    ),
    Measurement(
        code="20150-9",
        alias="fev1",
        unit="L",
        names=_names("FEV1", "FEV1", "FEV1"),
        plausible_min=0.1,
        plausible_max=7.0,
        hysteresis_margin=0.1,
        alternative_units=(UnitConversion("mL", 0.001),),
        decimals=2,
    ),
    # 19935-6 is "Maximum expiratory gas flow ... by Peak flow meter": the method a patient uses
    # at home. 33452-4 is the same quantity without a method (spirometers send it), so it is
    # accepted as an alternative and stored under 19935-6.
    Measurement(
        code="19935-6",
        alias="pef",
        unit="L/min",
        names=_names("Toppstrøm (PEF)", "Toppstraum (PEF)", "Peak expiratory flow"),
        plausible_min=30,
        plausible_max=900,
        hysteresis_margin=10.0,
        alternative_units=(UnitConversion("L/s", 60.0),),
        alternative_codes=("33452-4",),
    ),
)

BY_CODE: MappingProxyType[str, Measurement] = MappingProxyType(
    {code: m for m in MEASUREMENTS for code in (m.code, m.alias, *m.alternative_codes)}
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """What a reading sent with one code and one unit is stored as, resolved ahead of time.

    Ingest checks every reading against the catalog; resolving each accepted (code, unit) pair
    once makes that check one dict lookup and two comparisons instead of a walk through codes,
    units and conversions per reading.
    """

    measurement: Measurement
    conversion: UnitConversion | None
    """None when the unit is the canonical one: the value is stored as sent."""

    def to_canonical(self, value: float) -> float:
        conversion = self.conversion
        return value if conversion is None else value * conversion.factor + conversion.offset


ACCEPTED: MappingProxyType[tuple[str, str], Accepted] = MappingProxyType(
    {
        (code, conversion.unit if conversion else m.unit): Accepted(m, conversion)
        for m in MEASUREMENTS
        for code in (m.code, m.alias, *m.alternative_codes)
        for conversion in (None, *m.alternative_units)
    }
)
"""Every (code or alias, UCUM unit without annotations) a reading may be sent in."""

_UCUM_ANNOTATION = re.compile(r"\{[^{}]*\}")


class UnknownUnitError(ValueError):
    pass


def lookup(code: str) -> Measurement | None:
    """The measurement for a LOINC code (primary or alternative) or a catalog alias."""
    return BY_CODE.get(code)


def accepted(code: str, unit: str) -> Accepted | None:
    """How a reading in `code` and `unit` is stored; None if either is not accepted.

    UCUM annotations in curly braces carry no meaning for conversion (``{beats}/min`` is
    ``/min``), so they are dropped before the unit is matched; a unit as catalogued, the
    common case, is found by one lookup.
    """
    found = ACCEPTED.get((code, unit))
    if found is None:
        bare = _UCUM_ANNOTATION.sub("", unit).strip() or "1"
        if bare != unit:
            found = ACCEPTED.get((code, bare))
    return found


def to_canonical(measurement: Measurement, value: float, unit: str) -> float:
    """The value in the measurement's canonical unit; `UnknownUnitError` if it has none."""
    found = accepted(measurement.code, unit)
    if found is None:
        raise UnknownUnitError(f"unit {unit!r} is not accepted for {measurement.alias}")
    return found.to_canonical(value)
