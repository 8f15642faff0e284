"""Where an incident's messages go: system → owning team → the team's LINE groups.

Reads the config collections ``systems`` and ``teams`` (written by ``fao apply``). An ordinary
system is looked up by ``_id`` only, the one lookup FerretDB pushes down. Zone and prober
incidents carry the system id ``PLATFORM_SYSTEM`` ("fao-platform"): they belong to the people who
run Fao, so they go to the LINE groups of every team with ``platform: true``, found by reading the
whole (small) ``teams`` collection. A route that leads nowhere is not an exception: ``Route`` says
why (``problem``) so the dispatcher can log it and record the delivery as unroutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.inventory import SYSTEMS, TEAMS, from_doc
from fao.runtime.store import Document
from fao.schemas import PLATFORM_SYSTEM, System, Team

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

    @property
    def routable(self) -> bool:
        return self.problem is None


def _groups(teams: tuple[Team, ...]) -> tuple[str, ...]:
    """Every team's groups, each once, in order (a group shared by two teams gets one message)."""
    return tuple(dict.fromkeys(group for team in teams for group in team.line_groups))


class RouteResolver:
    """Looks a system's team and LINE groups up in the applied inventory."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

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
        if not groups:
            return Route(system_id, system, (team,), (), "no_line_groups")
        return Route(system_id, system, (team,), groups)

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
        if not groups:
            return Route(PLATFORM_SYSTEM, known, teams, (), "no_line_groups")
        return Route(PLATFORM_SYSTEM, known, teams, groups)
