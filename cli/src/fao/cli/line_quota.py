"""``fao line quota``: the month's LINE message quota, what each team group costs per push, and
whether the notifier sends digests only.

The figures come from LINE itself when ``FAO_LINE_CHANNEL_ACCESS_TOKEN`` is set (``GET
/v2/bot/message/quota``, ``…/quota/consumption`` and each team group's ``…/members/count``, at
``FAO_LINE_API_BASE``), otherwise — or when LINE cannot be reached — from what the notifier cached
in MongoDB ``line_state`` (``fao.notifier.quota``). Digest-only and ``exhausted_until`` (LINE's
monthly limit reached) are always the notifier's, from ``line_state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fao.notifier.errors import QuotaUnavailableError
from fao.notifier.quota import (
    GroupState,
    LineQuotaApi,
    figures_from_doc,
    forecast_month,
    read_state,
    read_teams,
    team_groups,
)
from fao.runtime.store import Document, connect
from fao.runtime.thai import Month, format_thai_datetime


@dataclass(frozen=True)
class LineAccess:
    """How to ask LINE directly (``token`` None: do not)."""

    token: str | None
    api_base: str
    timeout: float


@dataclass(frozen=True)
class Live:
    limit: int | None
    usage: int
    members: dict[str, int | None]


async def _ask_line(access: LineAccess, groups: list[str]) -> Live:
    assert access.token is not None
    api = LineQuotaApi(base_url=access.api_base, access_token=access.token, timeout=access.timeout)
    await api.start()
    try:
        limit = await api.quota()
        usage = await api.consumption()
        members = {group: await api.member_count(group) for group in groups}
    finally:
        await api.stop()
    return Live(limit, usage, members)


def _number(value: int) -> str:
    return f"{value:,}"


def _group_line(group: str, teams: list[str], count: int | None, known: bool, in_group: bool) -> str:
    who = ", ".join(teams)
    if not known:
        return f"  {group}  {who}: member count not known yet"
    if not in_group or count is None:
        return f"  {group}  {who}: the bot is not in this group"
    return f"  {group}  {who}: {count} members, {count} messages per push"


async def quota_report(mongo_url: str, mongo_db: str, now: datetime, access: LineAccess) -> list[str]:
    """The lines ``fao line quota`` prints."""
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        quota_doc, cached_groups = await read_state(db)
        groups = team_groups(await read_teams(db))
    finally:
        await client.close()
    lines = [f"LINE quota, month {Month.containing(now)} (Asia/Bangkok)"]
    live: Live | None = None
    if access.token:
        try:
            live = await _ask_line(access, list(groups))
        except QuotaUnavailableError as exc:
            lines.append(f"  LINE could not be asked ({exc}); the notifier's cached figures follow")
    cached = figures_from_doc(quota_doc)
    limit: int | None
    if live is not None:
        lines.append("  source:          LINE, now")
        limited, limit, used = live.limit is not None, live.limit, live.usage
    elif cached.limited is not None and cached.checked_at is not None:
        lines.append(
            f"  source:          the notifier's figures of {format_thai_datetime(cached.checked_at)}"
        )
        limited, limit, used = cached.limited, cached.limit, cached.used
    else:
        lines.append(
            "  no figures yet: the notifier has not read them and FAO_LINE_CHANNEL_ACCESS_TOKEN is not set"
        )
        return lines + _groups_section(groups, cached_groups, None)
    if not limited or limit is None:
        lines.append("  limit:           none (type: none, unlimited)")
        lines.append(f"  used:            {_number(used)}")
    else:
        lines.append(f"  limit:           {_number(limit)} messages")
        lines.append(f"  used:            {_number(used)}")
        lines.append(f"  remaining:       {_number(max(limit - used, 0))}")
    lines.append(f"  forecast:        {_number(forecast_month(used, now))} by the end of the month")
    lines += _notifier_state(quota_doc)
    return lines + _groups_section(groups, cached_groups, live)


def _notifier_state(doc: Document | None) -> list[str]:
    doc = doc or {}
    since = doc.get("digest_only_since")
    if doc.get("digest_only"):
        when = f" since {format_thai_datetime(since)}" if isinstance(since, datetime) else ""
        lines = [f"  digest-only:     on{when} (critical systems' problems still go at once)"]
    else:
        lines = ["  digest-only:     off"]
    until = doc.get("exhausted_until")
    if isinstance(until, datetime):
        lines.append(f"  exhausted until: {format_thai_datetime(until)} (LINE's monthly limit reached)")
    return lines


def _groups_section(
    groups: dict[str, list[str]], cached: dict[str, GroupState], live: Live | None
) -> list[str]:
    if not groups:
        return ["groups: no team has a LINE group"]
    lines = ["groups (a push costs one message per member):"]
    for group, teams in groups.items():
        if live is not None:
            count = live.members.get(group)
            lines.append(_group_line(group, teams, count, True, count is not None))
            continue
        state = cached.get(group)
        if state is None:
            lines.append(_group_line(group, teams, None, False, False))
        else:
            lines.append(_group_line(group, teams, state.member_count, True, state.in_group))
    return lines
