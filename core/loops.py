"""Background loops that must not die quietly: their pulses, and the back-off between failures.

A loop (an ingest writer, the sweeper, the dispatcher) that stops, or stops finishing rounds,
leaves the platform looking healthy while readings pile up and escalation halts. So each loop
beats its `Pulse` after every round it completes, and readiness (`/readyz`) fails when a loop's
thread has ended or its last round is older than its deadline. A loop survives any exception
in a round: it logs it, waits a growing `Backoff`, and tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pulse:
    """When a loop last completed a round, and which thread runs it."""

    def __init__(
        self, name: str, *, deadline: float, seconds: Callable[[], float] = time.monotonic
    ) -> None:
        """`deadline`: seconds a round may take, the wait between rounds included. `seconds`
        is a monotonic clock (tests give their own, so lateness never depends on load)."""
        self.name = name
        self.deadline = deadline
        self.thread: threading.Thread | None = None
        self._seconds = seconds
        self._last = seconds()

    def beat(self) -> None:
        self._last = self._seconds()

    def trouble(self) -> str | None:
        """Why the loop cannot be trusted now, or None while it is alive and on time."""
        if self.thread is not None and not self.thread.is_alive():
            return f"the {self.name} loop has stopped"
        late = self._seconds() - self._last
        if late > self.deadline:
            return f"the {self.name} loop has not completed a round for {late:.0f} s"
        return None


class Backoff:
    """Waits that double after each failure, from `first` to at most `most` seconds."""

    def __init__(self, *, first: float = 0.1, most: float = 5.0) -> None:
        self._first = first
        self._most = most
        self._next = first

    def failed(self) -> float:
        """The wait after this failure."""
        wait = self._next
        self._next = min(self._next * 2, self._most)
        return wait

    def succeeded(self) -> None:
        self._next = self._first
