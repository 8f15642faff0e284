"""When the monthly report is due, and the claim that makes it happen once. Pure.

Last month's report is due at `report_day` (1–28) `report_hour`:00 Bangkok time of the following
month. At any moment exactly one month is "the latest due": the scheduler produces it unless it is
stored already, so a reporter that was down on the 1st catches up when it starts, and one that
restarts never produces it twice (the stored report says so).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fao.runtime.thai import BANGKOK, Month, to_bangkok


def due_at(month: Month, day: int, hour: int) -> datetime:
    """When `month`'s report is due (UTC): `day` `hour`:00 Bangkok of the month after it."""
    following = month.next()
    local = datetime(following.year, following.month, day, hour, tzinfo=BANGKOK)
    return local.astimezone(UTC)


def latest_due(now: datetime, day: int, hour: int) -> Month:
    """The newest month whose report is due at `now` (timezone-aware)."""
    previous = Month.containing(to_bangkok(now)).previous()
    if now >= due_at(previous, day, hour):
        return previous
    return previous.previous()


def report_id(period_key: str) -> str:
    """The `reports` document (and first claim) of a period: "report:2026-10"."""
    return f"report:{period_key}"


def takeover_id(period_key: str, attempt: int) -> str:
    """The claim of a later attempt, after a stale one: "report:2026-10#2"."""
    return f"{report_id(period_key)}#{attempt}"


def is_stale(claimed_at: datetime, now: datetime, timeout: timedelta) -> bool:
    return now - claimed_at >= timeout
