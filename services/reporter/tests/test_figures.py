"""Report figures beyond plain availability (`fao.reporter.availability`): maintenance, dependency
children, kinds and severities, MTTA/MTTR/MTBF, SLA, longest, worst, change, fiscal years.

Times are UTC; October 2026 (Bangkok) is [2026-09-30T17:00Z, 2026-10-31T17:00Z), 31 days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fao.reporter.availability import (
    IncidentFact,
    MaintenanceSpan,
    MonthlyReport,
    ReportOptions,
    SystemInfo,
    SystemSummary,
    previous_now,
    summarize,
    summarize_with_previous,
)
from fao.reporter.periods import ReportPeriod
from fao.runtime.thai import Month

OCTOBER = Month.parse("2026-10")
AFTER_OCTOBER = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
MONTH = timedelta(days=31)
H = timedelta(hours=1)
M = timedelta(minutes=1)
WEB = SystemInfo(id="web", name="Website", team="apps", team_name="ทีมพัฒนาระบบงาน", sla_target=Decimal("99.9"))
MAIL = SystemInfo(id="mail", name="Mail", team="infra", sla_target=Decimal("99.5"))
CORE = SystemInfo(id="core", name="Core network", team="infra")


def utc(day: int, hour: int = 0, minute: int = 0, *, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def fact(
    incident_id: str,
    started_at: datetime,
    resolved_at: datetime | None = None,
    *,
    system_id: str = "web",
    severity: str = "major",
    kind: str = "outage",
    acknowledged_at: datetime | None = None,
    muted: str | None = None,
    parent: str | None = None,
    maintenance: tuple[tuple[datetime, datetime | None], ...] = (),
) -> IncidentFact:
    return IncidentFact(
        incident_id=incident_id,
        system_id=system_id,
        title=f"incident {incident_id}",
        severity=severity,
        kind=kind,
        started_at=started_at,
        acknowledged_at=acknowledged_at,
        resolved_at=resolved_at,
        status="open" if resolved_at is None else "resolved",
        muted=muted,
        parent_incident_id=parent,
        alerted=muted is None,
        maintenance=tuple(MaintenanceSpan(start=s, end=e) for s, e in maintenance),
    )


def october(
    *facts: IncidentFact,
    now: datetime = AFTER_OCTOBER,
    include_maintenance: bool = False,
    worst_count: int = 10,
) -> MonthlyReport:
    options = ReportOptions(include_maintenance=include_maintenance, worst_count=worst_count)
    return summarize(OCTOBER, [WEB, MAIL, CORE], facts, now, options=options)


def row(report: MonthlyReport, system_id: str = "web") -> SystemSummary:
    return next(r for r in report.systems if r.system_id == system_id)


# --- downtime with maintenance, month boundaries, open incidents -----------------------------

DOWNTIME_CASES = [
    pytest.param([fact("a", utc(5, 1), utc(5, 3))], {}, 2 * H, timedelta(0), id="plain two hours"),
    pytest.param(
        [fact("a", utc(5, 1), utc(5, 3), maintenance=((utc(5, 1), utc(5, 2)),))],
        {},
        H,
        H,
        id="first hour in maintenance is planned, not downtime",
    ),
    pytest.param(
        [fact("a", utc(5, 1), utc(5, 3), maintenance=((utc(5, 1), utc(5, 2)),))],
        {"include_maintenance": True},
        2 * H,
        H,
        id="maintenance included on request",
    ),
    pytest.param(
        [fact("a", utc(5, 1), utc(5, 5), maintenance=((utc(5, 1), utc(5, 2)), (utc(5, 1, 30), utc(5, 3))))],
        {},
        2 * H,
        2 * H,
        id="overlapping maintenance spans count once",
    ),
    pytest.param(
        [fact("a", utc(5, 1), utc(5, 5), maintenance=((utc(5, 4), None),))],
        {},
        3 * H,
        H,
        id="maintenance span still open runs to the incident's end",
    ),
    pytest.param(
        [fact("a", utc(5, 1), utc(5, 3), muted="maintenance", maintenance=((utc(5, 0), utc(5, 6)),))],
        {},
        timedelta(0),
        2 * H,
        id="incident wholly inside a window is no downtime",
    ),
    pytest.param(
        [
            fact("a", utc(5, 1), utc(5, 3), maintenance=((utc(5, 1), utc(5, 2)),)),
            fact("b", utc(5, 1, 30), utc(5, 2, 30)),
        ],
        {},
        timedelta(minutes=90),
        timedelta(minutes=30),
        id="another incident's downtime inside one's window still counts",
    ),
    pytest.param(
        [fact("a", utc(30, 16), None)],
        {},
        timedelta(hours=25),
        timedelta(0),
        id="open at month end counts to it",
    ),
    pytest.param(
        [fact("a", utc(31, 16), utc(31, 19))],
        {},
        H,
        timedelta(0),
        id="outage crossing the month end is split at Bangkok midnight",
    ),
    pytest.param(
        [fact("a", utc(30, 16, month=9), utc(30, 18, month=9))],
        {},
        H,
        timedelta(0),
        id="outage crossing the month start keeps only October's part",
    ),
    pytest.param([], {}, timedelta(0), timedelta(0), id="zero incidents"),
]


@pytest.mark.parametrize(("facts", "options", "downtime", "planned"), DOWNTIME_CASES)
def test_downtime_and_planned_downtime(
    facts: list[IncidentFact], options: dict[str, bool], downtime: timedelta, planned: timedelta
) -> None:
    web = row(october(*facts, include_maintenance=options.get("include_maintenance", False)))
    assert web.downtime == downtime
    assert web.planned_downtime == planned


def test_current_month_counts_an_open_incident_to_now() -> None:
    """Mid-month, an open incident is down until `now`, and availability is over the days so far."""
    now = utc(10, 17)
    report = october(fact("a", utc(10, 5)), now=now)
    assert row(report).downtime == 12 * H
    assert not report.complete
    assert report.period == timedelta(days=10)
    assert row(report).availability_percent == Decimal("95.000")


# --- incidents by severity and kind; dependency children ---------------------------------------


def test_counts_by_severity_and_kind_include_unknown_kinds() -> None:
    """Known kinds and a kind this release does not know ("degraded") are all counted by name."""
    report = october(
        fact("a", utc(1, 1), utc(1, 2), severity="critical"),
        fact("b", utc(2, 1), utc(2, 2), kind="flapping", severity="minor"),
        fact("c", utc(3, 1), utc(3, 2), kind="slow", system_id="mail"),
        fact("d", utc(4, 1), utc(4, 2), kind="manual", system_id="mail"),
        fact("e", utc(5, 1), utc(5, 2), kind="degraded", system_id="core"),
    )
    assert dict(report.totals.by_kind) == {"outage": 1, "flapping": 1, "slow": 1, "manual": 1, "degraded": 1}
    assert dict(report.totals.by_severity) == {"critical": 1, "minor": 1, "major": 3}
    assert dict(row(report, "mail").by_kind) == {"slow": 1, "manual": 1}
    assert report.totals.incident_count == 5


def test_dependency_child_counts_downtime_for_the_child_but_not_as_an_incident() -> None:
    """A child suppressed under its parent's incident: down for the child, one incident in the totals,
    left out of MTTA/MTTR (nobody was alerted for it)."""
    report = october(
        fact("p", utc(5, 1), utc(5, 3), system_id="core", acknowledged_at=utc(5, 1, 10)),
        fact("c", utc(5, 1, 5), utc(5, 3), system_id="web", muted="dependency", parent="p"),
    )
    web, core = row(report, "web"), row(report, "core")
    assert web.downtime == timedelta(minutes=115)
    assert (web.incident_count, web.dependency_count) == (1, 1)
    assert web.mttr is None
    assert web.unacknowledged_count == 0
    assert core.mttr == 2 * H
    assert (report.totals.incident_count, report.totals.dependant_count) == (1, 1)
    assert report.totals.mttr == 2 * H
    assert report.totals.mtta == 10 * M
    assert report.totals.downtime == 2 * H + timedelta(minutes=115)


# --- acknowledgement, repair, failures ----------------------------------------------------------

ACK_CASES = [
    pytest.param(
        [fact("a", utc(1, 1), utc(1, 2), acknowledged_at=utc(1, 1, 5))], 5 * M, 1, 0, id="acknowledged"
    ),
    pytest.param([fact("a", utc(1, 1), utc(1, 2))], None, 0, 1, id="resolved, never acknowledged"),
    pytest.param([fact("a", utc(31, 1))], None, 0, 1, id="open, unacknowledged at month end"),
    pytest.param(
        [fact("a", utc(31, 16), acknowledged_at=utc(31, 17, 30))],
        None,
        0,
        1,
        id="acknowledged only next month: not this month's MTTA",
    ),
    pytest.param(
        [fact("a", utc(1, 1), utc(1, 2), muted="maintenance")],
        None,
        0,
        0,
        id="muted for maintenance: nobody told",
    ),
    pytest.param(
        [
            fact("a", utc(1, 1), utc(1, 2), acknowledged_at=utc(1, 1, 4)),
            fact("b", utc(2, 1), utc(2, 2), acknowledged_at=utc(2, 1, 10)),
            fact("c", utc(3, 1), utc(3, 2)),
        ],
        7 * M,
        2,
        1,
        id="mean over the acknowledged ones only",
    ),
]


@pytest.mark.parametrize(("facts", "mtta", "acknowledged", "never"), ACK_CASES)
def test_mtta_and_never_acknowledged(
    facts: list[IncidentFact], mtta: timedelta | None, acknowledged: int, never: int
) -> None:
    report = october(*facts)
    assert report.totals.mtta == mtta
    assert report.totals.acknowledged_count == acknowledged
    assert report.totals.unacknowledged_count == never


def test_mtbf_is_up_time_over_failures_started_in_the_month() -> None:
    """Two failures of one hour each: (31 days − 2 h) / 2. A failure carried over from September
    is downtime but not a failure of October."""
    report = october(
        fact("a", utc(1, 1), utc(1, 2)),
        fact("b", utc(2, 1), utc(2, 2)),
        fact("c", utc(30, 16, month=9), utc(30, 18, month=9), system_id="mail"),
    )
    assert row(report).mtbf == (MONTH - 2 * H) / 2
    assert row(report, "mail").failure_count == 0
    assert row(report, "mail").mtbf is None
    assert row(report, "core").mtbf is None
    assert report.totals.mtbf == (3 * MONTH - 3 * H) / 2


def test_degraded_kinds_are_counted_but_are_no_downtime_and_no_failure() -> None:
    """A slow system and a certificate near its end: usable, so no downtime and no failure; the
    one outage still counts."""
    report = october(
        fact("s", utc(3, 1), utc(3, 9), kind="slow"),
        fact("x", utc(4, 1), utc(6, 1), kind="expiring"),
        fact("o", utc(5, 1), utc(5, 2)),
    )
    web = row(report)
    assert web.incident_count == 3
    assert web.by_kind == {"slow": 1, "expiring": 1, "outage": 1}
    assert web.downtime == H
    assert web.failure_count == 1
    assert web.mtbf == MONTH - H
    slow = next(line for line in report.incidents if line.incident_id == "s")
    assert slow.downtime_in_period == timedelta(0)
    assert slow.duration == 8 * H
    assert report.longest is not None
    assert report.longest.incident_id == "o"


# --- SLA, longest, worst -------------------------------------------------------------------------

SLA_CASES = [
    pytest.param(timedelta(minutes=44), True, id="44 min in October is 99.901 %: met 99.9"),
    pytest.param(timedelta(minutes=45), False, id="45 min is 99.899 %: missed 99.9"),
    pytest.param(timedelta(0), True, id="no downtime: met"),
]


@pytest.mark.parametrize(("down", "met"), SLA_CASES)
def test_sla_met_or_missed(down: timedelta, met: bool) -> None:
    start = utc(10, 1)
    report = october(*([fact("a", start, start + down)] if down else []))
    assert row(report).sla_met is met
    assert row(report, "core").sla_met is None  # no target
    assert report.totals.sla_met_count == (2 if met else 1)
    assert report.totals.sla_missed_count == (0 if met else 1)


def test_longest_outage_and_worst_systems() -> None:
    """Longest is by downtime inside the month; worst lists affected systems, least available first."""
    report = october(
        fact("a", utc(1, 1), utc(1, 2), system_id="web"),
        fact("b", utc(2, 1), utc(2, 4), system_id="mail"),
        fact("c", utc(31, 10), utc(31, 22), system_id="web"),  # 7 h of it in October
        worst_count=1,
    )
    assert report.longest is not None
    assert report.longest.incident_id == "c"
    assert report.longest.downtime_in_period == 7 * H
    assert report.worst == ("web",)
    assert october(fact("a", utc(1, 1), utc(1, 2)), worst_count=5).worst == ("web",)
    assert october().worst == ()
    assert october().longest is None


# --- change against the previous period ----------------------------------------------------------


def test_change_against_previous_month() -> None:
    """September had 3 h of downtime and 2 incidents, October 1 h and 1: −2 h, −1, and the
    availability difference in percentage points."""
    facts = [
        fact("s1", utc(10, 1, month=9), utc(10, 2, month=9)),
        fact("s2", utc(11, 1, month=9), utc(11, 3, month=9)),
        fact("o1", utc(5, 1), utc(5, 2)),
    ]
    report = summarize_with_previous(OCTOBER, [WEB], facts, AFTER_OCTOBER)
    change = row(report).change
    assert change is not None
    assert change.downtime == -2 * H
    assert change.incident_count == -1
    assert change.availability_points == Decimal("99.866") - Decimal("99.583")
    assert report.totals.change is not None
    assert report.totals.change.incident_count == -1


def test_previous_period_is_measured_over_the_same_elapsed_time_while_running() -> None:
    """On 10 October 17:00Z, September is compared over its first 10 days 17 h."""
    assert previous_now(OCTOBER, utc(10, 17)) == utc(10, 17, month=9)
    assert previous_now(OCTOBER, AFTER_OCTOBER) == utc(30, 17, month=9)
    february = Month.parse("2027-02")
    # March (31 days) after February (28): a finished month compares with the whole previous one.
    assert previous_now(february.next(), datetime(2027, 4, 2, tzinfo=UTC)) == february.bounds()[1]


# --- fiscal year ---------------------------------------------------------------------------------


def test_fiscal_year_to_date_covers_october_to_now() -> None:
    """fy2570 on 3 November 2026: two months so far, incidents of both counted, one per day row."""
    period = ReportPeriod.parse("fy2570")
    facts = [fact("o", utc(5, 1), utc(5, 2)), fact("n", utc(1, 1, month=11), utc(1, 3, month=11))]
    report = summarize(period, [WEB], facts, AFTER_OCTOBER)
    assert not report.complete
    assert report.month_start == utc(30, 17, month=9)
    assert row(report).downtime == 3 * H
    assert report.totals.incident_count == 2
    assert len(report.days) == 34  # 1 October .. 3 November 09:00 (Bangkok) so far
    assert sum(sum(d.by_severity.values()) for d in report.days) == 2


def test_days_and_teams() -> None:
    """The timeline counts root incidents per Bangkok day; downtime is summed per team."""
    report = october(
        fact("a", utc(4, 18), utc(4, 19)),  # 5 Oct 01:00 Bangkok
        fact("b", utc(5, 1), utc(5, 2), system_id="mail", severity="critical"),
        fact("c", utc(5, 1), utc(5, 2), system_id="core", muted="dependency", parent="b"),
    )
    fifth = next(d for d in report.days if d.day.day == 5)
    assert dict(fifth.by_severity) == {"major": 1, "critical": 1}
    assert len(report.days) == 31
    teams = {t.team: t.downtime for t in report.teams}
    assert teams == {"infra": 2 * H, "apps": H}
    assert report.teams[0].team == "infra"
