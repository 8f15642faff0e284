"""Routing on real FerretDB: a system's own team, and platform incidents to every platform team."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.routing import RouteResolver
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import PLATFORM_SYSTEM, System, Team

OPS = "C" + "a" * 32
OPS_2 = "C" + "b" * 32
NOC = "C" + "c" * 32
APPS = "C" + "d" * 32


async def add_team(db: AsyncDatabase[Document], team: Team) -> None:
    await db[TEAMS].insert_one(to_doc(team, team.id))


async def add_system(db: AsyncDatabase[Document], system: System) -> None:
    await db[SYSTEMS].insert_one(to_doc(system, system.id))


async def test_platform_incidents_go_to_every_platform_team_and_no_other(db: AsyncDatabase[Document]) -> None:
    """``fao-platform`` → the groups of each ``platform: true`` team (ordered by team id, a group
    two teams share once); the ministry's application team gets nothing."""
    await add_team(db, Team(id="ops", name="Ops", line_groups=[OPS, OPS_2], platform=True))
    await add_team(db, Team(id="noc", name="NOC", line_groups=[NOC, OPS], platform=True))
    await add_team(db, Team(id="apps", name="Apps", line_groups=[APPS]))
    route = await RouteResolver(db).resolve(PLATFORM_SYSTEM)
    assert route.routable
    assert [team.id for team in route.teams] == ["noc", "ops"]
    assert route.line_groups == (NOC, OPS, OPS_2)
    assert route.system is None  # no inventory entry needed: the message names Fao itself


async def test_a_configured_platform_system_gives_its_name(db: AsyncDatabase[Document]) -> None:
    await add_team(db, Team(id="ops", name="Ops", line_groups=[OPS], platform=True))
    await add_system(db, System(id=PLATFORM_SYSTEM, name="Fao", name_th="ระบบเฝ้าระวัง", team="ops"))
    route = await RouteResolver(db).resolve(PLATFORM_SYSTEM)
    assert route.system is not None
    assert route.system.display_name_th == "ระบบเฝ้าระวัง"
    assert route.line_groups == (OPS,)


async def test_no_platform_team_is_unroutable(db: AsyncDatabase[Document]) -> None:
    """Teams exist, none is a platform team → ``no_platform_team`` (recorded unroutable)."""
    await add_team(db, Team(id="apps", name="Apps", line_groups=[APPS]))
    route = await RouteResolver(db).resolve(PLATFORM_SYSTEM)
    assert (route.routable, route.problem, route.line_groups) == (False, "no_platform_team", ())


async def test_platform_teams_without_groups_are_unroutable(db: AsyncDatabase[Document]) -> None:
    await add_team(db, Team(id="ops", name="Ops", line_groups=[], platform=True))
    route = await RouteResolver(db).resolve(PLATFORM_SYSTEM)
    assert (route.problem, [t.id for t in route.teams]) == ("no_line_groups", ["ops"])


async def test_a_broken_platform_team_document_does_not_hide_the_others(db: AsyncDatabase[Document]) -> None:
    """A hand-edited team document that fails validation is skipped (and logged), not fatal."""
    await add_team(db, Team(id="ops", name="Ops", line_groups=[OPS], platform=True))
    await db[TEAMS].insert_one({"_id": "broken", "id": "broken", "platform": True, "line_groups": ["nope"]})
    route = await RouteResolver(db).resolve(PLATFORM_SYSTEM)
    assert route.line_groups == (OPS,)


async def test_ordinary_systems_route_to_their_own_team_only(db: AsyncDatabase[Document]) -> None:
    """A system owned by a platform team still routes to that team alone; platform teams get no
    other team's outages."""
    await add_team(db, Team(id="ops", name="Ops", line_groups=[OPS], platform=True))
    await add_team(db, Team(id="apps", name="Apps", line_groups=[APPS, APPS]))
    await add_system(db, System(id="e-service", name="e-Service", team="apps"))
    await add_system(db, System(id="core-network", name="Core network", team="ops"))
    resolver = RouteResolver(db)
    apps = await resolver.resolve("e-service")
    assert (apps.line_groups, [t.id for t in apps.teams]) == ((APPS,), ["apps"])
    assert (await resolver.resolve("core-network")).line_groups == (OPS,)
    assert (await resolver.resolve("unknown")).problem == "unknown_system"
