"""The rule library is complete: every rule is described in three languages, traceable to a
requirement and a hazard, and tested. A rule with an evaluator and no tests fails the suite."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import tests.alerts.library as library_tests
from alerts.library.catalogue import RULES, RULES_BY_ID, Rule


def rules_with_tests() -> set[str]:
    covered: set[str] = set()
    for module in pkgutil.iter_modules(library_tests.__path__):
        loaded = importlib.import_module(f"{library_tests.__name__}.{module.name}")
        covered |= getattr(loaded, "RULES_TESTED", set())
    return covered


def test_every_rule_with_an_evaluator_has_tests() -> None:
    untested = {rule.id for rule in RULES if rule.evaluate is not None} - rules_with_tests()
    assert not untested, f"rules without tests: {sorted(untested)}"


def test_rule_ids_are_unique() -> None:
    assert len(RULES_BY_ID) == len(RULES)


@pytest.mark.parametrize("rule", RULES, ids=[rule.id for rule in RULES])
def test_every_rule_is_described_and_traceable(rule: Rule) -> None:
    assert rule.version >= 1
    for language in ("nb", "nn", "en"):
        assert rule.title[language].strip()
        assert rule.explanation[language].strip()
    for field in ("source", "tuning", "requirement", "hazard"):
        assert getattr(rule, field).strip(), field
    assert rule.requirement.startswith("REQ-")
    assert rule.hazard.startswith("HAZ-")


def test_sweep_rules_are_the_adherence_and_technical_ones() -> None:
    swept = {rule.id for rule in RULES if rule.evaluate is None}
    assert swept == {
        "missing_measurement",
        "device_silent",
        "battery_low",
        "gateway_backlog",
        "notification_undeliverable",
        "rule_failed",
    }


def test_docs_rules_md_lists_every_rule_at_its_version(repo_root: Path) -> None:
    text = (repo_root / "docs" / "rules.md").read_text()
    for rule in RULES:
        assert f"### `{rule.id}` (version {rule.version})" in text, rule.id
