"""Shards: results partitions closed under dependencies (pure), and the roles built from them."""

from __future__ import annotations

from itertools import count

from services.correlator.tests.policy_sim import system

from fao.correlator.roles import PLATFORM, role_scopes
from fao.correlator.shards import shard_map, shards
from fao.schemas.subjects import RESULT_PARTITIONS, result_partition


def _ids_in_distinct_partitions(n: int) -> list[str]:
    seen: dict[int, str] = {}
    for i in count():
        name = f"sys{i}"
        seen.setdefault(result_partition(name), name)
        if len(seen) == n:
            return list(seen.values())
    raise AssertionError("unreachable")


def test_independent_systems_leave_every_partition_its_own_shard() -> None:
    mapping = shard_map([system(f"s{i}") for i in range(100)])
    assert mapping == {p: p for p in range(RESULT_PARTITIONS)}


def test_a_dependency_joins_the_partitions_of_both_ends_under_the_smallest() -> None:
    a, b, c, d = _ids_in_distinct_partitions(4)
    mapping = shard_map([system(a), system(b, depends_on=[a]), system(c), system(d, depends_on=[c])])
    pa, pb, pc, pd = (result_partition(x) for x in (a, b, c, d))
    assert mapping[pa] == mapping[pb] == min(pa, pb)
    assert mapping[pc] == mapping[pd] == min(pc, pd)
    assert mapping[pa] != mapping[pc]
    assert len(shards(mapping)) == RESULT_PARTITIONS - 2


def test_chains_are_transitive_and_a_core_everything_depends_on_is_one_shard() -> None:
    ids = _ids_in_distinct_partitions(RESULT_PARTITIONS)
    core, *rest = ids
    mapping = shard_map([system(core), *(system(x, depends_on=[core]) for x in rest)])
    assert set(mapping.values()) == {0}, "one shard holding every partition"
    chain = [system(ids[0])] + [system(ids[i], depends_on=[ids[i - 1]]) for i in range(1, 5)]
    grouped = shards(shard_map(chain))
    parts = {result_partition(x) for x in ids[:5]}
    assert grouped[min(parts)] == frozenset(parts)


def test_every_instance_computes_the_same_shards_whatever_the_order() -> None:
    a, b, c, d, e = _ids_in_distinct_partitions(5)
    systems = [
        system(a),
        system(b, depends_on=[a]),
        system(c, depends_on=[d]),
        system(d),
        system(e, depends_on=[b, c]),
    ]
    assert shard_map(systems) == shard_map(list(reversed(systems)))


def test_roles_are_the_platform_and_one_per_shard_covering_each_partition_once() -> None:
    a, b = _ids_in_distinct_partitions(2)
    scopes = role_scopes([system(a), system(b, depends_on=[a])])
    assert scopes[PLATFORM].platform
    assert not scopes[PLATFORM].partitions
    shard_scopes = [sc for name, sc in scopes.items() if name != PLATFORM]
    assert len(shard_scopes) == RESULT_PARTITIONS - 1
    covered = [p for sc in shard_scopes for p in sc.partitions]
    assert sorted(covered) == list(range(RESULT_PARTITIONS))
    joined = next(sc for sc in shard_scopes if result_partition(a) in sc.partitions)
    assert result_partition(b) in joined.partitions
    assert not joined.platform
    assert joined.owns(a)
    assert joined.owns(b)
    assert not joined.owns("fao-platform")
