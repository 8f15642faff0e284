"""``fao line groups``: the LINE groups the bot is in, for the teams' ``line_groups``, and the
teams whose configured group the bot is not in.

The gateway records every join, leave and member event (and any event from a group it had not
seen) in ``line_groups``, with the group's name and member count when LINE gives them. This reads
that collection and the applied ``teams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fao.runtime.inventory import TEAMS
from fao.runtime.store import Document, connect
from fao.runtime.thai import format_thai_datetime

GROUPS = "line_groups"  # written by the gateway
CHAT_PREFIXES = ("C", "R")  # group and room ids; a team's "U…" target is a person, not a group


@dataclass(frozen=True)
class GroupsReport:
    groups: list[Document]
    """Every group or room recorded, newest membership first."""
    teams: list[Document]


@dataclass(frozen=True)
class GroupsView:
    lines: list[str]
    warnings: list[str]


async def load_groups(mongo_url: str, mongo_db: str) -> GroupsReport:
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        groups = await db[GROUPS].find({}).to_list()
        teams = await db[TEAMS].find({}).to_list()
    finally:
        await client.close()
    groups.sort(key=lambda g: _time(g.get("membership_at")) or datetime.min, reverse=True)
    return GroupsReport(groups, sorted(teams, key=lambda t: str(t["_id"])))


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _when(value: Any) -> str:
    at = _time(value)
    return format_thai_datetime(at) if at is not None else "?"


def _team_label(team: Document) -> str:
    name = team.get("name")
    return f"{team['_id']} ({name})" if name else str(team["_id"])


def describe_groups(report: GroupsReport, *, show_left: bool = False) -> GroupsView:
    """One line per group the bot is in (``show_left``: also those it left), then one warning per
    team whose configured group the bot left or never joined."""
    teams_of: dict[str, list[str]] = {}
    for team in report.teams:
        for chat in team.get("line_groups") or []:
            teams_of.setdefault(str(chat), []).append(str(team["_id"]))
    lines = []
    for group in report.groups:
        in_group = group.get("in_group") is True
        if not in_group and not show_left:
            continue
        chat = str(group["_id"])
        name = f'"{group["name"]}"' if group.get("name") else "(name unknown)"
        members = group.get("member_count")
        count = f"{members} members" if isinstance(members, int) else "members ?"
        if in_group:
            since = (
                f"joined {_when(group['joined_at'])}"
                if group.get("joined_at")
                else f"seen {_when(group.get('membership_at'))}"
            )
        else:
            since = f"LEFT {_when(group.get('left_at'))}"
        teams = ", ".join(teams_of.get(chat, [])) or "no team"
        lines.append(f"{chat}  {name}  {count}  {since}  team: {teams}")
    recorded = {str(g["_id"]): g for g in report.groups}
    warnings = []
    for team in report.teams:
        for chat in team.get("line_groups") or []:
            chat = str(chat)
            if not chat.startswith(CHAT_PREFIXES):
                continue
            known = recorded.get(chat)
            if known is None:
                warnings.append(
                    f"warning: team {_team_label(team)}: the bot has never joined LINE group {chat} "
                    "(no join recorded): add the bot to the group, or fix line_groups"
                )
            elif known.get("in_group") is not True:
                warnings.append(
                    f"warning: team {_team_label(team)}: the bot left LINE group {chat} on "
                    f"{_when(known.get('left_at'))}: its alerts cannot be delivered; add the bot back, or fix line_groups"
                )
    return GroupsView(lines, warnings)
