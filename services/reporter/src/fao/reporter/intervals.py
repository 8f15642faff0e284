"""Half-open time intervals `[start, end)`: union, length, clipping and subtraction. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple

_ZERO: Final = timedelta(0)


class Interval(NamedTuple):
    """Half-open time interval `[start, end)`."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return max(self.end - self.start, _ZERO)


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of `intervals` as sorted, disjoint, non-empty intervals (touching ones are joined)."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i.end > i.start):
        if merged and start <= merged[-1].end:
            if end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, end)
        else:
            merged.append(Interval(start, end))
    return merged


def covered_time(intervals: Iterable[Interval]) -> timedelta:
    """Total time covered by `intervals`, overlaps counted once."""
    return sum((i.end - i.start for i in merge_intervals(intervals)), _ZERO)


def clip(interval: Interval, bounds: Interval) -> Interval:
    """`interval` cut to `bounds` (empty, start == end, when they do not overlap)."""
    start = min(max(interval.start, bounds.start), bounds.end)
    end = max(start, min(interval.end, bounds.end))
    return Interval(start, end)


def subtract(interval: Interval, holes: Sequence[Interval]) -> list[Interval]:
    """The parts of `interval` outside every one of `holes` (sorted, disjoint, non-empty)."""
    parts: list[Interval] = []
    cursor = interval.start
    for hole in merge_intervals(holes):
        if hole.end <= cursor or hole.start >= interval.end:
            continue
        if hole.start > cursor:
            parts.append(Interval(cursor, hole.start))
        cursor = max(cursor, hole.end)
    if cursor < interval.end:
        parts.append(Interval(cursor, interval.end))
    return parts


def intersect(interval: Interval, others: Sequence[Interval]) -> list[Interval]:
    """The parts of `interval` inside any of `others` (sorted, disjoint, non-empty)."""
    return [c for c in (clip(o, interval) for o in merge_intervals(others)) if c.end > c.start]
