"""``occurrence_at`` / ``next_occurrence``: pure maintenance-window arithmetic in Bangkok time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from fao.schemas import MaintenanceWindow, TimeSpan, occurrence_at
from fao.schemas.maintenance import BANGKOK, next_occurrence


def bkk(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    """A Bangkok wall-clock time in December 2026 (1 Dec 2026 is a Tuesday)."""
    return datetime(2026, month, day, hour, minute, tzinfo=BANGKOK)


def window(**fields: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"id": "mw", "reason": "upgrade", "systems": ["core"], **fields})


def test_december_2026_starts_on_a_tuesday() -> None:
    assert date(2026, 12, 1).weekday() == 1


def test_one_off_start_is_inside_and_end_is_outside() -> None:
    w = window(start="2026-12-01 22:00", end="2026-12-02 02:00")
    assert w.start == datetime(2026, 12, 1, 15, 0, tzinfo=UTC), "naive times are Bangkok"
    span = TimeSpan(start=bkk(1, 22), end=bkk(2, 2))
    assert occurrence_at(w, bkk(1, 22) - timedelta(microseconds=1)) is None
    assert occurrence_at(w, bkk(1, 22)) == span
    assert occurrence_at(w, bkk(2, 1, 59)) == span
    assert occurrence_at(w, bkk(2, 2)) is None


def test_one_off_with_offsets_and_dates() -> None:
    w = window(start="2026-12-01T15:00:00Z", end=date(2026, 12, 3))
    assert w.end == bkk(3, 0), "a date alone is midnight Bangkok"
    assert occurrence_at(w, bkk(1, 22)) is not None
    assert occurrence_at(w, bkk(1, 21, 59)) is None


def test_weekly_across_midnight() -> None:
    w = window(weekly={"days": ["sat"], "at": "23:00", "duration": "3h"})
    assert occurrence_at(w, bkk(5, 22, 59)) is None
    span = occurrence_at(w, bkk(6, 1, 30))  # Sunday 01:30: Saturday's occurrence
    assert span == TimeSpan(start=bkk(5, 23), end=bkk(6, 2))
    assert occurrence_at(w, bkk(6, 2)) is None
    assert occurrence_at(w, bkk(12, 23, 30)) == TimeSpan(start=bkk(12, 23), end=bkk(13, 2)), "next week"


def test_weekly_across_the_week_boundary() -> None:
    w = window(weekly={"days": ["sun"], "at": "23:30", "duration": "2h"})
    assert occurrence_at(w, bkk(7, 1)) == TimeSpan(start=bkk(6, 23, 30), end=bkk(7, 1, 30)), "Monday 01:00"
    assert occurrence_at(w, bkk(7, 1, 30)) is None


def test_weekly_lasting_days_and_several_weekdays() -> None:
    w = window(weekly={"days": ["fri", "mon"], "at": "20:00", "duration": "2d"})
    assert occurrence_at(w, bkk(6, 19, 59)) == TimeSpan(start=bkk(4, 20), end=bkk(6, 20)), "Fri..Sun"
    assert occurrence_at(w, bkk(6, 20)) is None
    assert occurrence_at(w, bkk(8, 10)) == TimeSpan(start=bkk(7, 20), end=bkk(9, 20)), "Mon..Wed"


def test_one_off_ended_early() -> None:
    w = window(start="2026-12-01 22:00", end="2026-12-02 02:00", ended_at=bkk(1, 23))
    assert occurrence_at(w, bkk(1, 22, 30)) == TimeSpan(start=bkk(1, 22), end=bkk(1, 23))
    assert occurrence_at(w, bkk(1, 23)) is None
    assert occurrence_at(w, bkk(2, 1)) is None
    assert next_occurrence(w, bkk(1, 12)) == TimeSpan(start=bkk(1, 22), end=bkk(1, 23))


def test_one_off_ended_before_it_began_never_happens() -> None:
    w = window(start="2026-12-01 22:00", end="2026-12-02 02:00", ended_at=bkk(1, 12))
    assert occurrence_at(w, bkk(1, 22)) is None
    assert occurrence_at(w, bkk(2, 1)) is None
    assert next_occurrence(w, bkk(1, 13)) is None


def test_weekly_ended_early_stops_this_occurrence_only() -> None:
    w = window(weekly={"days": ["tue"], "at": "22:00", "duration": "4h"}, ended_at=bkk(1, 23))
    assert occurrence_at(w, bkk(1, 22, 30)) == TimeSpan(start=bkk(1, 22), end=bkk(1, 23))
    assert occurrence_at(w, bkk(2, 0)) is None
    assert occurrence_at(w, bkk(8, 23)) == TimeSpan(start=bkk(8, 22), end=bkk(9, 2)), "next week applies"
    assert next_occurrence(w, bkk(1, 23)) == TimeSpan(start=bkk(8, 22), end=bkk(9, 2))


def test_bounded_weekly_happens_only_within_its_bounds() -> None:
    w = window(
        weekly={"days": ["tue"], "at": "22:00", "duration": "4h"},
        start="2026-12-08 00:00",
        end="2026-12-16 00:00",
    )
    assert occurrence_at(w, bkk(1, 23)) is None, "before start"
    assert occurrence_at(w, bkk(8, 23)) == TimeSpan(start=bkk(8, 22), end=bkk(9, 2))
    assert occurrence_at(w, bkk(15, 23)) == TimeSpan(start=bkk(15, 22), end=bkk(16, 0)), "clipped at end"
    assert occurrence_at(w, bkk(16, 1)) is None
    assert occurrence_at(w, bkk(22, 23)) is None, "after end"
    assert next_occurrence(w, bkk(1, 0)) == TimeSpan(start=bkk(8, 22), end=bkk(9, 2))
    assert next_occurrence(w, bkk(15, 23)) is None


def test_bounded_weekly_starting_inside_an_occurrence() -> None:
    w = window(weekly={"days": ["tue"], "at": "22:00", "duration": "4h"}, start="2026-12-02 00:00")
    assert occurrence_at(w, bkk(2, 1)) == TimeSpan(start=bkk(2, 0), end=bkk(2, 2))
    assert next_occurrence(w, bkk(1, 12)) == TimeSpan(start=bkk(2, 0), end=bkk(2, 2))


def test_next_occurrence_of_weekly_looks_a_week_ahead() -> None:
    w = window(weekly={"days": ["mon"], "at": "02:00", "duration": "1h"})
    assert next_occurrence(w, bkk(7, 2)) == TimeSpan(start=bkk(14, 2), end=bkk(14, 3)), "strictly after"
    assert next_occurrence(w, bkk(7, 1, 59)) == TimeSpan(start=bkk(7, 2), end=bkk(7, 3))


def test_matches_by_system_team_or_tag() -> None:
    w = window(teams=["noc"], tags=["db"], start="2026-12-01 22:00", end="2026-12-02 02:00")
    assert w.matches("core", None, [])
    assert w.matches("other", "noc", [])
    assert w.matches("other", "apps", ["web", "db"])
    assert not w.matches("other", "apps", ["web"])


def test_yaml_reads_unquoted_times_of_day_as_numbers() -> None:
    w = window(weekly={"days": ["sun"], "at": 22 * 60, "duration": "1h"})  # what YAML makes of 22:00
    assert w.weekly is not None
    assert w.weekly.at == "22:00"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"systems": [], "start": "2026-12-01 22:00", "end": "2026-12-02 02:00"}, "at least one of"),
        ({"start": "2026-12-01 22:00"}, "needs start and end"),
        ({"start": "2026-12-02 02:00", "end": "2026-12-01 22:00"}, "end must be after start"),
        ({"weekly": {"days": ["sun"], "at": "24:00", "duration": "1h"}}, "not a time of day"),
        ({"weekly": {"days": ["sun"], "at": 24 * 60, "duration": "1h"}}, "not a time of day"),
        ({"weekly": {"days": ["sunday"], "at": "01:00", "duration": "1h"}}, "Input should be"),
        ({"start": "tomorrow", "end": "2026-12-02 02:00"}, "valid datetime"),
    ],
)
def test_invalid_windows_are_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        window(**fields)
