"""Monthly availability arithmetic (`fao.reporter.availability`).

Times are written in UTC; Bangkok is UTC+7, so October 2026 (Bangkok) is
[2026-09-30T17:00Z, 2026-10-31T17:00Z) and September 2026 is [2026-08-31T17:00Z, 2026-09-30T17:00Z).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from fao.reporter.availability import (
    IncidentFact,
    Interval,
    MonthlyReport,
    SystemInfo,
    availability_percent,
    covered_time,
    merge_intervals,
    summarize,
    summarize_with_previous,
)
from fao.reporter.periods import ReportPeriod
from fao.runtime.thai import Month

SEPTEMBER = Month.parse("2026-09")
OCTOBER = Month.parse("2026-10")
AFTER_OCTOBER = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
AFTER_SEPTEMBER = datetime(2026, 10, 3, 2, 0, tzinfo=UTC)
PAYROLL = SystemInfo(id="payroll", name="Payroll", name_th="ระบบเงินเดือน")
WEBSITE = SystemInfo(id="website", name="Website")


def utc(day: int, hour: int = 0, minute: int = 0, *, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def fact(
    incident_id: str,
    started_at: datetime,
    resolved_at: datetime | None = None,
    *,
    system_id: str = "payroll",
    acknowledged_at: datetime | None = None,
    status: str | None = None,
) -> IncidentFact:
    return IncidentFact(
        incident_id=incident_id,
        system_id=system_id,
        title=f"incident {incident_id}",
        severity="critical",
        started_at=started_at,
        acknowledged_at=acknowledged_at,
        resolved_at=resolved_at,
        status=status or ("open" if resolved_at is None else "resolved"),
    )


def october(*facts: IncidentFact, now: datetime = AFTER_OCTOBER) -> MonthlyReport:
    return summarize(OCTOBER, [PAYROLL, WEBSITE], facts, now)


# --- intervals and the percentage -------------------------------------------------------------


def test_merge_intervals_unions_overlapping_nested_and_touching() -> None:
    """Overlapping, nested and touching intervals merge; empty ones vanish; output is sorted."""
    merged = merge_intervals(
        [
            Interval(utc(1, 12), utc(1, 13)),
            Interval(utc(1, 10), utc(1, 11)),
            Interval(utc(1, 10, 30), utc(1, 10, 45)),  # nested
            Interval(utc(1, 11), utc(1, 11, 30)),  # touching
            Interval(utc(1, 14), utc(1, 14)),  # empty
        ]
    )
    assert merged == [Interval(utc(1, 10), utc(1, 11, 30)), Interval(utc(1, 12), utc(1, 13))]
    assert covered_time(merged) == timedelta(hours=2, minutes=30)


def test_availability_percent_exact_value_for_30_minutes_in_31_days() -> None:
    """30 min down in a 31-day month is 99.933 % (99.93279… rounded to 3 decimals)."""
    assert availability_percent(timedelta(minutes=30), timedelta(days=31)) == Decimal("99.933")


def test_availability_percent_rounds_half_up() -> None:
    """27 s in 40 000 s is exactly 99.9325 %, printed as 99.933 (half-up, not banker's rounding)."""
    assert availability_percent(timedelta(seconds=27), timedelta(seconds=40_000)) == Decimal("99.933")


def test_availability_percent_keeps_three_decimals_at_the_extremes() -> None:
    """No downtime is 100.000; full downtime is 0.000; one second in a month rounds to 100.000."""
    month = timedelta(days=31)
    assert str(availability_percent(timedelta(0), month)) == "100.000"
    assert str(availability_percent(month, month)) == "0.000"
    assert str(availability_percent(timedelta(seconds=1), month)) == "100.000"


def test_availability_percent_needs_a_positive_period() -> None:
    """A zero-length period has no availability."""
    with pytest.raises(ValueError, match="positive"):
        availability_percent(timedelta(0), timedelta(0))


# --- per-system downtime and availability ----------------------------------------------------


def test_system_without_incidents_is_fully_available() -> None:
    """Every inventory system gets a row; with no incidents it is 100 % with no MTTR/MTTA."""
    report = october()
    assert [row.system_id for row in report.systems] == ["payroll", "website"]
    for row in report.systems:
        assert row.availability_percent == Decimal("100.000")
        assert row.downtime == timedelta(0)
        assert row.incident_count == 0
        assert row.mttr is None
        assert row.mtta is None
    assert report.incidents == ()
    assert report.totals.availability_percent == Decimal("100.000")


def test_thirty_minutes_down_in_october_is_99_933_percent() -> None:
    """A 30-minute incident in a finished 31-day month gives 99.933 % for that system only."""
    report = october(fact("a", utc(5, 7, 3), utc(5, 7, 33)))
    payroll, website = report.systems
    assert payroll.downtime == timedelta(minutes=30)
    assert payroll.availability_percent == Decimal("99.933")
    assert payroll.incident_count == 1
    assert website.availability_percent == Decimal("100.000")


def test_incident_at_2330_bangkok_on_30_september_belongs_partly_to_september() -> None:
    """16:30Z-17:30Z on 30 Sep is 23:30-00:30 Bangkok: 30 min in September, 30 min in October."""
    incident = fact("a", utc(30, 16, 30, month=9), utc(30, 17, 30, month=9))
    september = summarize(SEPTEMBER, [PAYROLL], [incident], AFTER_SEPTEMBER)
    october_report = summarize(OCTOBER, [PAYROLL], [incident], AFTER_OCTOBER)
    assert september.systems[0].downtime == timedelta(minutes=30)
    assert october_report.systems[0].downtime == timedelta(minutes=30)
    assert september.systems[0].incident_count == 1
    assert october_report.systems[0].incident_count == 1


def test_incident_at_0030_bangkok_on_1_october_is_not_in_september() -> None:
    """17:30Z on 30 Sep (UTC date still September) is 1 Oct in Bangkok: October only."""
    incident = fact("a", utc(30, 17, 30, month=9), utc(30, 18, 0, month=9))
    september = summarize(SEPTEMBER, [PAYROLL], [incident], AFTER_SEPTEMBER)
    assert september.systems[0].incident_count == 0
    assert september.systems[0].downtime == timedelta(0)
    assert september.incidents == ()
    assert october(incident).systems[0].downtime == timedelta(minutes=30)


def test_incident_crossing_month_end_is_clipped_at_bangkok_midnight() -> None:
    """16:00Z-18:00Z on 31 Oct straddles 00:00 1 Nov Bangkok: one hour belongs to October."""
    report = october(fact("a", utc(31, 16), utc(31, 18)))
    assert report.systems[0].downtime == timedelta(hours=1)
    assert report.incidents[0].downtime_in_period == timedelta(hours=1)
    assert report.incidents[0].duration == timedelta(hours=2)


def test_incident_resolved_exactly_at_month_start_belongs_to_previous_month_only() -> None:
    """Intervals are half-open: ending at 1 Oct 00:00 Bangkok does not touch October."""
    incident = fact("a", utc(30, 16, month=9), utc(30, 17, month=9))
    assert october(incident).systems[0].incident_count == 0
    assert summarize(SEPTEMBER, [PAYROLL], [incident], AFTER_SEPTEMBER).systems[0].incident_count == 1


def test_incidents_entirely_outside_the_month_are_ignored() -> None:
    """Facts from other months do not affect the report."""
    report = october(
        fact("before", utc(1, month=9), utc(2, month=9)),
        fact("after", utc(2, 3, month=11), utc(2, 4, month=11)),
    )
    assert report.systems[0].incident_count == 0
    assert report.incidents == ()


def test_overlapping_incidents_of_one_system_are_not_double_counted() -> None:
    """10:00-11:00 and 10:30-12:00 on one system are 2 h of downtime, but 2 incidents."""
    report = october(fact("a", utc(5, 10), utc(5, 11)), fact("b", utc(5, 10, 30), utc(5, 12)))
    assert report.systems[0].downtime == timedelta(hours=2)
    assert report.systems[0].incident_count == 2


def test_nested_incident_adds_no_downtime() -> None:
    """An incident entirely inside another one of the same system adds nothing."""
    report = october(fact("outer", utc(5, 10), utc(5, 14)), fact("inner", utc(5, 11), utc(5, 12)))
    assert report.systems[0].downtime == timedelta(hours=4)


def test_simultaneous_incidents_of_different_systems_count_for_each() -> None:
    """Overlap is only merged within a system; the totals sum the systems' downtime."""
    report = october(
        fact("a", utc(5, 10), utc(5, 11)),
        fact("b", utc(5, 10), utc(5, 11), system_id="website"),
    )
    assert [row.downtime for row in report.systems] == [timedelta(hours=1)] * 2
    assert report.totals.downtime == timedelta(hours=2)
    assert report.totals.incident_count == 2


def test_open_incident_in_finished_month_counts_until_month_end() -> None:
    """An unresolved incident is down until the end of the month being reported."""
    report = october(fact("a", utc(31, 5)))  # 12:00 Bangkok on 31 Oct
    assert report.systems[0].downtime == timedelta(hours=12)
    line = report.incidents[0]
    assert line.ongoing
    assert line.downtime_in_period == timedelta(hours=12)
    assert line.duration == AFTER_OCTOBER - utc(31, 5)


def test_month_in_progress_is_measured_up_to_now() -> None:
    """While the month runs, the period ends at `now` and the report says it is incomplete."""
    now = utc(10, 17)  # exactly 10 days into October
    report = october(fact("a", utc(10, 5)), now=now)  # open for 12 h
    assert not report.complete
    assert report.period_end == now
    assert report.period == timedelta(days=10)
    assert report.systems[0].downtime == timedelta(hours=12)
    assert report.systems[0].availability_percent == Decimal("95.000")
    assert report.incidents[0].duration == timedelta(hours=12)


def test_finished_month_is_complete_and_measures_whole_month() -> None:
    """After the month ends the period is the whole month regardless of how late `now` is."""
    report = october(now=datetime(2027, 3, 1, tzinfo=UTC))
    assert report.complete
    assert report.period == timedelta(days=31)
    assert report.period_end == report.month_end


def test_now_is_normalised_to_utc() -> None:
    """`now` may be given in any zone; the report stores UTC."""
    bangkok_now = datetime(2026, 11, 3, 9, 0, tzinfo=timezone(timedelta(hours=7)))
    report = october(now=bangkok_now)
    assert report.generated_at == AFTER_OCTOBER
    assert report.generated_at.utcoffset() == timedelta(0)


def test_month_not_started_yet_cannot_be_reported() -> None:
    """A report for a month that starts after `now` is refused, including at its very first instant."""
    start, _ = OCTOBER.bounds()
    with pytest.raises(ValueError, match="cannot report on 2026-10"):
        october(now=start)


@pytest.mark.parametrize(
    ("period", "named", "starts"),
    [
        (OCTOBER, "2026-10", "2026-10-01T00:00:00+07:00"),
        (ReportPeriod.parse("fy2570"), "fy2570", "2026-10-01T00:00:00+07:00"),
    ],
)
def test_period_not_started_is_named_itself_with_the_previous_one(
    period: Month | ReportPeriod, named: str, starts: str
) -> None:
    """With the change against the period before, the refusal still names the period asked for
    (not the one before it) and its Bangkok start."""
    with pytest.raises(ValueError, match=f"^cannot report on {named}: it starts at {re.escape(starts)} "):
        summarize_with_previous(period, [PAYROLL], [], datetime(2026, 9, 1, tzinfo=UTC))


def test_naive_now_is_refused() -> None:
    """`now` must be timezone-aware: a naive clock reading would shift the period by hours."""
    with pytest.raises(ValueError, match="naive"):
        october(now=datetime(2026, 11, 3))


def test_zero_length_incident_counts_in_its_month_without_downtime() -> None:
    """An incident opened and resolved at the same instant is listed but adds no downtime."""
    report = october(fact("a", utc(5, 10), utc(5, 10)))
    assert report.systems[0].incident_count == 1
    assert report.systems[0].downtime == timedelta(0)
    assert report.systems[0].availability_percent == Decimal("100.000")


def test_resolution_before_start_is_treated_as_zero_length() -> None:
    """Clock skew that puts resolved_at before started_at gives zero, never negative, time."""
    report = october(fact("a", utc(5, 10), utc(5, 9, 59)))
    assert report.systems[0].downtime == timedelta(0)
    assert report.systems[0].mttr == timedelta(0)
    assert report.incidents[0].duration == timedelta(0)


def test_microseconds_are_kept_until_the_percentage() -> None:
    """Durations are exact timedeltas; no float rounding creeps into downtime sums."""
    report = october(
        fact("a", utc(5, 10), utc(5, 10) + timedelta(microseconds=1)),
        fact("b", utc(6, 10), utc(6, 10) + timedelta(microseconds=2)),
    )
    assert report.systems[0].downtime == timedelta(microseconds=3)


# --- MTTR / MTTA ------------------------------------------------------------------------------


def test_mttr_is_mean_time_to_resolve_of_incidents_resolved_in_the_month() -> None:
    """10 min and 20 min repairs give a 15 min MTTR; the open incident is left out."""
    report = october(
        fact("a", utc(5, 10), utc(5, 10, 10)),
        fact("b", utc(6, 10), utc(6, 10, 20)),
        fact("open", utc(7, 10)),
    )
    assert report.systems[0].mttr == timedelta(minutes=15)
    assert report.systems[0].resolved_count == 2
    assert report.systems[0].incident_count == 3


def test_mttr_counts_whole_incident_in_the_month_it_was_resolved() -> None:
    """Started in September, resolved in October: full duration in October's MTTR, none in September's."""
    incident = fact("a", utc(30, 16, month=9), utc(30, 18, month=9))  # 23:00 30 Sep - 01:00 1 Oct BKK
    assert october(incident).systems[0].mttr == timedelta(hours=2)
    september = summarize(SEPTEMBER, [PAYROLL], [incident], AFTER_SEPTEMBER).systems[0]
    assert september.mttr is None
    assert september.incident_count == 1


def test_mttr_is_none_without_resolved_incidents() -> None:
    """No resolved incidents means no MTTR, not zero."""
    assert october(fact("open", utc(7, 10))).systems[0].mttr is None


def test_mtta_is_mean_time_to_acknowledge_over_acknowledged_incidents() -> None:
    """Acks after 2 and 6 minutes give 4 min MTTA; the unacknowledged incident is left out."""
    report = october(
        fact("a", utc(5, 10), utc(5, 11), acknowledged_at=utc(5, 10, 2)),
        fact("b", utc(6, 10), utc(6, 11), acknowledged_at=utc(6, 10, 6)),
        fact("c", utc(7, 10), utc(7, 11)),
    )
    assert report.systems[0].mtta == timedelta(minutes=4)
    assert report.systems[0].acknowledged_count == 2


def test_mtta_counts_each_acknowledgement_in_the_month_it_happened() -> None:
    """Opened 23:50 on 30 Sep, acked 00:05 on 1 Oct (Bangkok): in October's MTTA, not September's,
    although the incident is listed in both months."""
    incident = fact(
        "a",
        utc(30, 16, 50, month=9),
        utc(30, 18, month=9),
        acknowledged_at=utc(30, 17, 5, month=9),
    )
    september = summarize(SEPTEMBER, [PAYROLL], [incident], AFTER_SEPTEMBER).systems[0]
    assert september.incident_count == 1
    assert september.mtta is None
    assert october(incident).systems[0].mtta == timedelta(minutes=15)


def test_mtta_is_none_without_acknowledgements() -> None:
    """No acknowledged incidents means no MTTA."""
    assert october(fact("a", utc(5, 10), utc(5, 11))).systems[0].mtta is None


def test_mean_keeps_sub_second_precision() -> None:
    """The mean of 1 s and 2 s is 1.5 s exactly (timedelta arithmetic, no floats)."""
    report = october(
        fact("a", utc(5, 10), utc(5, 10) + timedelta(seconds=1)),
        fact("b", utc(6, 10), utc(6, 10) + timedelta(seconds=2)),
    )
    assert report.systems[0].mttr == timedelta(seconds=1, microseconds=500_000)


# --- totals, unknown systems, incident list ---------------------------------------------------


def test_totals_mttr_is_mean_over_all_incidents_not_mean_of_means() -> None:
    """Payroll repairs 10 and 20 min, website 60 min: total MTTR is 30 min (not 37.5)."""
    report = october(
        fact("a", utc(5, 10), utc(5, 10, 10)),
        fact("b", utc(6, 10), utc(6, 10, 20)),
        fact("c", utc(7, 10), utc(7, 11), system_id="website"),
    )
    assert report.totals.mttr == timedelta(minutes=30)
    assert report.totals.resolved_count == 3


def test_totals_availability_is_over_all_system_time() -> None:
    """Two systems, one down 31 h in a 31-day month: 100 × (1 − 31 h / 62 days) = 97.917 %."""
    report = october(fact("a", utc(5), utc(6, 7)))
    assert report.systems[0].availability_percent == Decimal("95.833")
    assert report.totals.availability_percent == Decimal("97.917")
    assert report.totals.system_count == 2


def test_report_without_systems_has_no_total_availability() -> None:
    """With nothing to measure, total availability is None rather than a made-up 100 %."""
    report = summarize(OCTOBER, [], [], AFTER_OCTOBER)
    assert report.systems == ()
    assert report.totals.availability_percent is None
    assert report.totals.incident_count == 0


def test_incidents_of_unknown_systems_are_still_reported() -> None:
    """An unknown system id gets its own row (name = id) after the inventory and counts in totals."""
    report = october(fact("x", utc(5, 10), utc(5, 11), system_id="retired-erp"))
    assert [row.system_id for row in report.systems] == ["payroll", "website", "retired-erp"]
    unknown = report.systems[2]
    assert (unknown.name, unknown.name_th, unknown.in_inventory) == ("retired-erp", None, False)
    assert unknown.downtime == timedelta(hours=1)
    assert report.incidents[0].system_name == "retired-erp"
    assert report.totals.system_count == 3
    assert report.totals.incident_count == 1


def test_unknown_system_with_no_incident_in_the_month_gets_no_row() -> None:
    """Only unknown systems with an incident in the reported month appear."""
    report = october(fact("x", utc(5, month=9), utc(6, month=9), system_id="retired-erp"))
    assert [row.system_id for row in report.systems] == ["payroll", "website"]


def test_incident_list_is_sorted_by_start_with_names_and_durations() -> None:
    """Incidents are listed in start order (ties by id) with the system's Thai name and duration."""
    report = october(
        fact("c", utc(9, 10), utc(9, 10, 45), system_id="website"),
        fact("b", utc(5, 10), utc(5, 11, 5)),
        fact("a", utc(5, 10), utc(5, 10, 1)),
    )
    assert [line.incident_id for line in report.incidents] == ["a", "b", "c"]
    assert [line.system_name for line in report.incidents] == ["ระบบเงินเดือน", "ระบบเงินเดือน", "Website"]
    assert [line.duration for line in report.incidents] == [
        timedelta(minutes=1),
        timedelta(hours=1, minutes=5),
        timedelta(minutes=45),
    ]
    assert not any(line.ongoing for line in report.incidents)


def test_duplicate_ids_are_refused() -> None:
    """Duplicate system ids or incident ids are an upstream bug; they would double-count."""
    with pytest.raises(ValueError, match="duplicate system id"):
        summarize(OCTOBER, [PAYROLL, PAYROLL], [], AFTER_OCTOBER)
    with pytest.raises(ValueError, match=r"duplicate incident id\(s\): a$"):
        october(fact("a", utc(5, 10), utc(5, 11)), fact("a", utc(6, 10), utc(6, 11)))


# --- input models -----------------------------------------------------------------------------


def test_incident_fact_refuses_naive_datetimes() -> None:
    """Naive timestamps (e.g. PyMongo without tz_aware=True) are rejected, not guessed."""
    with pytest.raises(ValidationError, match="timezone"):
        fact("a", datetime(2026, 10, 5, 10, 0))


def test_incident_fact_normalises_to_utc() -> None:
    """Aware timestamps in any zone are stored as UTC."""
    bangkok = timezone(timedelta(hours=7))
    incident = fact("a", datetime(2026, 10, 5, 17, 0, tzinfo=bangkok))
    assert incident.started_at == utc(5, 10)
    assert incident.started_at.utcoffset() == timedelta(0)


def test_models_are_frozen_and_forbid_unknown_fields() -> None:
    """Inputs are immutable values; misspelt fields fail loudly."""
    incident = fact("a", utc(5, 10))
    with pytest.raises(ValidationError, match="frozen"):
        incident.status = "resolved"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        SystemInfo(id="x", name="X", nme_th="เอ็กซ์")  # type: ignore[call-arg]
