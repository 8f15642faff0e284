"""How a report speaks: its wording (`templates/catalogue_<language>.yaml`) and how it writes
numbers, dates and durations in Thai (BE years, Thai month names, optional Thai digits) or English.

Every text the report shows goes through a `Formatter`, so `thai_digits` reaches every figure.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Final, Literal

import yaml

from fao.reporter.availability import SystemSummary
from fao.reporter.periods import ReportPeriod
from fao.runtime.thai import (
    be_year,
    format_thai_date,
    format_thai_datetime,
    format_thai_duration,
    month_name,
    thai_digits,
    to_bangkok,
)

Language = Literal["th", "en"]
LANGUAGES: Final = ("th", "en")
NO_VALUE: Final = "—"
_CATALOGUES: Final = Path(__file__).parent / "templates"
_MICROSECOND: Final = timedelta(microseconds=1)
_EN_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@cache
def catalogue(language: Language) -> dict[str, object]:
    """The wording of one language (read once)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    text = (_CATALOGUES / f"catalogue_{language}.yaml").read_text(encoding="utf-8")
    loaded: dict[str, object] = yaml.safe_load(text)
    return loaded


class Formatter:
    """Words and figures of one report in one language."""

    def __init__(self, language: Language = "th", *, thai_digits: bool = False) -> None:
        self.language: Language = language
        self.use_thai_digits = thai_digits and language == "th"
        self._words = catalogue(language)

    def digits(self, text: str) -> str:
        return thai_digits(text) if self.use_thai_digits else text

    def t(self, key: str, **values: object) -> str:
        """The catalogue's text for `key`, with `values` put in (numbers in the report's digits)."""
        template = self._words[key]
        if not isinstance(template, str):
            raise KeyError(f"catalogue key {key!r} is not a text")
        return self.digits(template.format(**values)) if values else template

    def label(self, group: str, value: str) -> str:
        """A kind, severity or status in words; an unknown one (a newer correlator's) as it is."""
        labels = self._words.get(group)
        if isinstance(labels, dict):
            return str(labels.get(value, value))
        return value

    def system_name(self, row: SystemSummary) -> str:
        """The Thai name in a Thai report (the name when there is none), the name in English."""
        return row.display_name if self.language == "th" else row.name

    def number(self, value: int) -> str:
        return self.digits(f"{value:,}")

    def percent(self, value: Decimal | None) -> str:
        return NO_VALUE if value is None else self.digits(f"{value:.3f}")

    def points(self, value: Decimal | None) -> str:
        """A change in percentage points, signed: "+0.120", "−1.500"."""
        if value is None:
            return NO_VALUE
        sign = "+" if value > 0 else "−" if value < 0 else "±"
        return self.digits(f"{sign}{abs(value):.3f}")

    def signed(self, value: int) -> str:
        sign = "+" if value > 0 else "−" if value < 0 else "±"
        return self.digits(f"{sign}{abs(value):,}")

    def duration(self, value: timedelta | None, *, units: int = 3) -> str:
        """ "1 วัน 2 ชม. 3 นาที" / "1 d 2 h 3 min"; at most `units` parts, the largest (tables use 2)."""
        if value is None:
            return NO_VALUE
        if self.language == "th":
            words = format_thai_duration(value).split(" ")
            return self.digits(" ".join(words[: 2 * units]))
        total = value // timedelta(seconds=1)
        if total < 60:
            return f"{total} s"
        days, rest = divmod(total, 86_400)
        hours, rest = divmod(rest, 3_600)
        parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (rest // 60, "min")) if n]
        return " ".join(parts[:units])

    def signed_duration(self, value: timedelta) -> str:
        if value == timedelta(0):
            return "±0"
        sign = "+" if value > timedelta(0) else "−"
        return sign + self.duration(abs(value))

    def when(self, value: datetime | None) -> str:
        if value is None:
            return NO_VALUE
        if self.language == "th":
            return self.digits(format_thai_datetime(value))
        local = to_bangkok(value)
        return f"{local.day} {_EN_MONTHS[local.month - 1][:3]} {local.year} {local:%H:%M}"

    def on_date(self, value: date) -> str:
        if self.language == "th":
            return self.digits(format_thai_date(value))
        local = to_bangkok(value).date() if isinstance(value, datetime) else value
        return f"{local.day} {_EN_MONTHS[local.month - 1]} {local.year}"

    def short_day(self, value: date) -> str:
        """A short day for chart axes: "5 ต.ค." / "5 Oct"."""
        if self.language == "th":
            return self.digits(f"{value.day} {month_name(value.month, abbreviated=True)}")
        return f"{value.day} {_EN_MONTHS[value.month - 1][:3]}"

    def title(self, period: ReportPeriod) -> str:
        if period.kind == "fiscal_year":
            return self.t("title_fiscal", year=period.fiscal_year)
        month = period.first
        if self.language == "th":
            return self.t("title_month", month=month_name(month.month), year=be_year(month.year))
        return self.t("title_month", month=_EN_MONTHS[month.month - 1], year=month.year)

    def measured_dates(self, start: datetime, end: datetime, *, complete: bool) -> str:
        """The measured period as the report's subtitle."""
        if complete:
            return self.t("period", start=self.on_date(start), end=self.on_date(end - _MICROSECOND))
        return self.t("period_running", start=self.when(start), end=self.when(end))
