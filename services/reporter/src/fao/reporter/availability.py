"""Report arithmetic: incident facts in, `MonthlyReport` out. Pure; no I/O, no clock.

Definitions (these are what the printed report means):

- **Period**: a Bangkok calendar month, or a fiscal year (`fao.reporter.periods`), `[start, end)`.
- **Measured period**: `[start, min(end, now))`. For a finished period it is all of it; for the
  one in progress it ends at `now` ("so far"), and `MonthlyReport.complete` is False. A period
  that has not started yet cannot be reported.
- **Incident interval**: `[started_at, resolved_at)`; an unresolved incident runs to the end of the
  measured period (the month's end, or `now` for the month in progress). Intervals are clipped
  to the measured period, so an outage crossing a month boundary is split at it.
- **Maintenance** (`ReportOptions.include_maintenance`, default False): the parts of an incident
  inside maintenance windows (`Incident.maintenance`, recorded by the correlator) are *planned
  downtime*. By default they are left out of downtime and availability and shown on their own;
  the measured period itself is not shortened (the stream records windows only where they met an
  incident, and a system that was fine during its window was available).
- **Downtime** of a system: the length of the *union* of its incident intervals (without their
  maintenance parts unless included), so overlapping incidents are not counted twice. Incidents
  of a *degraded* kind (`DEGRADED_KINDS`: `slow` — answering, but slower than its limit —,
  `expiring` — a certificate near its end) are counted and listed but add no downtime and are no
  failure for MTBF: the system was usable.
- **Availability %**: `100 × (1 − downtime / measured period)`, exact from microsecond counts,
  rounded half-up to 3 decimals (0.001 %) only at the end. **SLA**: met when that rounded figure is
  at least the system's `sla_target`.
- **Dependency-suppressed incidents** (a child under a parent system's incident) *count* for the
  child's downtime and availability: its users could not use it, whatever the cause. They are
  listed in the child's incident count and its `dependency_count`, but are not incidents of their
  own in the totals (`ReportTotals.incident_count` counts root incidents, `dependant_count` the
  children), and are left out of MTTA/MTTR and the never-acknowledged count: nobody was alerted
  for them, the parent's incident was the one to repair.
- **Incident count**: incidents overlapping the measured period (one spanning a month boundary
  counts in both months); zero-length incidents count in the period they start. Counted by
  severity and by kind (`outage`, `flapping`, `slow`, `manual`, and any kind a newer correlator
  sends, under its own name).
- **MTTR**: mean `resolved_at − started_at` (the whole incident) over root incidents *resolved*
  within the period. **MTTA**: mean `acknowledged_at − started_at` over root incidents
  *acknowledged* within the period; each incident therefore counts in exactly one period.
  **Never acknowledged**: counted root incidents that were alerted (not muted) and had no
  acknowledgement by the end of the measured period.
- **MTBF**: `(measured period − downtime) / failures`, failures being the incidents that *started*
  in the measured period (None without failures); the totals use the sums over all systems.
- **Longest outage**: the incident with the most downtime inside the measured period.
- **Worst systems**: systems with downtime or incidents, lowest availability first (then most
  downtime, most incidents, id), at most `ReportOptions.worst_count`.
- **Change**: against the previous period, measured over the same elapsed time when the period
  is still running (`previous_now`).
- **Totals**: downtime and counts are sums; total availability is over all systems' time (the mean
  of the unrounded availabilities); MTTR/MTTA are means over all incidents, not means of means.

Systems without incidents appear with 100 % availability. Incidents whose `system_id` is not in
the inventory get a row of their own (name = id, `in_inventory=False`) and count in the totals.
Timestamps out of order (clock skew making `resolved_at` precede `started_at`) are zero-length.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from fao.reporter.intervals import Interval, clip, covered_time, intersect, merge_intervals, subtract
from fao.reporter.periods import ReportPeriod
from fao.runtime.thai import Month, to_bangkok

__all__ = [
    "IncidentFact",
    "IncidentLine",
    "Interval",
    "MaintenanceSpan",
    "MonthlyReport",
    "ReportOptions",
    "ReportTotals",
    "SystemInfo",
    "SystemSummary",
    "availability_percent",
    "covered_time",
    "merge_intervals",
    "previous_now",
    "summarize",
    "summarize_with_previous",
]

_ZERO: Final = timedelta(0)
_MICROSECOND: Final = timedelta(microseconds=1)
_DAY: Final = timedelta(days=1)
_PERCENT_STEP: Final = Decimal("0.001")
_DECIMAL: Final = Context(prec=34)
SEVERITIES: Final = ("critical", "major", "minor")
KNOWN_KINDS: Final = ("outage", "flapping", "slow", "manual")


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
    team: str | None = None
    team_name: str | None = None
    sla_target: Decimal | None = None


class MaintenanceSpan(_Frozen):
    """Part of an incident inside a maintenance window; `end` None while it lasts."""

    start: UtcDatetime
    end: UtcDatetime | None = None


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
    # A plain string, not the schema's Literal: a kind added by a newer correlator is reported
    # under its own name instead of making the fact unreadable.
    kind: str = "outage"
    muted: str | None = None
    alerted: bool = False
    parent_incident_id: str | None = None
    maintenance: tuple[MaintenanceSpan, ...] = ()

    @property
    def dependant(self) -> bool:
        """Suppressed under an ancestor system's incident."""
        return self.parent_incident_id is not None or self.muted == "dependency"


class ReportOptions(_Frozen):
    include_maintenance: bool = False
    worst_count: int = Field(default=10, ge=0)


class Change(_Frozen):
    """This period minus the previous one (None where either has no value)."""

    availability_points: Decimal | None
    downtime: timedelta
    incident_count: int


class SystemSummary(_Frozen):
    """One row of the per-system table."""

    system_id: str
    name: str
    name_th: str | None
    team: str | None = None
    team_name: str | None = None
    in_inventory: bool
    availability_percent: Decimal
    downtime: timedelta
    planned_downtime: timedelta = _ZERO
    incident_count: int
    dependency_count: int = 0
    by_severity: Mapping[str, int] = Field(default_factory=dict)
    by_kind: Mapping[str, int] = Field(default_factory=dict)
    resolved_count: int
    mttr: timedelta | None
    acknowledged_count: int
    mtta: timedelta | None
    unacknowledged_count: int = 0
    failure_count: int = 0
    mtbf: timedelta | None = None
    sla_target: Decimal | None = None
    change: Change | None = None

    @property
    def display_name(self) -> str:
        """The Thai name when the inventory has one, else the name."""
        return self.name_th or self.name

    @property
    def sla_met(self) -> bool | None:
        """Whether the availability reached the SLA target; None without a target."""
        return None if self.sla_target is None else self.availability_percent >= self.sla_target


class ReportTotals(_Frozen):
    """Figures across all systems of the report."""

    system_count: int
    availability_percent: Decimal | None  # None only when there are no systems at all
    downtime: timedelta
    planned_downtime: timedelta = _ZERO
    incident_count: int  # root incidents (dependency-suppressed children are `dependant_count`)
    dependant_count: int = 0
    by_severity: Mapping[str, int] = Field(default_factory=dict)
    by_kind: Mapping[str, int] = Field(default_factory=dict)
    resolved_count: int
    mttr: timedelta | None
    acknowledged_count: int
    mtta: timedelta | None
    unacknowledged_count: int = 0
    failure_count: int = 0
    mtbf: timedelta | None = None
    sla_met_count: int = 0
    sla_missed_count: int = 0
    change: Change | None = None


class IncidentLine(_Frozen):
    """One row of the incident table."""

    incident_id: str
    system_id: str
    system_name: str
    title: str
    severity: str
    kind: str = "outage"
    status: str
    started_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    ongoing: bool
    dependant: bool = False
    duration: timedelta  # whole incident: to resolved_at, or to `now` while unresolved
    downtime_in_period: timedelta  # the part inside the measured period (maintenance per options)
    planned_in_period: timedelta = _ZERO  # the part inside maintenance windows


class DayCount(_Frozen):
    """Root incidents that started on one Bangkok day, by severity."""

    day: date
    by_severity: Mapping[str, int]


class TeamDowntime(_Frozen):
    team: str | None
    team_name: str | None
    downtime: timedelta
    system_count: int


class ReviewTeam(_Frozen):
    """A team asked in the owner review that has not confirmed its systems and members."""

    team: str
    team_name: str | None
    status: Literal["not_confirmed", "needs_changes"]


class UnownedSystem(_Frozen):
    """A system none of whose team's channels works (``fao.runtime.reachability``)."""

    system: str
    name: str
    name_th: str | None
    team: str
    team_name: str | None


class LeftGroup(_Frozen):
    """A LINE group of a team's config that the bot has left (``fao.runtime.reachability``)."""

    group: str
    group_name: str | None
    team: str
    team_name: str | None


class OwnerReviewState(_Frozen):
    """The latest quarterly owner review sent by the period's end (``fao.runtime.owner_review``),
    with the answers as of the report's generation (no round: ``round_id`` None); and, as of the
    report's generation too, the systems without a reachable owner and the LINE groups the bot
    has left (the same definitions as ``fao doctor``)."""

    round_id: str | None = None
    sent_at: datetime | None = None
    team_count: int = 0
    """Teams asked."""
    unconfirmed: tuple[ReviewTeam, ...] = ()
    unowned_systems: tuple[UnownedSystem, ...] = ()
    left_groups: tuple[LeftGroup, ...] = ()


class MonthlyReport(_Frozen):
    """Everything a report shows. All datetimes are UTC."""

    report_period: ReportPeriod
    month_start: datetime
    month_end: datetime
    period_end: datetime  # end of the measured period: the period's end, or `now` while it runs
    generated_at: datetime
    complete: bool
    options: ReportOptions = ReportOptions()
    systems: tuple[SystemSummary, ...]
    totals: ReportTotals
    incidents: tuple[IncidentLine, ...]
    longest: IncidentLine | None = None
    worst: tuple[str, ...] = ()
    days: tuple[DayCount, ...] = ()
    teams: tuple[TeamDowntime, ...] = ()
    skipped_facts: tuple[str, ...] = ()  # stored facts that could not be read: "<id>: <reason>"
    owner_review: OwnerReviewState | None = None

    @property
    def month(self) -> Month:
        """The period's first month (the month of a monthly report)."""
        return self.report_period.first

    @property
    def period(self) -> timedelta:
        """Length of the measured period."""
        return self.period_end - self.month_start


# Kinds that say a system was usable but not well: counted, never downtime.
DEGRADED_KINDS: Final = frozenset({"slow", "expiring"})


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


def _as_period(period: Month | ReportPeriod) -> ReportPeriod:
    return ReportPeriod.month(period) if isinstance(period, Month) else period


def _check_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now.astimezone(UTC)


def _check_started(period: ReportPeriod, now: datetime) -> datetime:
    """`now` in UTC; ValueError naming `period` when it has not started by `now`."""
    now = _check_now(now)
    start = period.bounds()[0]
    if now <= start:
        raise ValueError(
            f"cannot report on {period}: it starts at {to_bangkok(start).isoformat()} (Bangkok), after now"
        )
    return now


def previous_now(period: Month | ReportPeriod, now: datetime) -> datetime:
    """The `now` at which to measure the previous period for a fair comparison: its end when
    `period` is finished, else the same time after its start as has passed in `period`."""
    current = _as_period(period)
    now = _check_now(now)
    start, end = current.bounds()
    previous_start, previous_end = current.previous().bounds()
    if now >= end:
        return previous_end
    return min(previous_end, previous_start + (now - start))


def summarize_with_previous(
    period: Month | ReportPeriod,
    systems: Sequence[SystemInfo],
    facts: Sequence[IncidentFact],
    now: datetime,
    *,
    options: ReportOptions | None = None,
    skipped: Sequence[str] = (),
) -> MonthlyReport:
    """`summarize` of `period`, with the change against the previous period filled in (`facts`
    must then cover both periods)."""
    current = _as_period(period)
    _check_started(current, now)  # before the previous period, so the error names this one
    previous = summarize(current.previous(), systems, facts, previous_now(current, now), options=options)
    return summarize(current, systems, facts, now, options=options, previous=previous, skipped=skipped)


def summarize(
    period: Month | ReportPeriod,
    systems: Sequence[SystemInfo],
    facts: Sequence[IncidentFact],
    now: datetime,
    *,
    options: ReportOptions | None = None,
    previous: MonthlyReport | None = None,
    skipped: Sequence[str] = (),
) -> MonthlyReport:
    """Build the report for `period` from the inventory `systems` and incident `facts`, as of `now`.

    `facts` may include incidents of other periods; they are filtered here. `previous` (the
    previous period's report) fills in the changes. Raises ValueError for a naive `now`, a period
    that has not started by `now`, or duplicate system/incident ids.
    """
    report_period = _as_period(period)
    options = options or ReportOptions()
    now = _check_started(report_period, now)
    start, end = report_period.bounds()
    measured = Interval(start, min(end, now))
    _reject_duplicates("system id", (s.id for s in systems))
    _reject_duplicates("incident id", (f.incident_id for f in facts))

    facts_by_system: dict[str, list[IncidentFact]] = defaultdict(list)
    for fact in facts:
        facts_by_system[fact.system_id].append(fact)

    inventory_ids = {s.id for s in systems}
    unknown = [
        SystemInfo(id=system_id, name=system_id)
        for system_id in sorted(facts_by_system.keys() - inventory_ids)
        if any(_overlaps(f, measured) for f in facts_by_system[system_id])
    ]
    calc = _Calculation(measured, options, now)
    before = {row.system_id: row for row in previous.systems} if previous else {}
    rows = [
        calc.system(system, facts_by_system.get(system.id, []), in_inventory=True, before=before)
        for system in systems
    ]
    rows += [
        calc.system(system, facts_by_system[system.id], in_inventory=False, before=before)
        for system in unknown
    ]
    names = {s.id: s.name_th or s.name for s in (*systems, *unknown)}
    counted = [f for f in facts if f.system_id in names and _overlaps(f, measured)]
    lines = sorted(
        (calc.line(f, names[f.system_id]) for f in counted),
        key=lambda line: (line.started_at, line.incident_id),
    )
    totals = calc.totals(rows, [f for f in facts if f.system_id in names], previous)
    return MonthlyReport(
        report_period=report_period,
        month_start=start,
        month_end=end,
        period_end=measured.end,
        generated_at=now,
        complete=measured.end == end,
        options=options,
        systems=tuple(rows),
        totals=totals,
        incidents=tuple(lines),
        longest=_longest(lines),
        worst=_worst(rows, options.worst_count),
        days=_days(counted, measured),
        teams=_teams(rows),
        skipped_facts=tuple(skipped),
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


def _within(moment: datetime | None, period: Interval) -> bool:
    return moment is not None and period.start <= moment < period.end


def _mean(durations: Sequence[timedelta]) -> timedelta | None:
    if not durations:
        return None
    return sum(durations, _ZERO) / len(durations)


def _change(
    availability: Decimal | None, downtime: timedelta, incidents: int, before: SystemSummary | ReportTotals
) -> Change:
    points = None
    if availability is not None and before.availability_percent is not None:
        points = availability - before.availability_percent
    return Change(
        availability_points=points,
        downtime=downtime - before.downtime,
        incident_count=incidents - before.incident_count,
    )


class _Calculation:
    """The figures of one measured period, with the options that shape them."""

    def __init__(self, measured: Interval, options: ReportOptions, now: datetime) -> None:
        self.measured = measured
        self.now = now
        self.length = measured.end - measured.start
        self.options = options

    def _clipped(self, fact: IncidentFact) -> Interval:
        end = self.measured.end if fact.resolved_at is None else fact.resolved_at
        return clip(Interval(fact.started_at, max(fact.started_at, end)), self.measured)

    def _maintenance(self, fact: IncidentFact, clipped: Interval) -> list[Interval]:
        return intersect(clipped, [Interval(s.start, s.end or clipped.end) for s in fact.maintenance])

    def _parts(self, fact: IncidentFact) -> tuple[Interval, list[Interval]]:
        """(the incident inside the measured period, its parts outside maintenance windows)."""
        clipped = self._clipped(fact)
        return clipped, subtract(clipped, self._maintenance(fact, clipped))

    def _down_parts(self, fact: IncidentFact) -> tuple[list[Interval], list[Interval]]:
        """(downtime parts, planned parts) of one incident inside the measured period."""
        clipped, unplanned = self._parts(fact)
        planned = self._maintenance(fact, clipped)
        return ([clipped] if self.options.include_maintenance else unplanned), planned

    def _repairs(self, facts: Iterable[IncidentFact]) -> list[timedelta]:
        return [
            max(f.resolved_at - f.started_at, _ZERO)
            for f in facts
            if f.resolved_at is not None and _within(f.resolved_at, self.measured) and not f.dependant
        ]

    def _acks(self, facts: Iterable[IncidentFact]) -> list[timedelta]:
        return [
            max(f.acknowledged_at - f.started_at, _ZERO)
            for f in facts
            if f.acknowledged_at is not None and _within(f.acknowledged_at, self.measured) and not f.dependant
        ]

    def _unacknowledged(self, counted: Iterable[IncidentFact]) -> int:
        return sum(
            1
            for f in counted
            if not f.dependant
            and f.muted is None
            and (f.acknowledged_at is None or f.acknowledged_at >= self.measured.end)
        )

    def system(
        self,
        system: SystemInfo,
        facts: Sequence[IncidentFact],
        *,
        in_inventory: bool,
        before: Mapping[str, SystemSummary],
    ) -> SystemSummary:
        counted = [f for f in facts if _overlaps(f, self.measured)]
        whole: list[Interval] = []
        unplanned: list[Interval] = []
        for fact in counted:
            if fact.kind in DEGRADED_KINDS:
                continue
            clipped, outside = self._parts(fact)
            whole.append(clipped)
            unplanned += outside
        all_down, unplanned_down = covered_time(whole), covered_time(unplanned)
        # Planned downtime: time down only inside maintenance windows (whatever the option says).
        planned_downtime = all_down - unplanned_down
        downtime = all_down if self.options.include_maintenance else unplanned_down
        repairs, acks = self._repairs(facts), self._acks(facts)
        failures = sum(
            1 for f in counted if f.started_at >= self.measured.start and f.kind not in DEGRADED_KINDS
        )
        availability = availability_percent(downtime, self.length)
        previous = before.get(system.id)
        return SystemSummary(
            system_id=system.id,
            name=system.name,
            name_th=system.name_th,
            team=system.team,
            team_name=system.team_name,
            in_inventory=in_inventory,
            availability_percent=availability,
            downtime=downtime,
            planned_downtime=planned_downtime,
            incident_count=len(counted),
            dependency_count=sum(1 for f in counted if f.dependant),
            by_severity=dict(Counter(f.severity for f in counted)),
            by_kind=dict(Counter(f.kind for f in counted)),
            resolved_count=len(repairs),
            mttr=_mean(repairs),
            acknowledged_count=len(acks),
            mtta=_mean(acks),
            unacknowledged_count=self._unacknowledged(counted),
            failure_count=failures,
            mtbf=(self.length - downtime) / failures if failures else None,
            sla_target=system.sla_target,
            change=None if previous is None else _change(availability, downtime, len(counted), previous),
        )

    def totals(
        self, rows: Sequence[SystemSummary], facts: Sequence[IncidentFact], previous: MonthlyReport | None
    ) -> ReportTotals:
        downtime = sum((r.downtime for r in rows), _ZERO)
        counted = [f for f in facts if _overlaps(f, self.measured)]
        roots = [f for f in counted if not f.dependant]
        repairs, acks = self._repairs(facts), self._acks(facts)
        failures = sum(r.failure_count for r in rows)
        availability = availability_percent(downtime, self.length * len(rows)) if rows else None
        return ReportTotals(
            system_count=len(rows),
            availability_percent=availability,
            downtime=downtime,
            planned_downtime=sum((r.planned_downtime for r in rows), _ZERO),
            incident_count=len(roots),
            dependant_count=len(counted) - len(roots),
            by_severity=dict(Counter(f.severity for f in roots)),
            by_kind=dict(Counter(f.kind for f in roots)),
            resolved_count=len(repairs),
            mttr=_mean(repairs),
            acknowledged_count=len(acks),
            mtta=_mean(acks),
            unacknowledged_count=self._unacknowledged(counted),
            failure_count=failures,
            mtbf=(self.length * len(rows) - downtime) / failures if failures else None,
            sla_met_count=sum(1 for r in rows if r.sla_met is True),
            sla_missed_count=sum(1 for r in rows if r.sla_met is False),
            change=None if previous is None else _change(availability, downtime, len(roots), previous.totals),
        )

    def line(self, fact: IncidentFact, system_name: str) -> IncidentLine:
        down, planned = ([], []) if fact.kind in DEGRADED_KINDS else self._down_parts(fact)
        end = self.now if fact.resolved_at is None else fact.resolved_at
        return IncidentLine(
            incident_id=fact.incident_id,
            system_id=fact.system_id,
            system_name=system_name,
            title=fact.title,
            severity=fact.severity,
            kind=fact.kind,
            status=fact.status,
            started_at=fact.started_at,
            acknowledged_at=fact.acknowledged_at,
            resolved_at=fact.resolved_at,
            ongoing=fact.resolved_at is None,
            dependant=fact.dependant,
            duration=max(end - fact.started_at, _ZERO),
            downtime_in_period=covered_time(down),
            planned_in_period=covered_time(planned),
        )


def _longest(lines: Sequence[IncidentLine]) -> IncidentLine | None:
    candidates = [line for line in lines if line.downtime_in_period > _ZERO]
    if not candidates:
        return None
    return min(candidates, key=lambda line: (-line.downtime_in_period, line.started_at, line.incident_id))


def _worst(rows: Sequence[SystemSummary], count: int) -> tuple[str, ...]:
    affected = [r for r in rows if r.downtime > _ZERO or r.incident_count > 0]
    affected.sort(key=lambda r: (r.availability_percent, -r.downtime, -r.incident_count, r.system_id))
    return tuple(r.system_id for r in affected[:count])


def _days(counted: Sequence[IncidentFact], measured: Interval) -> tuple[DayCount, ...]:
    """Every Bangkok day of the measured period with its root incidents started that day."""
    per_day: dict[date, Counter[str]] = defaultdict(Counter)
    for fact in counted:
        if not fact.dependant and fact.started_at >= measured.start:
            per_day[to_bangkok(fact.started_at).date()][fact.severity] += 1
    first = to_bangkok(measured.start).date()
    last = to_bangkok(measured.end - _MICROSECOND).date()
    days = []
    day = first
    while day <= last:
        days.append(DayCount(day=day, by_severity=dict(per_day.get(day, Counter()))))
        day += _DAY
    return tuple(days)


def _teams(rows: Sequence[SystemSummary]) -> tuple[TeamDowntime, ...]:
    downtime: dict[str | None, timedelta] = defaultdict(lambda: _ZERO)
    systems: Counter[str | None] = Counter()
    names: dict[str | None, str | None] = {}
    for row in rows:
        downtime[row.team] += row.downtime
        systems[row.team] += 1
        names.setdefault(row.team, row.team_name)
    ordered = sorted(downtime, key=lambda team: (-downtime[team], team or ""))
    return tuple(
        TeamDowntime(team=team, team_name=names[team], downtime=downtime[team], system_count=systems[team])
        for team in ordered
    )
