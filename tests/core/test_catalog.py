"""The measurement catalog: codes, aliases, units, conversions and plausible ranges as data."""

from __future__ import annotations

import pytest

from core import catalog

EXPECTED = {
    "spo2": ("59408-5", "%"),
    "pulse": ("8867-4", "/min"),
    "sys": ("8480-6", "mm[Hg]"),
    "dia": ("8462-4", "mm[Hg]"),
    "weight": ("29463-7", "kg"),
    "temp": ("8310-5", "Cel"),
    "resp_rate": ("9279-1", "/min"),
    "fev1": ("20150-9", "L"),
    "pef": ("19935-6", "L/min"),
}


@pytest.mark.parametrize("alias", EXPECTED)
def test_each_measurement_is_found_by_alias_and_by_loinc_code(alias: str) -> None:
    code, unit = EXPECTED[alias]
    by_alias, by_code = catalog.lookup(alias), catalog.lookup(code)
    assert by_alias is by_code
    assert by_alias is not None
    assert (by_alias.code, by_alias.unit) == (code, unit)


def test_every_measurement_has_names_in_all_three_languages_and_a_sane_range() -> None:
    for measurement in catalog.MEASUREMENTS:
        assert all(measurement.names[lang] for lang in ("nb", "nn", "en"))
        assert measurement.plausible_min < measurement.plausible_max


def test_no_code_or_alias_names_two_measurements() -> None:
    keys = [k for m in catalog.MEASUREMENTS for k in (m.code, m.alias, *m.alternative_codes)]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("alias", "value", "unit", "canonical"),
    [
        ("weight", 100, "[lb_av]", 45.359237),
        ("temp", 212, "[degF]", 100.0),
        ("temp", 32, "[degF]", 0.0),
        ("sys", 1, "kPa", 7.500615758),
        ("fev1", 2500, "mL", 2.5),
        ("pef", 5, "L/s", 300.0),
        ("pulse", 60, "{beats}/min", 60.0),
        ("spo2", 97, "%", 97.0),
    ],
)
def test_accepted_units_convert_to_the_canonical_unit(
    alias: str, value: float, unit: str, canonical: float
) -> None:
    measurement = catalog.lookup(alias)
    assert measurement is not None
    assert catalog.to_canonical(measurement, value, unit) == pytest.approx(canonical)


def test_a_unit_of_another_dimension_is_refused() -> None:
    measurement = catalog.lookup("weight")
    assert measurement is not None
    with pytest.raises(catalog.UnknownUnitError):
        catalog.to_canonical(measurement, 80, "Cel")


@pytest.mark.parametrize(("alias", "inside", "outside"), [("spo2", 50, 49.9), ("temp", 43.0, 43.1)])
def test_plausibility_bounds_are_inclusive(alias: str, inside: float, outside: float) -> None:
    measurement = catalog.lookup(alias)
    assert measurement is not None
    assert measurement.is_plausible(inside)
    assert not measurement.is_plausible(outside)


@pytest.mark.parametrize(
    ("code", "unit", "stored", "canonical"),
    [
        ("spo2", "%", ("59408-5", "%"), 97.0),
        ("2708-6", "%", ("59408-5", "%"), 97.0),
        ("pulse", "{beats}/min", ("8867-4", "/min"), 97.0),
        ("weight", " kg ", ("29463-7", "kg"), 97.0),
        ("8310-5", "[degF]", ("8310-5", "Cel"), 36.111111),
        ("33452-4", "L/s", ("19935-6", "L/min"), 5820.0),
    ],
)
def test_an_accepted_code_and_unit_resolve_to_what_is_stored(
    code: str, unit: str, stored: tuple[str, str], canonical: float
) -> None:
    accepted = catalog.accepted(code, unit)
    assert accepted is not None
    assert (accepted.measurement.code, accepted.measurement.unit) == stored
    assert accepted.to_canonical(97.0) == pytest.approx(canonical)


@pytest.mark.parametrize(("code", "unit"), [("1234-5", "%"), ("spo2", "1"), ("weight", "Cel")])
def test_an_unknown_code_or_a_unit_of_another_quantity_is_not_accepted(
    code: str, unit: str
) -> None:
    assert catalog.accepted(code, unit) is None


def test_the_accepted_table_is_the_catalog_resolved_ahead_of_time() -> None:
    expected = {
        (code, conversion.unit if conversion else m.unit): (m, conversion)
        for m in catalog.MEASUREMENTS
        for code in (m.code, m.alias, *m.alternative_codes)
        for conversion in (None, *m.alternative_units)
    }
    assert {key: (a.measurement, a.conversion) for key, a in catalog.ACCEPTED.items()} == expected
