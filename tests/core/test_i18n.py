"""Translations: every message the dashboard shows, and every reminder to a patient, exists in
Bokmål, Nynorsk and English."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from core.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    catalog_path,
    translations,
    translator,
)

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = [*sorted((ROOT / "dashboard").rglob("*.py")), ROOT / "alerts" / "reminders.py"]
"""The dashboard, and the reminders that go to patients in their language."""

Msgid = str | tuple[str, str]


def used_messages() -> tuple[set[Msgid], list[str]]:
    """Messages the translated modules pass to their translator ``t`` (``t(...)``,
    ``t.ngettext(...)``), and the places where one is not a string literal, which no catalog
    could hold."""
    found: set[Msgid] = set()
    not_literal: list[str] = []
    for path in TRANSLATED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if isinstance(function, ast.Name) and function.id == "t":
                arguments = node.args[:1]
            elif isinstance(function, ast.Attribute) and function.attr == "ngettext":
                arguments = node.args[:2]
            else:
                continue
            values = [
                a.value
                for a in arguments
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            if len(values) != len(arguments):
                not_literal.append(f"{path.name}:{node.lineno}")
                continue
            found.add(values[0] if len(values) == 1 else (values[0], values[1]))
    return found, not_literal


def catalog(language: str) -> Catalog:
    with catalog_path(language).open("rb") as po:
        return read_po(po, locale=language)


def translations_of(message: Message) -> tuple[str, ...]:
    """A singular message's one translation, or a plural message's one per plural form."""
    if isinstance(message.string, str):
        return (message.string,)
    return tuple(message.string or ())


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_dashboard_translates_only_string_literals() -> None:
    used, not_literal = used_messages()
    assert len(used) > 30, "the scan no longer finds the dashboard's messages"
    assert not_literal == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_the_dashboard_uses_is_translated(language: str) -> None:
    used, _ = used_messages()
    messages = {m.id: m for m in catalog(language) if m.id}

    missing = sorted(str(msgid) for msgid in used if msgid not in messages)
    untranslated = sorted(
        str(msgid)
        for msgid in used
        if msgid in messages
        and (
            messages[msgid].fuzzy
            or not all(translations_of(messages[msgid]))
            or (isinstance(msgid, tuple) and len(translations_of(messages[msgid])) != 2)
        )
    )
    assert missing == []
    assert untranslated == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_catalog_holds_no_message_the_dashboard_no_longer_uses(language: str) -> None:
    used, _ = used_messages()
    stale = sorted(str(m.id) for m in catalog(language) if m.id and m.id not in used)
    assert stale == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_translation_keeps_the_placeholders_of_its_message(language: str) -> None:
    for message in catalog(language):
        if not message.id:
            continue
        ids = (message.id,) if isinstance(message.id, str) else tuple(message.id)
        strings = translations_of(message)
        expected = placeholders(ids[-1])
        assert [placeholders(s) for s in strings] == [expected] * len(strings), message.id


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalog_has_one_form_for_exactly_one_and_one_for_the_rest(language: str) -> None:
    # core.i18n.Translator.ngettext relies on this instead of evaluating the expression.
    assert catalog(language).plural_forms == "nplurals=2; plural=(n != 1);"


@pytest.mark.parametrize("language", ["nb", "nn"])
def test_norwegian_catalogs_are_norwegian_not_copies_of_the_english(language: str) -> None:
    messages = [m for m in catalog(language) if m.id and isinstance(m.id, str)]
    same_as_english = [m.id for m in messages if m.string == m.id]
    # Words the languages share ("Status") or pure patterns may stay; prose may not.
    assert len(same_as_english) <= 2, same_as_english


def test_bokmal_and_nynorsk_differ_where_the_written_standards_do() -> None:
    nb, nn = translator("nb"), translator("nn")

    assert (nb("COPD"), nn("COPD")) == ("KOLS", "KOLS")
    assert (nb("heart failure"), nn("heart failure")) == ("hjertesvikt", "hjartesvikt")
    assert (nb("Patient not found"), nn("Patient not found")) == (
        "Fant ikke pasienten",
        "Fann ikkje pasienten",
    )
    assert translator("en")("heart failure") == "heart failure"


def test_an_unknown_or_missing_language_falls_back_to_bokmal() -> None:
    assert DEFAULT_LANGUAGE == "nb"
    assert translator("de").language == "nb"
    assert translator("").language == "nb"
    assert translations("xx")("Worklist") == "Arbeidsliste"


def test_a_message_no_catalog_has_falls_back_to_its_english_text() -> None:
    assert translations("nb")("A message nobody translated") == "A message nobody translated"
    nn = translator("nn")
    assert nn.ngettext("{n} cat", "{n} cats", 1) == "{n} cat"
    assert nn.ngettext("{n} cat", "{n} cats", 4) == "{n} cats"


def test_plural_messages_choose_the_form_by_count() -> None:
    nb = translator("nb")
    assert nb.ngettext("{hours} hour ago", "{hours} hours ago", 1) == "for {hours} time siden"
    assert nb.ngettext("{hours} hour ago", "{hours} hours ago", 0) == "for {hours} timer siden"
    assert nb.ngettext("{hours} hour ago", "{hours} hours ago", 5) == "for {hours} timer siden"
    assert translator("nn").ngettext("{days} day ago", "{days} days ago", 2) == (
        "for {days} dagar sidan"
    )


def test_a_catalog_is_read_once_and_shared() -> None:
    assert translator("nn") is translator("nn")
    assert translator("de") is translator("nb")
