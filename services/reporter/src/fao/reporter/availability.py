"""Monthly availability arithmetic: incident facts in, `MonthlyReport` out. Pure; no I/O, no clock.

Definitions (these are what the printed report means):

- **Month**: the calendar month in Bangkok time, `[month start, month end)` (`Month.bounds()`).
- **Measured period**: `[month start, min(month end, now))`. For a finished month it is the whole
  month; for the month in progress it ends at `now`, so availability is "so far this month" and
  `MonthlyReport.complete` is False. A month that has not started yet cannot be reported.
- **Incident interval**: `[started_at, resolved_at)`; an unresolved incident runs until `now` —
  in practice until the end of the measured period, which never extends past `now`.
- **Downtime** of a system: the length of the *union* of its incident intervals clipped to the
  measured period, so overlapping incidents of one system are not counted twice.
- **Availability %**: `100 × (1 − downtime / measured period)`, computed exactly from
  microsecond counts and rounded half-up to 3 decimals (0.001 %) only at the end.
- **Incident count**: incidents whose interval overlaps the measured period (an incident spanning
  a month boundary counts in both months). Zero-length incidents count in the month they start.
- **MTTR**: mean of `resolved_at − started_at` (the whole incident, not just the part inside the
  month) over incidents *resolved* within the month; None when there are none.
- **MTTA**: mean of `acknowledged_at − started_at` over incidents *acknowledged* within the
  month; None when there are none. Both means therefore count each incident in exactly one month.
- **Totals**: downtime and counts are sums over systems; total availability is
  `100 × (1 − Σ downtime / (number of systems × measured period))`, i.e. the mean of the systems'
  unrounded availabilities; total MTTR/MTTA are means over all incidents, not means of means.

Systems without incidents appear with 100 % availability. Incidents whose `system_id` is not in
the inventory are still reported: they get a row of their own (name = id, `in_inventory=False`)
after the inventory systems, and they count in the totals.

Timestamps out of order (e.g. clock skew between services making `resolved_at` precede
`started_at`) are treated as zero-length, never negative, so one odd fact cannot break a report.

Maintenance windows are not excluded yet. They will plug in at two places: `_measured_downtime`
(subtract the windows from each system's downtime intervals) and the measured period length used
for `availability_percent` (subtract them from the period).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Annotated, Final, NamedTuple

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

from fao.runtime.thai import Month

_ZERO: Final = timedelta(0)
_MICROSECOND: Final = timedelta(microseconds=1)
_PERCENT_STEP: Final = Decimal("0.001")
_DECIMAL: Final = Context(prec=34)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected (read MongoDB with
`tz_aware=True`): guessing their zone would shift every incident by seven hours."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SystemInfo(_Frozen):
    """A system from the inventory, as the report names it."""

    id: str
    name: str
    name_th: str | None = None


class IncidentFact(_Frozen):
    """One incident as the reporter's read model (`report_facts`) keeps it."""

    incident_id: str
    system_id: str
    title: str
    severity: str
    started_at: UtcDatetime
    acknowledged_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    status: str


class SystemSummary(_Frozen):
    """One row of the per-system table."""

    system_id: str
    name: str
    name_th: str | None
    in_inventory: bool
    availability_percent: Decimal
    downtime: timedelta
    incident_count: int
    resolved_count: int
    mttr: timedelta | None
    acknowledged_count: int
    mtta: timedelta | None

    @property
    def display_name(self) -> str:
        """The Thai name when the inventory has one, else the name."""
        return self.name_th or self.name


class ReportTotals(_Frozen):
    """Figures across all systems of the report."""

    system_count: int
    availability_percent: Decimal | None  # None only when there are no systems at all
    downtime: timedelta
    incident_count: int
    resolved_count: int
    mttr: timedelta | None
    acknowledged_count: int
    mtta: timedelta | None


class IncidentLine(_Frozen):
    """One row of the incident table."""

    incident_id: str
    system_id: str
    system_name: str
    title: str
    severity: str
    status: str
    started_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    ongoing: bool
    duration: timedelta  # whole incident: to resolved_at, or to `now` while unresolved
    downtime_in_period: timedelta  # the part inside the measured period


class MonthlyReport(_Frozen):
    """Everything the monthly report shows. All datetimes are UTC."""

    month: Month
    month_start: datetime
    month_end: datetime
    period_end: datetime  # end of the measured period: month_end, or `now` while the month runs
    generated_at: datetime
    complete: bool
    systems: tuple[SystemSummary, ...]
    totals: ReportTotals
    incidents: tuple[IncidentLine, ...]

    @property
    def period(self) -> timedelta:
        """Length of the measured period."""
        return self.period_end - self.month_start


class Interval(NamedTuple):
    """Half-open time interval `[start, end)`."""

    start: datetime
    end: datetime


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


def availability_percent(downtime: timedelta, period: timedelta) -> Decimal:
    """`100 × (1 − downtime / period)` rounded half-up to 0.001; exact until the rounding.

    30 minutes in a 31-day month -> Decimal("99.933").
    """
    period_us = period // _MICROSECOND
    if period_us <= 0:
        raise ValueError(f"period must be positive, got {period}")
    down_us = min(max(downtime // _MICROSECOND, 0), period_us)
    up = _DECIMAL.divide(Decimal(100 * (period_us - down_us)), Decimal(period_us))
    return up.quantize(_PERCENT_STEP, rounding=ROUND_HALF_UP)


def summarize(
    month: Month,
    systems: Sequence[SystemInfo],
    facts: Sequence[IncidentFact],
    now: datetime,
) -> MonthlyReport:
    """Build the report for `month` from the inventory `systems` and incident `facts`, as of `now`.

    `facts` may include incidents of other months; they are filtered here. Raises ValueError for
    a naive `now`, a month that has not started by `now`, or duplicate system/incident ids.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    now = now.astimezone(UTC)
    month_start, month_end = month.bounds()
    if now <= month_start:
        raise ValueError(f"cannot report on {month}: it starts at {month_start.isoformat()}, after now")
    period = Interval(month_start, min(month_end, now))
    _reject_duplicates("system id", (s.id for s in systems))
    _reject_duplicates("incident id", (f.incident_id for f in facts))

    facts_by_system: dict[str, list[IncidentFact]] = defaultdict(list)
    for fact in facts:
        facts_by_system[fact.system_id].append(fact)

    inventory_ids = {s.id for s in systems}
    unknown = [
        SystemInfo(id=system_id, name=system_id)
        for system_id in sorted(facts_by_system.keys() - inventory_ids)
        if any(_overlaps(f, period) for f in facts_by_system[system_id])
    ]
    rows = [
        _summarize_system(system, facts_by_system.get(system.id, []), month, period, in_inventory=True)
        for system in systems
    ]
    rows += [
        _summarize_system(system, facts_by_system[system.id], month, period, in_inventory=False)
        for system in unknown
    ]

    names = {s.id: s.name_th or s.name for s in (*systems, *unknown)}
    incidents = sorted(
        (_incident_line(f, names[f.system_id], period, now) for f in facts if _overlaps(f, period)),
        key=lambda line: (line.started_at, line.incident_id),
    )
    return MonthlyReport(
        month=month,
        month_start=month_start,
        month_end=month_end,
        period_end=period.end,
        generated_at=now,
        complete=period.end == month_end,
        systems=tuple(rows),
        totals=_totals(rows, facts, month, period),
        incidents=tuple(incidents),
    )


def _reject_duplicates(what: str, ids: Iterable[str]) -> None:
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate {what}(s): {', '.join(duplicates)}")


def _overlaps(fact: IncidentFact, period: Interval) -> bool:
    """Whether the incident belongs to `period`: it overlaps it, or (zero-length) starts in it."""
    if fact.started_at >= period.end:
        return False
    if fact.started_at >= period.start:
        return True
    return fact.resolved_at is None or fact.resolved_at > period.start


def _within_month(moment: datetime, month: Month) -> bool:
    start, end = month.bounds()
    return start <= moment < end


def _clipped(fact: IncidentFact, period: Interval) -> Interval:
    """The incident's interval clipped to `period` (empty, start == end, when outside it)."""
    end = period.end if fact.resolved_at is None else min(fact.resolved_at, period.end)
    start = min(max(fact.started_at, period.start), period.end)
    return Interval(start, max(start, end))


def _measured_downtime(facts: Iterable[IncidentFact], period: Interval) -> timedelta:
    return covered_time(_clipped(f, period) for f in facts)


def _repair_times(facts: Iterable[IncidentFact], month: Month) -> list[timedelta]:
    """`resolved_at − started_at` of the incidents resolved within `month`."""
    return [
        max(f.resolved_at - f.started_at, _ZERO)
        for f in facts
        if f.resolved_at is not None and _within_month(f.resolved_at, month)
    ]


def _acknowledge_times(facts: Iterable[IncidentFact], month: Month) -> list[timedelta]:
    """`acknowledged_at − started_at` of the incidents acknowledged within `month`."""
    return [
        max(f.acknowledged_at - f.started_at, _ZERO)
        for f in facts
        if f.acknowledged_at is not None and _within_month(f.acknowledged_at, month)
    ]


def _mean(durations: Sequence[timedelta]) -> timedelta | None:
    if not durations:
        return None
    return sum(durations, _ZERO) / len(durations)


def _summarize_system(
    system: SystemInfo,
    facts: Sequence[IncidentFact],
    month: Month,
    period: Interval,
    *,
    in_inventory: bool,
) -> SystemSummary:
    counted = [f for f in facts if _overlaps(f, period)]
    downtime = _measured_downtime(counted, period)
    repairs = _repair_times(facts, month)
    acks = _acknowledge_times(facts, month)
    return SystemSummary(
        system_id=system.id,
        name=system.name,
        name_th=system.name_th,
        in_inventory=in_inventory,
        availability_percent=availability_percent(downtime, period.end - period.start),
        downtime=downtime,
        incident_count=len(counted),
        resolved_count=len(repairs),
        mttr=_mean(repairs),
        acknowledged_count=len(acks),
        mtta=_mean(acks),
    )


def _totals(
    rows: Sequence[SystemSummary],
    facts: Sequence[IncidentFact],
    month: Month,
    period: Interval,
) -> ReportTotals:
    downtime = sum((r.downtime for r in rows), _ZERO)
    reported = {r.system_id for r in rows}
    relevant = [f for f in facts if f.system_id in reported]
    repairs = _repair_times(relevant, month)
    acks = _acknowledge_times(relevant, month)
    return ReportTotals(
        system_count=len(rows),
        availability_percent=(
            availability_percent(downtime, (period.end - period.start) * len(rows)) if rows else None
        ),
        downtime=downtime,
        incident_count=sum(r.incident_count for r in rows),
        resolved_count=len(repairs),
        mttr=_mean(repairs),
        acknowledged_count=len(acks),
        mtta=_mean(acks),
    )


def _incident_line(fact: IncidentFact, system_name: str, period: Interval, now: datetime) -> IncidentLine:
    clipped = _clipped(fact, period)
    end = now if fact.resolved_at is None else fact.resolved_at
    return IncidentLine(
        incident_id=fact.incident_id,
        system_id=fact.system_id,
        system_name=system_name,
        title=fact.title,
        severity=fact.severity,
        status=fact.status,
        started_at=fact.started_at,
        acknowledged_at=fact.acknowledged_at,
        resolved_at=fact.resolved_at,
        ongoing=fact.resolved_at is None,
        duration=max(end - fact.started_at, _ZERO),
        downtime_in_period=clipped.end - clipped.start,
    )
