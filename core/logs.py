"""Log lines for a person at a terminal: each one says when, in which zone.

Python's default `asctime` is the machine's local time without an offset (UTC on most servers
and containers), while the dashboard shows Norwegian time: two clocks a nurse cannot match.
Here every line carries the display zone's time with its offset, e.g.
``2025-03-30 14:05:09+02:00``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from core.clock import DISPLAY_TIMEZONE

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ZonedFormatter(logging.Formatter):
    """`asctime` in the display zone, with its UTC offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, DISPLAY_TIMEZONE)
        return moment.isoformat(sep=" ", timespec="seconds")


def configure_logging(*, verbose: bool) -> None:
    """WARNING and above by default, INFO with `verbose`; to standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(ZonedFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
