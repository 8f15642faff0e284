"""Who can be reached: which of a team's channels work, the systems none of whose team's channels
works (systems without a reachable owner) and the LINE groups of teams the bot has left.

One definition for ``fao doctor`` and the monthly report. A channel is a team's LINE group,
e-mail address or webhook; it does not work when the bot has left the LINE group (``line_groups``,
recorded by the gateway: ``in_group`` false) or when the notifier marked it broken
(``broken_targets``, ``_id`` ``"<channel>:<target>"``: it refused for good, deliveries to it are
skipped). A team without any channel reaches nobody either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.store import Document
from fao.schemas import System, Team

LINE_GROUPS: Final = "line_groups"  # the gateway's record of the groups the bot is in
BROKEN_TARGETS: Final = "broken_targets"  # the notifier's targets that refused for good

Channel = Literal["line", "email", "webhook"]
TargetState = Literal["working", "left", "broken"]


@dataclass(frozen=True)
class Broken:
    """A target the notifier marked broken (``fao.notifier.broken``): since when, and why."""

    since: datetime
    error: str


@dataclass(frozen=True)
class Target:
    """One channel of a team and whether it works."""

    channel: Channel
    target: str
    state: TargetState
    broken: Broken | None = None


def targets(team: Team, groups: Mapping[str, bool], broken: Mapping[str, Broken]) -> list[Target]:
    """``team``'s LINE groups, e-mail addresses and webhooks, in that order, with their state.
    ``groups``: LINE group id → whether the bot is in it (a group never seen counts as working)."""
    found: list[Target] = []
    channels: list[tuple[Channel, str]] = [
        *(("line", group) for group in team.line_groups),
        *(("email", address) for address in team.email),
        *(("webhook", hook.url) for hook in team.webhooks),
    ]
    for channel, target in channels:
        mark = broken.get(f"{channel}:{target}")
        if channel == "line" and groups.get(target) is False:
            found.append(Target(channel, target, "left"))
        elif mark is not None:
            found.append(Target(channel, target, "broken", mark))
        else:
            found.append(Target(channel, target, "working"))
    return found


def reachable(team: Team, groups: Mapping[str, bool], broken: Mapping[str, Broken]) -> bool:
    """Whether one of ``team``'s channels works."""
    return any(t.state == "working" for t in targets(team, groups, broken))


@dataclass(frozen=True)
class Unowned:
    """A system whose team no channel reaches."""

    system: System
    team: Team


@dataclass(frozen=True)
class LeftGroup:
    """A LINE group of a team's config that the bot has left."""

    group: str
    team: Team


def unowned_systems(
    teams: Iterable[Team], systems: Iterable[System], groups: Mapping[str, bool], broken: Mapping[str, Broken]
) -> list[Unowned]:
    """The systems without a reachable owner, by team id then system id."""
    cut_off = {team.id: team for team in teams if not reachable(team, groups, broken)}
    found = [Unowned(s, cut_off[s.team]) for s in systems if s.team in cut_off]
    return sorted(found, key=lambda u: (u.team.id, u.system.id))


def left_groups(teams: Iterable[Team], groups: Mapping[str, bool]) -> list[LeftGroup]:
    """The LINE groups named by teams that the bot has left, by team id then group id."""
    found = [
        LeftGroup(group, team)
        for team in teams
        for group in dict.fromkeys(team.line_groups)
        if groups.get(group) is False
    ]
    return sorted(found, key=lambda g: (g.team.id, g.group))


async def read_groups(db: AsyncDatabase[Document]) -> dict[str, bool]:
    """LINE group id → whether the bot is in it, as the gateway last saw."""
    return {str(doc["_id"]): doc.get("in_group") is not False async for doc in db[LINE_GROUPS].find({})}


async def read_broken(db: AsyncDatabase[Document]) -> dict[str, Broken]:
    """``"<channel>:<target>"`` → the notifier's mark of a target that refused for good."""
    found: dict[str, Broken] = {}
    async for doc in db[BROKEN_TARGETS].find({}):
        since = doc.get("since")
        if isinstance(since, datetime):
            aware = since if since.tzinfo else since.replace(tzinfo=UTC)
            found[str(doc["_id"])] = Broken(aware, str(doc.get("error") or ""))
    return found
