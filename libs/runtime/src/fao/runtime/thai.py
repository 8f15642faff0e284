"""Thai calendar: month names, Buddhist-era (BE) years, the fiscal year, and Thai formatting.

Conventions used across Fao (reporter and notifier):

- Times are stored and computed in UTC; they are *shown* in Asia/Bangkok (UTC+7, no DST).
- A `Month` is named by its Common-Era year ("2026-10") in code, files and CLI arguments; the
  Buddhist-era year (CE + 543) is for display only.
- The Thai government fiscal year runs 1 October – 30 September and is named by the BE year in
  which it *ends*: October 2026 (BE 2569) is in fiscal year 2570.

All Thai words used by this module live in `CATALOGUE` below; templates hold the rest.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, model_validator

BANGKOK: Final = ZoneInfo("Asia/Bangkok")
BE_OFFSET: Final = 543
FISCAL_YEAR_FIRST_MONTH: Final = 10

# Years accepted for a `Month`. The upper bound catches the most common input mistake here —
# typing the Buddhist-era year ("2569-10") where the Common-Era year ("2026-10") is expected.
MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2399

CATALOGUE: Final = {
    "month_full": (
        "มกราคม",
        "กุมภาพันธ์",
        "มีนาคม",
        "เมษายน",
        "พฤษภาคม",
        "มิถุนายน",
        "กรกฎาคม",
        "สิงหาคม",
        "กันยายน",
        "ตุลาคม",
        "พฤศจิกายน",
        "ธันวาคม",
    ),
    "month_abbr": (
        "ม.ค.",
        "ก.พ.",
        "มี.ค.",
        "เม.ย.",
        "พ.ค.",
        "มิ.ย.",
        "ก.ค.",
        "ส.ค.",
        "ก.ย.",
        "ต.ค.",
        "พ.ย.",
        "ธ.ค.",
    ),
    # "น." (นาฬิกา) follows a 24-hour clock time: "14:03 น."
    "time_suffix": ("น.",),
    # duration units, largest first: days, hours, minutes, seconds
    "duration_units": ("วัน", "ชม.", "นาที", "วินาที"),
}

_MONTH_TEXT = re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})")


def month_name(month: int, *, abbreviated: bool = False) -> str:
    """Thai name of `month` (1–12): "ตุลาคม", or "ต.ค." when `abbreviated`."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1-12, got {month}")
    names = CATALOGUE["month_abbr" if abbreviated else "month_full"]
    return names[month - 1]


def be_year(ce_year: int) -> int:
    """Buddhist-era year of a Common-Era year: 2026 -> 2569."""
    return ce_year + BE_OFFSET


def fiscal_year(d: date) -> int:
    """Thai fiscal year (BE) containing `d`: 30 Sep 2026 -> 2569, 1 Oct 2026 -> 2570.

    An aware datetime is first converted to Bangkok time; a naive datetime is rejected.
    """
    local = _local_date(d)
    ce = local.year + 1 if local.month >= FISCAL_YEAR_FIRST_MONTH else local.year
    return be_year(ce)


def format_thai_date(d: date) -> str:
    """Full Thai date with BE year: date(2026, 10, 5) -> "5 ตุลาคม 2569".

    An aware datetime is formatted as its Bangkok calendar date; a naive datetime is rejected.
    """
    local = _local_date(d)
    return f"{local.day} {month_name(local.month)} {be_year(local.year)}"


def format_thai_datetime(dt: datetime) -> str:
    """Short Thai date and 24-hour time in Bangkok: 07:03Z on 5 Oct 2026 -> "5 ต.ค. 2569 14:03 น."."""
    local = to_bangkok(dt)
    suffix = CATALOGUE["time_suffix"][0]
    return (
        f"{local.day} {month_name(local.month, abbreviated=True)} {be_year(local.year)} "
        f"{local:%H:%M} {suffix}"
    )


def format_thai_duration(duration: timedelta) -> str:
    """Readable Thai duration: "45 วินาที", "1 ชม. 5 นาที", "2 วัน 3 ชม.".

    Under a minute the seconds are shown; from one minute up, whole days, hours and minutes are
    shown (zero parts omitted) and leftover seconds are dropped, never rounded up. Fractions of a
    second are always dropped. Negative durations are a bug upstream and raise ValueError.
    """
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    day_unit, hour_unit, minute_unit, second_unit = CATALOGUE["duration_units"]
    total = duration // timedelta(seconds=1)
    if total < 60:
        return f"{total} {second_unit}"
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [
        f"{value} {unit}"
        for value, unit in ((days, day_unit), (hours, hour_unit), (minutes, minute_unit))
        if value
    ]
    return " ".join(parts)


_THAI_DIGITS: Final = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")


def thai_digits(text: str) -> str:
    """`text` with Arabic digits written as Thai digits: "2569" -> "๒๕๖๙"."""
    return text.translate(_THAI_DIGITS)


def to_bangkok(dt: datetime) -> datetime:
    """`dt` converted to Asia/Bangkok. Naive datetimes are rejected: their zone is unknowable."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {dt.isoformat()}")
    return dt.astimezone(BANGKOK)


def _local_date(d: date) -> date:
    if isinstance(d, datetime):
        return to_bangkok(d).date()
    return d


def _month_problem(year: int, month: int) -> str | None:
    """Why (year, month) is not a valid `Month`, or None when it is."""
    if MAX_YEAR < year <= MAX_YEAR + BE_OFFSET + 100:
        return (
            f"year {year} looks like a Buddhist-era year; use the Common-Era year "
            f"({year - BE_OFFSET}-{month:02d})"
        )
    if not MIN_YEAR <= year <= MAX_YEAR:
        return f"year must be between {MIN_YEAR} and {MAX_YEAR}, got {year}"
    if not 1 <= month <= 12:
        return f"month must be 01-12, got {month:02d}"
    return None


class Month(BaseModel):
    """A calendar month in Bangkok time, named by its Common-Era year: `Month.parse("2026-10")`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    year: int
    month: int

    @model_validator(mode="after")
    def _valid(self) -> Self:
        problem = _month_problem(self.year, self.month)
        if problem is not None:
            raise ValueError(problem)
        return self

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse "YYYY-MM" (Common Era). Raises ValueError saying what is wrong and what is expected."""
        match = _MONTH_TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"invalid month {text!r}: expected YYYY-MM with a Common-Era year, e.g. 2026-10")
        year, month = int(match["year"]), int(match["month"])
        problem = _month_problem(year, month)
        if problem is not None:
            raise ValueError(f"invalid month {text!r}: {problem}")
        return cls(year=year, month=month)

    @classmethod
    def containing(cls, moment: datetime) -> Month:
        """The Bangkok month that `moment` (timezone-aware) falls in."""
        local = to_bangkok(moment)
        return cls(year=local.year, month=local.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        """The month after this one."""
        if self.month == 12:
            return Month(year=self.year + 1, month=1)
        return Month(year=self.year, month=self.month + 1)

    def previous(self) -> Month:
        """The month before this one."""
        if self.month == 1:
            return Month(year=self.year - 1, month=12)
        return Month(year=self.year, month=self.month - 1)

    def bounds(self) -> tuple[datetime, datetime]:
        """(start, end) of the month in Bangkok time, as aware UTC datetimes; end is exclusive.

        October 2026 -> (2026-09-30T17:00Z, 2026-10-31T17:00Z).
        """
        following = self.next()
        start = datetime(self.year, self.month, 1, tzinfo=BANGKOK)
        end = datetime(following.year, following.month, 1, tzinfo=BANGKOK)
        return start.astimezone(UTC), end.astimezone(UTC)

    @property
    def be_year(self) -> int:
        """Buddhist-era year of this month: 2026-10 -> 2569."""
        return be_year(self.year)

    @property
    def fiscal_year(self) -> int:
        """Thai fiscal year (BE) this month belongs to: 2026-09 -> 2569, 2026-10 -> 2570."""
        return fiscal_year(date(self.year, self.month, 1))

    @property
    def name_th(self) -> str:
        """Full Thai month name: "ตุลาคม"."""
        return month_name(self.month)
