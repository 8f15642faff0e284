"""Thai calendar: month names, BE years, fiscal year, `Month`, and Thai date/time/duration text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from fao.runtime.thai import (
    Month,
    be_year,
    fiscal_year,
    format_thai_date,
    format_thai_datetime,
    format_thai_duration,
    month_name,
)


def test_month_names_full_and_abbreviated() -> None:
    """Months are named in Thai, 1-based: 10 -> ตุลาคม / ต.ค."""
    assert month_name(1) == "มกราคม"
    assert month_name(10) == "ตุลาคม"
    assert month_name(12) == "ธันวาคม"
    assert month_name(10, abbreviated=True) == "ต.ค."
    assert month_name(2, abbreviated=True) == "ก.พ."


@pytest.mark.parametrize("month", [0, 13])
def test_month_name_rejects_out_of_range(month: int) -> None:
    """Month numbers outside 1-12 are a ValueError, not an IndexError or a wrapped-around name."""
    with pytest.raises(ValueError, match="1-12"):
        month_name(month)


def test_be_year_is_ce_plus_543() -> None:
    """The Buddhist-era year is the Common-Era year + 543."""
    assert be_year(2026) == 2569


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 9, 30), 2569),
        (date(2026, 10, 1), 2570),
        (date(2026, 1, 15), 2569),
        (date(2026, 12, 31), 2570),
    ],
)
def test_fiscal_year_turns_over_on_1_october(day: date, expected: int) -> None:
    """Fiscal year runs 1 Oct - 30 Sep and is named by the BE year it ends in."""
    assert fiscal_year(day) == expected


def test_fiscal_year_of_a_datetime_uses_bangkok_date() -> None:
    """17:00Z on 30 Sep is already 1 Oct in Bangkok, so it is in the next fiscal year."""
    assert fiscal_year(datetime(2026, 9, 30, 16, 59, tzinfo=UTC)) == 2569
    assert fiscal_year(datetime(2026, 9, 30, 17, 0, tzinfo=UTC)) == 2570


def test_month_knows_be_year_fiscal_year_and_thai_name() -> None:
    """September and October 2026 are in different fiscal years; both are BE 2569."""
    september, october = Month.parse("2026-09"), Month.parse("2026-10")
    assert (september.be_year, september.fiscal_year) == (2569, 2569)
    assert (october.be_year, october.fiscal_year) == (2569, 2570)
    assert october.name_th == "ตุลาคม"


def test_month_parse_reads_ce_year_and_month() -> None:
    """ "2026-10" is October 2026; str() gives the same text back."""
    month = Month.parse("2026-10")
    assert (month.year, month.month) == (2026, 10)
    assert str(month) == "2026-10"
    assert Month.parse(" 2026-01 ") == Month(year=2026, month=1)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-13", "month must be 01-12, got 13"),
        ("2026-00", "month must be 01-12, got 00"),
        ("26-10", "expected YYYY-MM"),
        ("2026-1", "expected YYYY-MM"),
        ("2026/10", "expected YYYY-MM"),
        ("2026-10-01", "expected YYYY-MM"),
        ("", "expected YYYY-MM"),
        ("๒๐๒๖-๑๐", "expected YYYY-MM"),
        ("2569-10", "looks like a Buddhist-era year; use the Common-Era year (2026-10)"),
        ("1850-01", "year must be between"),
    ],
)
def test_month_parse_rejects_bad_text_with_clear_message(text: str, problem: str) -> None:
    """Bad month strings raise ValueError naming the input and what is wrong with it."""
    with pytest.raises(ValueError, match="invalid month") as error:
        Month.parse(text)
    assert repr(text) in str(error.value)
    assert problem in str(error.value)


def test_month_constructor_validates_too() -> None:
    """Month(year=..., month=...) enforces the same rules as parse()."""
    with pytest.raises(ValueError, match="01-12"):
        Month(year=2026, month=13)
    with pytest.raises(ValueError, match="Buddhist-era"):
        Month(year=2569, month=10)


def test_month_is_a_frozen_value() -> None:
    """Months compare and hash by value and cannot be changed."""
    month = Month.parse("2026-10")
    assert month == Month(year=2026, month=10)
    assert len({month, Month(year=2026, month=10)}) == 1
    with pytest.raises(ValueError, match="frozen"):
        month.month = 11  # type: ignore[misc]


def test_month_bounds_are_bangkok_midnights_in_utc() -> None:
    """October 2026 runs from 1 Oct 00:00 to 1 Nov 00:00 Bangkok time = 17:00Z the day before."""
    start, end = Month.parse("2026-10").bounds()
    assert start == datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
    assert end == datetime(2026, 10, 31, 17, 0, tzinfo=UTC)
    assert start.utcoffset() == timedelta(0)
    assert end - start == timedelta(days=31)


def test_month_bounds_cross_year_and_handle_leap_february() -> None:
    """December ends at the next year's 1 January; February 2028 has 29 days."""
    _, december_end = Month.parse("2026-12").bounds()
    assert december_end == datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    start, end = Month.parse("2028-02").bounds()
    assert end - start == timedelta(days=29)


def test_month_containing_uses_bangkok_time() -> None:
    """17:00Z on 30 Sep is 00:00 on 1 Oct in Bangkok."""
    assert Month.containing(datetime(2026, 9, 30, 16, 59, tzinfo=UTC)) == Month.parse("2026-09")
    assert Month.containing(datetime(2026, 9, 30, 17, 0, tzinfo=UTC)) == Month.parse("2026-10")
    with pytest.raises(ValueError, match="naive"):
        Month.containing(datetime(2026, 9, 30))


def test_month_next_and_previous_cross_year() -> None:
    """December is followed by January of the next year, and vice versa."""
    assert Month.parse("2026-12").next() == Month.parse("2027-01")
    assert Month.parse("2027-01").previous() == Month.parse("2026-12")
    assert Month.parse("2026-05").next() == Month.parse("2026-06")


def test_format_thai_date_uses_full_month_and_be_year() -> None:
    """date(2026, 10, 5) reads "5 ตุลาคม 2569" (no leading zero)."""
    assert format_thai_date(date(2026, 10, 5)) == "5 ตุลาคม 2569"


def test_format_thai_date_of_aware_datetime_uses_bangkok_date() -> None:
    """An aware datetime is shown as its Bangkok calendar date; a naive one is refused."""
    assert format_thai_date(datetime(2026, 10, 4, 17, 0, tzinfo=UTC)) == "5 ตุลาคม 2569"
    with pytest.raises(ValueError, match="naive"):
        format_thai_date(datetime(2026, 10, 4, 17, 0))


def test_format_thai_datetime_shows_bangkok_time_with_abbreviated_month() -> None:
    """07:03Z on 5 Oct 2026 is "5 ต.ค. 2569 14:03 น."."""
    assert format_thai_datetime(datetime(2026, 10, 5, 7, 3, tzinfo=UTC)) == "5 ต.ค. 2569 14:03 น."


def test_format_thai_datetime_converts_other_zones_and_crosses_new_year() -> None:
    """Any aware datetime is converted to Bangkok, which may be the next day and BE year."""
    assert format_thai_datetime(datetime(2026, 12, 31, 17, 30, tzinfo=UTC)) == "1 ม.ค. 2570 00:30 น."
    tokyo = timezone(timedelta(hours=9))
    assert format_thai_datetime(datetime(2026, 10, 5, 16, 3, tzinfo=tokyo)) == "5 ต.ค. 2569 14:03 น."


def test_format_thai_datetime_refuses_naive() -> None:
    """A naive datetime has no knowable Bangkok time."""
    with pytest.raises(ValueError, match="naive"):
        format_thai_datetime(datetime(2026, 10, 5, 7, 3))


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(0), "0 วินาที"),
        (timedelta(seconds=45), "45 วินาที"),
        (timedelta(seconds=59, microseconds=999_999), "59 วินาที"),
        (timedelta(minutes=1), "1 นาที"),
        (timedelta(minutes=30), "30 นาที"),
        (timedelta(hours=1, minutes=5), "1 ชม. 5 นาที"),
        (timedelta(hours=1, minutes=5, seconds=59), "1 ชม. 5 นาที"),
        (timedelta(hours=2), "2 ชม."),
        (timedelta(days=2, hours=3), "2 วัน 3 ชม."),
        (timedelta(days=1, minutes=5), "1 วัน 5 นาที"),
        (timedelta(days=31), "31 วัน"),
    ],
)
def test_format_thai_duration(duration: timedelta, text: str) -> None:
    """Seconds only under a minute; otherwise days/hours/minutes, zero parts and seconds dropped."""
    assert format_thai_duration(duration) == text


def test_format_thai_duration_refuses_negative() -> None:
    """A negative duration is an upstream bug and must not print as something plausible."""
    with pytest.raises(ValueError, match="negative"):
        format_thai_duration(timedelta(seconds=-1))
