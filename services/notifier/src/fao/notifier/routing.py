"""Where an incident's messages go: system → owning team → the team's LINE groups.

Reads the config collections ``systems`` and ``teams`` (written by ``fao apply``) by ``_id`` only,
the one lookup FerretDB pushes down. A route that leads nowhere is not an exception: ``Route``
says why (``problem``) so the dispatcher can log it and record the delivery as unroutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.inventory import SYSTEMS, TEAMS, from_doc
from fao.runtime.store import Document
from fao.schemas import System, Team

M = TypeVar("M", bound=BaseModel)

RouteProblem = Literal["unknown_system", "invalid_system", "unknown_team", "invalid_team", "no_line_groups"]


@dataclass(frozen=True)
class Route:
    """The resolved destination of one incident's messages."""

    system_id: str
    system: System | None
    team: Team | None
    line_groups: tuple[str, ...]
    problem: RouteProblem | None = None

    @property
    def routable(self) -> bool:
        return self.problem is None


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
        system = await self._load(SYSTEMS, system_id, System)
        if system is None:
            return Route(system_id, None, None, (), "unknown_system")
        if isinstance(system, ValidationError):
            return Route(system_id, None, None, (), "invalid_system")
        team = await self._load(TEAMS, system.team, Team)
        if team is None:
            return Route(system_id, system, None, (), "unknown_team")
        if isinstance(team, ValidationError):
            return Route(system_id, system, None, (), "invalid_team")
        groups = tuple(dict.fromkeys(team.line_groups))  # de-duplicated, order kept
        if not groups:
            return Route(system_id, system, team, (), "no_line_groups")
        return Route(system_id, system, team, groups)
