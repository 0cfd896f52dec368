"""One patient's readings of one measurement, shaped for the questions rules ask.

Why not a list of observations: the engine evaluates a patient at every new reading, and a
rule that scanned the whole history each time made ingest slower the longer a patient had been
followed. Here readings sit in two parallel arrays ordered by measured time, so "the newest
reading in a window" is a bisection, "the readings in a window" is a slice, and the median of
a sliding baseline is kept in a sorted window that readings enter and leave once each.

Times are whole microseconds since the epoch: exact, so a window edge compares the same way
however it was computed. One value per moment: a second reading measured at the same moment
(a resend, or a second device of the same kind) is ignored, the first stored one counts.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from sortedcontainers import SortedList

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def moment_of(time: int) -> datetime:
    return EPOCH + timedelta(microseconds=time)


def span(duration: timedelta) -> int:
    return duration // MICROSECOND


class Series:
    """Readings of one measurement, oldest first, at most one per measured moment."""

    __slots__ = ("_window", "times", "values")

    def __init__(self) -> None:
        self.times = array("q")
        self.values = array("d")
        self._window: _Window | None = None

    @classmethod
    def of(cls, readings: Iterable[tuple[int, float]]) -> Series:
        series = cls()
        for time, value in readings:
            series.add(time, value)
        return series

    def __len__(self) -> int:
        return len(self.times)

    def add(self, time: int, value: float) -> bool:
        """Hold a reading; False if one measured at the same moment is already held."""
        times = self.times
        if not times or time > times[-1]:
            times.append(time)
            self.values.append(value)
            return True
        index = bisect_left(times, time)
        if index < len(times) and times[index] == time:
            return False
        times.insert(index, time)
        self.values.insert(index, value)
        self._window = None
        return True

    def forget_before(self, time: int) -> None:
        """Drop readings measured before `time` (they are outside every window still asked)."""
        cut = bisect_left(self.times, time)
        if cut:
            del self.times[:cut]
            del self.values[:cut]
            self._window = None

    def newest(self, start: int, end: int) -> int | None:
        """Index of the newest reading measured in [start, end], or None."""
        index = bisect_right(self.times, end) - 1
        return index if index >= 0 and self.times[index] >= start else None

    def bounds(self, start: int, end: int) -> tuple[int, int]:
        """[first, last) indices of the readings measured in [start, end]."""
        return bisect_left(self.times, start), bisect_right(self.times, end)

    def newer_than(self, time: int) -> bool:
        return bool(self.times) and self.times[-1] > time

    def median(self, start: int, end: int) -> tuple[float, int] | None:
        """(median, count) of the values measured in [start, end]; None if there are none.

        A baseline that slides forward (the usual case: readings arrive in measured order)
        is updated by the readings entering and leaving it; anything else rebuilds it.
        """
        first, last = self.bounds(start, end)
        if first >= last:
            return None
        window = self._window
        if window is None or not window.slides_to(first, last):
            window = self._window = _Window(first, last, self.values)
        else:
            window.slide(first, last, self.values)
        return window.median(), last - first


class _Window:
    """The sorted values of series[first:last]."""

    __slots__ = ("first", "last", "sorted")

    def __init__(self, first: int, last: int, values: array[float]) -> None:
        self.first, self.last = first, last
        self.sorted = SortedList(values[first:last])

    def slides_to(self, first: int, last: int) -> bool:
        """Whether moving forward is cheaper than rebuilding (and possible at all)."""
        if first < self.first or last < self.last or first >= self.last:
            return False
        return (first - self.first) + (last - self.last) < last - first

    def slide(self, first: int, last: int, values: array[float]) -> None:
        for index in range(self.last, last):
            self.sorted.add(values[index])
        for index in range(self.first, first):
            self.sorted.remove(values[index])
        self.first, self.last = first, last

    def median(self) -> float:
        """As statistics.median computes it: the middle value, or the mean of the two."""
        ordered, count = self.sorted, len(self.sorted)
        middle = count // 2
        if count % 2:
            return float(ordered[middle])
        return (ordered[middle - 1] + ordered[middle]) / 2
