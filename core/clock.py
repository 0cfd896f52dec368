"""The one clock. Code that needs "now" takes a `Clock`, so tests can move time by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol
from zoneinfo import ZoneInfo

# Readings are stored in UTC; nurses work in Norwegian local time, summer time included. The
# dashboard and the terminal's log lines both show this zone, so their times can be compared.
DISPLAY_TIMEZONE: Final = ZoneInfo("Europe/Oslo")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class ManualClock:
    """A clock that stands still until told to move."""

    current: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta
