"""Log lines a person reads carry their time zone (issue 17: UTC without a zone in the terminal
while the dashboard showed Oslo time)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from datetime import UTC, datetime

from core.logs import LOG_FORMAT, ZonedFormatter


def record_at(moment: datetime) -> logging.LogRecord:
    record = logging.LogRecord("heimvakt.test", logging.WARNING, __file__, 1, "hei", None, None)
    record.created = moment.timestamp()
    return record


def test_a_log_line_shows_oslo_time_with_its_offset_winter_and_summer() -> None:
    formatter = ZonedFormatter(LOG_FORMAT)
    winter = formatter.format(record_at(datetime(2026, 1, 15, 12, 0, 5, tzinfo=UTC)))
    summer = formatter.format(record_at(datetime(2026, 7, 15, 12, 0, 5, tzinfo=UTC)))
    assert winter == "2026-01-15 13:00:05+01:00 WARNING heimvakt.test: hei"
    assert summer == "2026-07-15 14:00:05+02:00 WARNING heimvakt.test: hei"


def test_the_command_logs_with_the_zone() -> None:
    """`heimvakt -v` configures logging through core.logs, whatever the machine's zone."""
    code = (
        "import logging, sys; from heimvakt.cli import app;"
        " sys.argv = ['heimvakt', '-v', 'retention', '--help'];"
        " app(standalone_mode=False); logging.getLogger('heimvakt').info('hello')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0[12]:00 INFO heimvakt: hello", line)
