"""Values, units and times the way a nurse in Norway reads them, in the chosen language."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from babel import Locale
from babel.dates import format_skeleton
from babel.numbers import format_decimal

from core.catalog import Measurement
from core.clock import DISPLAY_TIMEZONE
from core.i18n import Translator

# English in a Norwegian service keeps the 24-hour clock and day-first dates. Parsed once: Babel
# parses a locale given by name on every call, which was most of formatting a long table.
_BABEL_LOCALES: Final = {
    language: Locale.parse(name)
    for language, name in {"nb": "nb_NO", "nn": "nn_NO", "en": "en_GB"}.items()
}

# UCUM is for machines; these are the symbols printed on the devices and in the patient's notes.
_UNIT_SYMBOLS: Final = {"mm[Hg]": "mmHg", "Cel": "°C"}

NO_VALUE: Final = "\u2013"  # an en dash: nothing measured


def babel_locale(t: Translator) -> Locale:
    return _BABEL_LOCALES[t.language]


def unit_symbol(measurement: Measurement) -> str:
    return _UNIT_SYMBOLS.get(measurement.unit, measurement.unit)


def format_number(value: float, decimals: int, t: Translator) -> str:
    """The value rounded half up, as people round (Babel alone would round half to even)."""
    step = Decimal(1).scaleb(-decimals)
    rounded = Decimal(str(value)).quantize(step, rounding=ROUND_HALF_UP)
    pattern = "0." + "0" * decimals if decimals else "0"
    return format_decimal(rounded, format=pattern, locale=babel_locale(t))


def format_value(measurement: Measurement, value: float | None, t: Translator) -> str:
    """``81,4 kg``: the catalog's decimals and unit, joined so a line never breaks between them."""
    if value is None:
        return NO_VALUE
    return f"{format_number(value, measurement.decimals, t)}\u00a0{unit_symbol(measurement)}"


def format_moment(moment: datetime, t: Translator) -> str:
    locale = babel_locale(t)
    return t("{date} at {time}").format(
        date=format_skeleton("yMMMd", moment, tzinfo=DISPLAY_TIMEZONE, locale=locale),
        time=format_skeleton("Hm", moment, tzinfo=DISPLAY_TIMEZONE, locale=locale),
    )


def format_date(day: date | None, t: Translator) -> str:
    """``5. jan. 2025``: a calendar day, in the locale."""
    if day is None:
        return NO_VALUE
    return format_skeleton("yMMMd", day, locale=babel_locale(t))


def format_relative(moment: datetime, now: datetime, t: Translator) -> str:
    """``12 min ago`` for the last two weeks, the date before that.

    A moment slightly in the future (a device clock running ahead) reads as just now.
    """
    age = now - moment
    if age < timedelta(minutes=1):
        return t("just now")
    if age < timedelta(hours=1):
        return t("{minutes} min ago").format(minutes=age // timedelta(minutes=1))
    if age < timedelta(days=1):
        hours = age // timedelta(hours=1)
        return t.ngettext("{hours} hour ago", "{hours} hours ago", hours).format(hours=hours)
    if age < timedelta(days=14):
        days = age // timedelta(days=1)
        return t.ngettext("{days} day ago", "{days} days ago", days).format(days=days)
    return format_skeleton("yMMMd", moment, tzinfo=DISPLAY_TIMEZONE, locale=babel_locale(t))
