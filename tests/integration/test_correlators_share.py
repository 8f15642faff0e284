"""Two correlators share the results partitions; one SIGKILLed in the middle of a storm changes
nothing: the same incidents and LINE pushes as an undisturbed run (issue 9, item 4).

Two independent dependency trees whose systems hash to disjoint results partitions, so they are
two shards (``fao.correlator.shards``) that the instances can own apart. Each root's children fail
first, then the roots: one push per root's team, every child suppressed under its root, then one
'resolved' push per root. Killed: the instance holding the first tree's shard, right after the
first failing round was published (results waiting, nobody handling them); the survivor takes over
every partition within about one lease TTL.

Real nats-server, FerretDB, correlators and notifier as processes, the fake LINE API. "Still
exactly N pushes" is asserted only once every correlator durable and the notifier's have nothing
left and every delivery is final (``Scenario.settle``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import httpx
import pytest
from nats.js.errors import KeyNotFoundError
from prometheus_client.parser import text_string_to_metric_families
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.scenario import Scenario, group, scenario

from fao.correlator.shards import shard_map
from fao.runtime.lease import lease_key
from fao.runtime.store import Document
from fao.schemas import System
from fao.schemas import subjects as s
from fao.testing.processes import ServiceProcess

TEAM_A, TEAM_B, APPS = group(1), group(2), group(3)
CHILDREN = 20  # per tree
LEASE_TTL = 6.0
# After the kill: the dead instance's leases expire (one TTL), then the survivor acquires them
# (polling about every TTL / 4) — on a busy 2-core machine, with room.
HANDOVER = LEASE_TTL + 15.0
CORRELATORS = ("correlator-1", "correlator-2")
MONITOR_DEFAULTS = "interval: 2s, timeout: 1s, recheck_interval: 500ms, quiet_period: 3s"
# Each tree spans two partitions (so its shard is a union), and the trees share none.
PARTITIONS_A = frozenset({5, 6})  # core-a hashes to 6
PARTITIONS_B = frozenset({12, 13})  # core-b hashes to 12


def _children(prefix: str, partitions: frozenset[int]) -> list[str]:
    """The first ``CHILDREN`` system ids ``<prefix>NNN`` that hash to ``partitions``."""
    ids = (f"{prefix}{i:03d}" for i in itertools.count())
    return list(itertools.islice((i for i in ids if s.result_partition(i) in partitions), CHILDREN))


ROOTS = {"core-a": TEAM_A, "core-b": TEAM_B}
TREES = {"core-a": _children("a-app", PARTITIONS_A), "core-b": _children("b-app", PARTITIONS_B)}


def systems() -> list[System]:
    out = [System(id=root, name=root, team=f"team-{root}") for root in ROOTS]
    out += [
        System(id=child, name=child, team="apps", depends_on=[root])
        for root, children in TREES.items()
        for child in children
    ]
    return out


def inventory() -> str:
    lines = [
        "teams:",
        f'  - {{id: team-core-a, name: Core A, line_groups: ["{TEAM_A}"]}}',
        f'  - {{id: team-core-b, name: Core B, line_groups: ["{TEAM_B}"]}}',
        f'  - {{id: apps, name: Apps, line_groups: ["{APPS}"]}}',
        "systems:",
    ]
    for system in systems():
        depends = f", depends_on: [{', '.join(system.depends_on)}]" if system.depends_on else ""
        lines.append(f"  - {{id: {system.id}, name: {system.name}, team: {system.team}{depends}}}")
    lines.append("monitors:")
    lines += [
        f"  - {{id: {system.id}-ping, system: {system.id}, check: {{type: tcp, host: 127.0.0.1, port: 9}}, {MONITOR_DEFAULTS}}}"
        for system in systems()
    ]
    return "\n".join(lines) + "\n"


def monitors(system_ids: list[str]) -> list[str]:
    return [f"{system}-ping" for system in system_ids]


async def owned_partitions(proc: ServiceProcess) -> int | None:
    """``fao_correlator_partitions`` from the instance's /metrics (None: no answer, or no gauge)."""
    try:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{proc.port}/metrics", timeout=2)).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "fao_correlator_partitions":
            return int(family.samples[0].value)
    return None


async def holder(sc: Scenario, partition: int) -> ServiceProcess:
    """The correlator process holding ``partition``'s lease (holder ``<hostname>-<pid>``)."""
    kv = await sc.js.key_value(s.LEASES_BUCKET)
    try:
        entry = await kv.get(lease_key(f"correlator.p{partition}"))
    except KeyNotFoundError:
        raise AssertionError(f"nobody holds partition {partition}\n{sc.logs()[-8000:]}") from None
    held_by = (entry.value or b"").decode()
    for name in CORRELATORS:
        if held_by.endswith(f"-{sc.services[name].pid}"):
            return sc.services[name]
    raise AssertionError(f"partition {partition} is held by {held_by!r}, none of our correlators")


def test_the_trees_are_two_shards() -> None:
    """The inventory is what the test needs: each tree spans two partitions, which the
    shards join; the trees are in different shards."""
    shards = shard_map(systems())
    for root, partitions in (("core-a", PARTITIONS_A), ("core-b", PARTITIONS_B)):
        tree = [root, *TREES[root]]
        assert {s.result_partition(x) for x in tree} == partitions, root
        assert {shards[p] for p in partitions} == {min(partitions)}, f"{root}'s tree is one shard"
    assert shards[min(PARTITIONS_A)] != shards[min(PARTITIONS_B)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kill", [False, True], ids=["undisturbed", "one-killed-mid-storm"])
async def test_two_correlators_with_one_killed_mid_storm_give_the_same_incidents_and_pushes(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document], kill: bool
) -> None:
    shard_a = shard_map(systems())[min(PARTITIONS_A)]
    roots = list(ROOTS)
    children = [child for tree in TREES.values() for child in tree]
    everything = monitors([*roots, *children])
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, inventory(), services=()) as sc:
        sc.env["FAO_LEASE_TTL"] = str(LEASE_TTL)
        for name in CORRELATORS:
            await asyncio.to_thread(sc.start, name, "correlator")
        await asyncio.to_thread(sc.start, "notifier")

        async def shared() -> bool:
            owned = [await owned_partitions(sc.services[name]) for name in CORRELATORS]
            return (
                all(n is not None and n > 0 for n in owned)
                and sum(n or 0 for n in owned) == s.RESULT_PARTITIONS
            )

        await sc.until(shared, 60, "both correlators own partitions, every partition owned once")
        await sc.round(dict.fromkeys(everything, True))
        await sc.settle()

        # The storm: the children of both trees fail, twice (confirmed), then the roots.
        await sc.round(dict.fromkeys(monitors(children), False))
        if kill:
            victim = await holder(sc, shard_a)
            survivor = next(p for n, p in sc.services.items() if n in CORRELATORS and p is not victim)
            victim.kill()  # mid-storm: the rest of the storm waits for the survivor
            killed_at = time.monotonic()
        await sc.round(dict.fromkeys(monitors(children), False))
        await sc.round(dict.fromkeys(monitors(roots), False))
        await sc.round(dict.fromkeys(monitors(roots), False))
        if kill:

            async def survivor_owns_all() -> bool:
                return await owned_partitions(survivor) == s.RESULT_PARTITIONS

            await sc.until(
                survivor_owns_all,
                max(1.0, HANDOVER - (time.monotonic() - killed_at)),
                f"the survivor owns all {s.RESULT_PARTITIONS} partitions within {HANDOVER:g} s of the kill",
            )
        opened = await sc.wait_pushes(2, 60)
        assert sorted(p["to"] for p in opened) == sorted(ROOTS.values()), sc.line.texts()
        for _ in range(3):  # the outage goes on; nothing more is sent
            await sc.round(dict.fromkeys(everything, False))
        await sc.settle()
        assert len(sc.line.pushes) == 2, sc.line.texts()
        for root, tree in TREES.items():
            [parent] = await sc.incidents({"system_id": root})
            assert sorted(parent["dependants"]) == sorted(tree), root
            under = await sc.incidents({"parent_incident_id": parent["_id"]})
            assert sorted(i["system_id"] for i in under) == sorted(tree), f"every child of {root} suppressed"

        # Recovery: rounds at about the check interval until both roots' incidents resolve.
        deadline = time.monotonic() + 60
        while len(sc.line.pushes) < 4 and time.monotonic() < deadline:
            await sc.round(dict.fromkeys(everything, True))
            await asyncio.sleep(1)
        await sc.wait_pushes(4, 30)
        await sc.settle()
        assert len(sc.line.pushes) == 4, sc.line.texts()
        assert sorted(p["to"] for p in sc.line.pushes[2:]) == sorted(ROOTS.values()), sc.line.texts()
        assert all(p["to"] != APPS for p in sc.line.pushes), "a suppressed child alerted"
        incidents = await sc.incidents()
        assert sorted(i["system_id"] for i in incidents) == sorted([*roots, *children]), (
            "one incident per failing system, no duplicates"
        )
        assert all(i["status"] == "resolved" for i in incidents), [
            (i["system_id"], i["status"]) for i in incidents if i["status"] != "resolved"
        ]
