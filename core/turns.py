"""Batches that overlap, yet reach their patients in the order they were taken.

Why: a worker's writer spends about half of each batch waiting for PostgreSQL. A second writer
can prepare and store the next batch meanwhile, but a patient whose readings sit in both
batches must see them in the order they arrived, or the older ones would be judged as news
that has already passed (alerts marked late). So a batch may begin storing only once the batch
taken before it has locked its patients (`reading_revisions`); from there PostgreSQL's row
locks keep the order, and batches about other patients run side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Turns:
    """Numbered turns, served in order; a turn ends at `release` or when its block exits."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._issued = 0
        self._serving = 0
        self._mine = threading.local()

    def take(self) -> int:
        """The next number; take it where the batch's order is decided."""
        with self._changed:
            number = self._issued
            self._issued += 1
            return number

    @contextmanager
    def turn(self, number: int) -> Iterator[None]:
        """Wait until the turns before `number` are over; hold it while inside (this thread)."""
        with self._changed:
            self._changed.wait_for(lambda: self._serving >= number)
        self._mine.number = number
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        """End this thread's turn early (idempotent; nothing if it holds none)."""
        number = getattr(self._mine, "number", None)
        if number is None:
            return
        self._mine.number = None
        with self._changed:
            self._serving = max(self._serving, number + 1)
            self._changed.notify_all()
