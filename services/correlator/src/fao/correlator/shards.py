"""How the results partitions group into shards that correlators can own apart. Pure.

A correlator deciding about a system must see its ancestors (holds, suppression under the topmost
open incident, a parent's ``dependants``) and its descendants (released when the parent
recovers). Results are partitioned by system (``fao.schemas.subjects.result_partition``), so a
*shard* is a set of partitions closed under dependencies: a system and every system it depends on
land in one shard. Every instance computes the same shards from the same systems; the shard's id
is its smallest partition. Independent systems spread over up to ``RESULT_PARTITIONS`` shards; an
estate where everything depends on one core switch is one shard (its owner decides it all, the
other instances stand by for it — there is nothing to split without cutting a dependency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fao.schemas import System
from fao.schemas.subjects import RESULT_PARTITIONS, result_partition


def shard_map(systems: Iterable[System]) -> dict[int, int]:
    """Partition → its shard's id (the smallest partition of the shard), for every partition."""
    parent = list(range(RESULT_PARTITIONS))

    def find(p: int) -> int:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for system in systems:
        here = find(result_partition(system.id))
        for dependency in system.depends_on:
            there = find(result_partition(dependency))
            if here != there:
                low, high = sorted((here, there))
                parent[high] = low
                here = low
    return {p: find(p) for p in range(RESULT_PARTITIONS)}


def shards(mapping: Mapping[int, int]) -> dict[int, frozenset[int]]:
    """Shard id → its partitions."""
    out: dict[int, set[int]] = {}
    for partition, shard in mapping.items():
        out.setdefault(shard, set()).add(partition)
    return {shard: frozenset(parts) for shard, parts in sorted(out.items())}
