"""The time range the patient page's trend shows: the last 7, 30, 90 or 365 days, or whole
days picked by the nurse. It rides in the page's address (``range=30`` or ``from``/``to``),
so a reload, the refresh and a link pasted to a colleague show the same range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final
from urllib.parse import parse_qs

from core.clock import DISPLAY_TIMEZONE

PRESET_DAYS: Final = (7, 30, 90, 365)
DEFAULT_DAYS: Final = 7
LONGEST_CUSTOM: Final = timedelta(days=2 * 366)
"""A picked range longer than this is not taken: two years is what a page can draw."""
RAW_UP_TO: Final = timedelta(days=31)
"""Up to a month every reading is drawn; longer ranges are drawn from daily summaries."""


@dataclass(frozen=True, slots=True)
class TrendRange:
    days: int | None = DEFAULT_DAYS
    """One of PRESET_DAYS, ending now; None for a picked range of whole days."""
    first: date | None = None
    last: date | None = None
    """The picked range's first and last day in Norwegian time, inclusive."""

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """[since, until) in time: the last `days` days up to now, or the picked days."""
        if self.days is not None or self.first is None or self.last is None:
            return now - timedelta(days=self.days or DEFAULT_DAYS), now
        return start_of(self.first), start_of(self.last + timedelta(days=1))

    def shown_days(self, now: datetime) -> tuple[date, date]:
        """The first and last day (Norwegian time) the range touches: what the picker shows."""
        since, until = self.window(now)
        last = until - timedelta(microseconds=1)
        return since.astimezone(DISPLAY_TIMEZONE).date(), last.astimezone(DISPLAY_TIMEZONE).date()

    def from_summaries(self, now: datetime) -> bool:
        """Whether this range is drawn from daily summaries rather than every reading."""
        since, until = self.window(now)
        return until - since > RAW_UP_TO

    def query(self) -> str:
        """This range's part of an address (without the leading ``&``); empty for the default."""
        if self.days is None:
            return f"from={self.first}&to={self.last}"
        return "" if self.days == DEFAULT_DAYS else f"range={self.days}"


def start_of(day: date) -> datetime:
    """When `day` begins in Norwegian time."""
    return datetime.combine(day, time(), tzinfo=DISPLAY_TIMEZONE)


def trend_range_from_search(search: str | None) -> TrendRange:
    """The range an address names; the last 7 days for anything missing or malformed."""
    query = parse_qs((search or "").removeprefix("?"))
    try:
        first = date.fromisoformat(query["from"][-1])
        last = date.fromisoformat(query["to"][-1])
    except (KeyError, ValueError):
        pass
    else:
        if first <= last and last - first < LONGEST_CUSTOM:
            return TrendRange(days=None, first=first, last=last)
    days = query.get("range", [""])[-1]
    return TrendRange(int(days)) if days in {str(d) for d in PRESET_DAYS} else TrendRange()
