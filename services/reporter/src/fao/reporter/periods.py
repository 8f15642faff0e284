"""What a report covers: one month ("2026-10") or a Thai fiscal year to date ("fy2570"). Pure.

The fiscal year runs 1 October – 30 September and is named by the Buddhist-era year in which it
ends (`fao.runtime.thai`): FY 2570 is October 2026 – September 2027.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from fao.runtime.thai import BE_OFFSET, FISCAL_YEAR_FIRST_MONTH, MAX_YEAR, MIN_YEAR, Month

PeriodKind = Literal["month", "fiscal_year"]
_FISCAL_TEXT: Final = re.compile(r"fy(?P<year>[0-9]{4})", re.IGNORECASE)
# Fiscal years whose twelve months are all months `Month` accepts (CE MIN_YEAR to MAX_YEAR).
FIRST_FISCAL_YEAR: Final = MIN_YEAR + BE_OFFSET + 1
LAST_FISCAL_YEAR: Final = MAX_YEAR + BE_OFFSET


class ReportPeriod(BaseModel):
    """A month, or a fiscal year (its first month and twelve months)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: PeriodKind
    first: Month

    @classmethod
    def month(cls, month: Month) -> ReportPeriod:
        return cls(kind="month", first=month)

    @classmethod
    def fiscal(cls, fiscal_year_be: int) -> ReportPeriod:
        """Fiscal year `fiscal_year_be` (BE): 2570 starts in October 2026."""
        first = Month(year=fiscal_year_be - BE_OFFSET - 1, month=FISCAL_YEAR_FIRST_MONTH)
        return cls(kind="fiscal_year", first=first)

    @classmethod
    def parse(cls, text: str) -> ReportPeriod:
        """ "2026-10" (a Common-Era month) or "fy2570" (a Buddhist-era fiscal year). Raises ValueError."""
        match = _FISCAL_TEXT.fullmatch(text.strip())
        if match is None:
            return cls.month(Month.parse(text))
        year = int(match["year"])
        if MIN_YEAR <= year <= MAX_YEAR:
            raise ValueError(
                f"invalid fiscal year {text!r}: name it by the Buddhist-era year it ends in,"
                f" e.g. fy{year + BE_OFFSET} (October {year - 1} to September {year})"
            )
        if not FIRST_FISCAL_YEAR <= year <= LAST_FISCAL_YEAR:
            raise ValueError(
                f"invalid fiscal year {text!r}: expected fy{FIRST_FISCAL_YEAR} to fy{LAST_FISCAL_YEAR}"
                " (Buddhist era, e.g. fy2570)"
            )
        return cls.fiscal(year)

    @property
    def months(self) -> tuple[Month, ...]:
        count = 1 if self.kind == "month" else 12
        months = [self.first]
        while len(months) < count:
            months.append(months[-1].next())
        return tuple(months)

    @property
    def last(self) -> Month:
        return self.months[-1]

    @property
    def fiscal_year(self) -> int:
        """The fiscal year (BE) of the period's first month."""
        return self.first.fiscal_year

    def bounds(self) -> tuple[datetime, datetime]:
        """(start, end) in UTC of the whole period, Bangkok month boundaries; end exclusive."""
        return self.first.bounds()[0], self.last.bounds()[1]

    def previous(self) -> ReportPeriod:
        """The month before, or the fiscal year before."""
        if self.kind == "month":
            return ReportPeriod.month(self.first.previous())
        return ReportPeriod.fiscal(self.fiscal_year - 1)

    @property
    def key(self) -> str:
        """Names files and stored reports: "2026-10", "fy2570"."""
        return str(self.first) if self.kind == "month" else f"fy{self.fiscal_year}"

    def __str__(self) -> str:
        return self.key
