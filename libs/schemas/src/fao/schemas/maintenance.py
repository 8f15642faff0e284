"""Maintenance windows: planned time when failures of the matched systems send nothing.

A window matches systems by id, by owning team or by monitor tag, and is either one-off
(``start``..``end``) or weekly (``weekly: {days, at, duration}``, optionally bounded by ``start`` /
``end``). Times without an offset are Asia/Bangkok. ``ended_at`` ends a window early: a one-off
window stops there; a weekly window's occurrence in progress stops there, later ones still apply.

The functions here are pure (no clock): the correlator asks ``occurrence_at(window, t)``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
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
    """A datetime (or ISO string) without an offset is Bangkok time, as people write it."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return value  # pydantic reports its own, precise error
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=BANGKOK)
    return value


LocalDatetime = Annotated[UtcDatetime, BeforeValidator(_bangkok_if_naive)]


class WeeklyRecurrence(FaoModel):
    """Every listed weekday at ``at`` (Bangkok, HH:MM) for ``duration``."""

    days: list[Weekday] = Field(min_length=1, max_length=7)
    at: str
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


def _weekly_occurrences(window: MaintenanceWindow, at: datetime) -> list[TimeSpan]:
    """Occurrences that may contain ``at`` (started within the last ``duration`` + a week)."""
    weekly = window.weekly
    assert weekly is not None
    duration = timedelta(seconds=weekly.duration)
    local = at.astimezone(BANGKOK)
    spans: list[TimeSpan] = []
    days_back = int(duration.total_seconds() // 86400) + 1
    for back in range(days_back, -1, -1):
        day = local.date() - timedelta(days=back)
        if WEEKDAYS[day.weekday()] not in weekly.days:
            continue
        begin = datetime.combine(day, weekly.local_time, tzinfo=BANGKOK).astimezone(UTC)
        spans.append(TimeSpan(start=begin, end=begin + duration))
    return spans


def occurrence_at(window: MaintenanceWindow, at: datetime) -> TimeSpan | None:
    """The occurrence of ``window`` in force at ``at`` (with its end, shortened by ``ended_at``)."""
    if window.weekly is None:
        assert window.start is not None
        assert window.end is not None
        candidates = [TimeSpan(start=window.start, end=window.end)]
    else:
        candidates = [
            span
            for span in _weekly_occurrences(window, at)
            if (window.start is None or span.start >= window.start)
            and (window.end is None or span.start < window.end)
        ]
    for span in candidates:
        assert span.end is not None
        end = span.end
        if window.ended_at is not None and span.start <= window.ended_at < end:
            end = window.ended_at
        if span.start <= at < end:
            return TimeSpan(start=span.start, end=end)
    return None
