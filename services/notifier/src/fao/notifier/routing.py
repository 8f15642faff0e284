"""Where an incident's messages go: system → owning team → the team's targets on each channel.

Reads the config collections ``systems`` and ``teams`` (written by ``fao apply``). An ordinary
system is looked up by ``_id`` only, the one lookup FerretDB pushes down. Zone and prober
incidents carry the system id ``PLATFORM_SYSTEM`` ("fao-platform"): they belong to the people who
run Fao, so they go to every team with ``platform: true``, found by reading the whole (small)
``teams`` collection. A route that leads nowhere is not an exception: ``Route`` says why
(``problem``) so the dispatcher can log it and record the delivery as unroutable.

Per team, its ``channels`` policy orders the channels (``primary`` then ``fallbacks``); a channel
counts when the team has targets on it (``line_groups``, ``email``, ``webhooks``) and the notifier
has it configured (no SMTP host: no e-mail, logged once per team). The first such channel's
targets get the message (``Route.plans``, one ``targets.TargetPlan`` each); the targets of the
others are each plan's fallbacks. A target two teams share gets one delivery (the first team's
plan). ``line_groups`` stays the LINE groups of the route's teams.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.targets import Target, TargetPlan, team_version
from fao.runtime.inventory import SYSTEMS, TEAMS, from_doc
from fao.runtime.store import Document
from fao.schemas import PLATFORM_SYSTEM, Person, System, Team

log = structlog.get_logger()

M = TypeVar("M", bound=BaseModel)

RouteProblem = Literal[
    "unknown_system", "invalid_system", "unknown_team", "invalid_team", "no_line_groups", "no_platform_team"
]


@dataclass(frozen=True)
class Route:
    """The resolved destination of one incident's messages."""

    system_id: str
    system: System | None
    teams: tuple[Team, ...]
    line_groups: tuple[str, ...]
    problem: RouteProblem | None = None
    plans: tuple[TargetPlan, ...] = ()
    """One per target to record the message for, with its fallbacks (see the module docstring)."""

    @property
    def routable(self) -> bool:
        return self.problem is None


def _groups(teams: tuple[Team, ...]) -> tuple[str, ...]:
    """Every team's groups, each once, in order (a group shared by two teams gets one message)."""
    return tuple(dict.fromkeys(group for team in teams for group in team.line_groups))


def channel_targets(team: Team, channel: str) -> tuple[Target, ...]:
    """The team's targets on ``channel``."""
    if channel == "line":
        return tuple(Target("line", group) for group in dict.fromkeys(team.line_groups))
    if channel == "email":
        return tuple(Target("email", address) for address in dict.fromkeys(team.email))
    if channel == "webhook":
        return tuple(
            Target("webhook", hook.url, {"secret_env": hook.secret_env} if hook.secret_env else {})
            for hook in team.webhooks
        )
    return ()


class RouteResolver:
    """Looks a system's team and its targets up in the applied inventory; ``configured`` are the
    channels the notifier can send through (None: every channel)."""

    def __init__(self, db: AsyncDatabase[Document], configured: Collection[str] | None = None) -> None:
        self._db = db
        self._configured = None if configured is None else frozenset(configured)
        self._told_unconfigured: set[tuple[str, str]] = set()

    def team_plans(self, team: Team) -> tuple[TargetPlan, ...]:
        """One plan per target of the team's first usable channel, the rest as its fallbacks."""
        usable: list[tuple[Target, ...]] = []
        for channel in (team.channels.primary, *team.channels.fallbacks):
            targets = channel_targets(team, channel)
            if not targets:
                continue
            if self._configured is not None and channel not in self._configured:
                if (team.id, channel) not in self._told_unconfigured:
                    self._told_unconfigured.add((team.id, channel))
                    log.warning("channel_not_configured", team=team.id, channel=channel, skipped=len(targets))
                continue
            usable.append(targets)
        if not usable:
            return ()
        version = team_version(team)
        fallbacks = tuple(target for targets in usable[1:] for target in targets)
        return tuple(
            TargetPlan(target, team.id, version, fallbacks, team.channels.fallback_after)
            for target in usable[0]
        )

    def person_plan(self, person: Person, team: Team) -> TargetPlan | None:
        """A LINE push to ``person`` for ``team`` (an escalation step) with their e-mail as its
        fallback, when they have both, ``team``'s channel policy names e-mail and this notifier
        sends e-mail; else None (no fallbacks)."""
        if person.line_user_id is None or person.email is None:
            return None
        if "email" not in (team.channels.primary, *team.channels.fallbacks):
            return None
        if self._configured is not None and "email" not in self._configured:
            return None
        return TargetPlan(
            Target("line", person.line_user_id),
            team.id,
            team_version(team),
            (Target("email", person.email),),
            team.channels.fallback_after,
        )

    def _plans(self, teams: tuple[Team, ...]) -> tuple[TargetPlan, ...]:
        plans: dict[tuple[str, str], TargetPlan] = {}
        for team in teams:
            for plan in self.team_plans(team):
                plans.setdefault((plan.target.channel, plan.target.address), plan)
        return tuple(plans.values())

    async def _load(self, collection: str, key: str, kind: type[M]) -> M | ValidationError | None:
        doc = await self._db[collection].find_one({"_id": key})
        if doc is None:
            return None
        try:
            return from_doc(kind, doc)
        except ValidationError as exc:
            return exc

    async def resolve(self, system_id: str) -> Route:
        if system_id == PLATFORM_SYSTEM:
            return await self._resolve_platform()
        system = await self._load(SYSTEMS, system_id, System)
        if system is None:
            return Route(system_id, None, (), (), "unknown_system")
        if isinstance(system, ValidationError):
            return Route(system_id, None, (), (), "invalid_system")
        team = await self._load(TEAMS, system.team, Team)
        if team is None:
            return Route(system_id, system, (), (), "unknown_team")
        if isinstance(team, ValidationError):
            return Route(system_id, system, (), (), "invalid_team")
        groups = _groups((team,))
        plans = self._plans((team,))
        if not plans:
            return Route(system_id, system, (team,), groups, "no_line_groups")
        return Route(system_id, system, (team,), groups, plans=plans)

    async def platform_teams(self) -> tuple[Team, ...]:
        """Every valid team with ``platform: true``, by id. A full scan: FerretDB would not push a
        ``platform`` filter down anyway, and the collection holds a few dozen teams."""
        teams: list[Team] = []
        async for doc in self._db[TEAMS].find({}):
            if doc.get("platform") is not True:
                continue
            try:
                teams.append(from_doc(Team, doc))
            except ValidationError as exc:
                log.warning("invalid_platform_team", team=doc.get("_id"), errors=exc.error_count())
        return tuple(sorted(teams, key=lambda team: team.id))

    async def _resolve_platform(self) -> Route:
        # A system document of that id is optional: it only gives Fao itself a configured name.
        system = await self._load(SYSTEMS, PLATFORM_SYSTEM, System)
        known = system if isinstance(system, System) else None
        teams = await self.platform_teams()
        if not teams:
            return Route(PLATFORM_SYSTEM, known, (), (), "no_platform_team")
        groups = _groups(teams)
        plans = self._plans(teams)
        if not plans:
            return Route(PLATFORM_SYSTEM, known, teams, groups, "no_line_groups")
        return Route(PLATFORM_SYSTEM, known, teams, groups, plans=plans)
