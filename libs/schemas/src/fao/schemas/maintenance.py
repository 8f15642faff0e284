"""Maintenance windows: planned time when failures of the matched systems send nothing.

A window matches systems by id, by owning team or by monitor tag, and is either one-off
(``start``..``end``) or weekly (``weekly: {days, at, duration}``, optionally bounded by ``start`` /
``end``: nothing of it happens outside ``[start, end)``). Times without an offset are
Asia/Bangkok; a date alone is midnight Bangkok. ``ended_at`` ends a window early: a one-off window
stops there (ended before its start, it never happens); a weekly window's occurrence in progress
stops there, later ones still apply.

The functions here are pure (no clock): the correlator asks ``occurrence_at(window, t)``; listings
ask ``next_occurrence(window, t)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, model_validator

from fao.schemas.base import FaoModel, Identifier, Seconds, UtcDatetime
from fao.schemas.events import TimeSpan

BANGKOK: Final = ZoneInfo("Asia/Bangkok")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: Final[tuple[Weekday, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _bangkok_if_naive(value: object) -> object:
    """A datetime (or ISO string) without an offset is Bangkok time, as people write it; a date
    alone (YAML reads ``2026-12-01`` as one) is midnight Bangkok."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return value  # pydantic reports its own, precise error
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=BANGKOK)
    return value


def _time_of_day(value: object) -> object:
    """YAML 1.1 reads an unquoted ``22:00`` as the base-60 integer 1320: turn it back into text."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 24 * 60:
            raise ValueError("not a time of day as HH:MM (24-hour, Bangkok)")
        return "{:02d}:{:02d}".format(*divmod(value, 60))
    return value


LocalDatetime = Annotated[UtcDatetime, BeforeValidator(_bangkok_if_naive)]


class WeeklyRecurrence(FaoModel):
    """Every listed weekday at ``at`` (Bangkok, HH:MM) for ``duration``."""

    days: list[Weekday] = Field(min_length=1, max_length=7)
    at: Annotated[str, BeforeValidator(_time_of_day)]
    duration: Annotated[Seconds, Field(gt=0, le=7 * 86400)]

    @model_validator(mode="after")
    def _valid_time(self) -> WeeklyRecurrence:
        if _HHMM.match(self.at) is None:
            raise ValueError(f"at: {self.at!r} is not a time of day as HH:MM (24-hour, Bangkok)")
        return self

    @property
    def local_time(self) -> time:
        hours, minutes = self.at.split(":")
        return time(int(hours), int(minutes))


class MaintenanceWindow(FaoModel):
    """Planned maintenance; see the module docstring."""

    schema_version: Literal[1] = 1
    id: Identifier
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    systems: list[Identifier] = Field(default_factory=list)
    teams: list[Identifier] = Field(default_factory=list)
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list)
    start: LocalDatetime | None = None
    end: LocalDatetime | None = None
    weekly: WeeklyRecurrence | None = None
    ended_at: UtcDatetime | None = None
    created_by: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceWindow:
        if not (self.systems or self.teams or self.tags):
            raise ValueError("a window needs at least one of systems, teams or tags")
        if self.weekly is None and (self.start is None or self.end is None):
            raise ValueError("a one-off window needs start and end (or use weekly)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def matches(self, system_id: str, team_id: str | None, tags: list[str]) -> bool:
        return (
            system_id in self.systems
            or (team_id is not None and team_id in self.teams)
            or any(tag in self.tags for tag in tags)
        )


def _weekly_spans(window: MaintenanceWindow, first: date, last: date) -> Iterator[TimeSpan]:
    """Occurrences beginning on the Bangkok days ``first``..``last``, oldest first, clipped to the
    window's ``start``/``end`` bounds (empty ones dropped)."""
    weekly = window.weekly
    assert weekly is not None
    duration = timedelta(seconds=weekly.duration)
    day = first
    while day <= last:
        if WEEKDAYS[day.weekday()] in weekly.days:
            begin = datetime.combine(day, weekly.local_time, tzinfo=BANGKOK).astimezone(UTC)
            end = begin + duration
            if window.start is not None:
                begin = max(begin, window.start)
            if window.end is not None:
                end = min(end, window.end)
            if begin < end:
                yield TimeSpan(start=begin, end=end)
        day += timedelta(days=1)


def _ended_early(window: MaintenanceWindow, span: TimeSpan) -> TimeSpan | None:
    """``span`` as ``ended_at`` leaves it (None when nothing of it is left)."""
    assert span.end is not None
    ended = window.ended_at
    if ended is None or ended >= span.end:
        return span
    if ended > span.start:
        return TimeSpan(start=span.start, end=ended)
    if window.weekly is None:
        return None  # a one-off window ended (cancelled) before it began never happens
    return span  # a weekly occurrence after ``ended_at`` still applies


def _spans(window: MaintenanceWindow, first: date, last: date) -> Iterator[TimeSpan]:
    """Effective occurrences (bounds and ``ended_at`` applied) beginning on days ``first``..``last``
    (every weekly one; a one-off window's single span regardless of the days)."""
    if window.weekly is None:
        assert window.start is not None
        assert window.end is not None
        raw: Iterator[TimeSpan] = iter([TimeSpan(start=window.start, end=window.end)])
    else:
        raw = _weekly_spans(window, first, last)
    for span in raw:
        effective = _ended_early(window, span)
        if effective is not None:
            yield effective


def _days_back(window: MaintenanceWindow) -> int:
    """How many days before ``t`` an occurrence still in force at ``t`` may have begun."""
    return 0 if window.weekly is None else int(window.weekly.duration // 86400) + 1


def occurrence_at(window: MaintenanceWindow, at: datetime) -> TimeSpan | None:
    """The occurrence of ``window`` in force at ``at`` (with its end, shortened by ``ended_at``)."""
    today = at.astimezone(BANGKOK).date()
    for span in _spans(window, today - timedelta(days=_days_back(window)), today):
        assert span.end is not None
        if span.start <= at < span.end:
            return span
    return None


def next_occurrence(window: MaintenanceWindow, after: datetime) -> TimeSpan | None:
    """The first occurrence of ``window`` that begins after ``after`` (None: nothing more to come)."""
    since = after if window.start is None else max(after, window.start)
    first = since.astimezone(BANGKOK).date() - timedelta(days=_days_back(window))
    for span in _spans(window, first, first + timedelta(days=_days_back(window) + 8)):
        if span.start > after:
            return span
    return None
