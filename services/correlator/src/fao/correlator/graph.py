"""The system dependency graph (``depends_on``) as the policy needs it. Pure.

``fao apply`` rejects unknown ids and cycles; the graph still guards against both (a cycle in a
hand-edited database cannot hang the correlator: each walk visits a system once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fao.schemas import System


@dataclass(frozen=True)
class SystemGraph:
    systems: Mapping[str, System]
    _children: dict[str, list[str]] = field(default_factory=dict)
    _depth: dict[str, int] = field(default_factory=dict)
    _ancestors: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, systems: Iterable[System]) -> SystemGraph:
        by_id = {s.id: s for s in systems}
        graph = cls(by_id)
        for system in by_id.values():
            for parent in system.depends_on:
                if parent in by_id:
                    graph._children.setdefault(parent, []).append(system.id)
        for system_id in by_id:
            graph._ancestors[system_id] = graph._walk_up(system_id)
            graph._depth[system_id] = graph._longest_chain(system_id, set())
        return graph

    def _walk_up(self, system_id: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        todo = list(self._parents(system_id))
        while todo:
            current = todo.pop(0)
            if current in seen or current == system_id:
                continue
            seen[current] = None
            todo.extend(self._parents(current))
        return tuple(seen)

    def _parents(self, system_id: str) -> list[str]:
        system = self.systems.get(system_id)
        return [p for p in system.depends_on if p in self.systems] if system else []

    def _longest_chain(self, system_id: str, visiting: set[str]) -> int:
        if system_id in self._depth:
            return self._depth[system_id]
        parents = [p for p in self._parents(system_id) if p not in visiting]
        if not parents:
            return 0
        visiting = visiting | {system_id}
        return 1 + max(self._longest_chain(p, visiting) for p in parents)

    def ancestors(self, system_id: str) -> tuple[str, ...]:
        """Every system ``system_id`` depends on, directly or not, nearest first."""
        return self._ancestors.get(system_id, ())

    def depth(self, system_id: str) -> int:
        """0 for a system that depends on nothing; parents always have a smaller depth."""
        return self._depth.get(system_id, 0)

    def descendants(self, system_id: str) -> list[str]:
        """Every system that depends on ``system_id``, directly or not."""
        seen: dict[str, None] = {}
        todo = list(self._children.get(system_id, ()))
        while todo:
            current = todo.pop()
            if current in seen or current == system_id:
                continue
            seen[current] = None
            todo.extend(self._children.get(current, ()))
        return list(seen)
