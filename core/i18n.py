"""Translations of user-facing text: gettext catalogs read with Babel when first needed.

The catalogs under ``core/locale/<language>/LC_MESSAGES/heimvakt.po`` are read as they are, so
editing a translation needs no compile step. Message ids are the English text: a message a
catalog lacks (or has not translated yet) is shown in English rather than not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from babel.messages.pofile import read_po

LANGUAGES: Final = ("nb", "nn", "en")
DEFAULT_LANGUAGE: Final = "nb"
DOMAIN: Final = "heimvakt"
LOCALE_DIR: Final = Path(__file__).parent / "locale"

# Each language is named in itself, so a reader finds theirs whatever language is showing.
LANGUAGE_NAMES: Final = MappingProxyType({"nb": "Bokmål", "nn": "Nynorsk", "en": "English"})


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def negotiate(language: str | None) -> str:
    """The supported language asked for, or the default for anything else (absent, misspelt)."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class Translator:
    """One language's messages. Plural messages are keyed by their English singular."""

    language: str
    messages: Mapping[str, str]
    plurals: Mapping[str, tuple[str, ...]]

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        # Every shipped language (nb, nn, en) has two forms: one for exactly 1, one for the rest.
        # tests/core/test_i18n.py checks each catalog's Plural-Forms header says so.
        index = 0 if n == 1 else 1
        forms = self.plurals.get(singular, ())
        if index < len(forms) and forms[index]:
            return forms[index]
        return singular if index == 0 else plural

    __call__ = gettext


def translator(language: str) -> Translator:
    """The translator for `language`; the default language's for an unsupported one."""
    return _load(negotiate(language))


@functools.cache
def _load(language: str) -> Translator:
    """Read one catalog, once per process and on first use rather than at import.

    Only called with a supported language, so the cache holds at most one entry per language.
    """
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN, ignore_obsolete=True)
    messages: dict[str, str] = {}
    plurals: dict[str, tuple[str, ...]] = {}
    for message in catalog:
        # A fuzzy entry is a guess awaiting review: like msgfmt, leave it out.
        if not message.id or message.fuzzy:
            continue
        # read_po gives a plural entry a tuple of ids and a sequence of strings, any other a str
        # and a str; Babel's types allow every mix, so both are checked.
        if isinstance(message.id, tuple) and isinstance(message.string, tuple | list):
            plurals[message.id[0]] = tuple(message.string)
        elif isinstance(message.id, str) and isinstance(message.string, str):
            messages[message.id] = message.string
    return Translator(
        language=language,
        messages=MappingProxyType(messages),
        plurals=MappingProxyType(plurals),
    )


def translations(language: str) -> Callable[[str], str]:
    """The gettext function for `language`, conventionally bound to ``_``."""
    return translator(language).gettext
