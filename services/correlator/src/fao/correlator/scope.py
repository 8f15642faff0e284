"""What one correlator decides when several share the work (``fao.correlator.roles``)."""

from __future__ import annotations

from dataclasses import dataclass

from fao.correlator.store import JournalEntry
from fao.schemas import PLATFORM_SYSTEM
from fao.schemas.subjects import RESULT_PARTITIONS, result_partition


@dataclass(frozen=True)
class Scope:
    """What one correlator decides (``fao.correlator.roles``): the systems of ``partitions`` (a
    shard, ``fao.correlator.shards``) and, with ``platform``, zone problems, silent probers and
    incidents of no system (``PLATFORM_SYSTEM``). The default is everything (one correlator)."""

    partitions: frozenset[int] = frozenset(range(RESULT_PARTITIONS))
    platform: bool = True
    shard: int = 0  # the shard's id: the key of its zone views

    @property
    def whole(self) -> bool:
        return self.platform and len(self.partitions) == RESULT_PARTITIONS

    def owns(self, system_id: str) -> bool:
        if system_id == PLATFORM_SYSTEM:
            return self.platform
        return result_partition(system_id) in self.partitions

    def owns_entry(self, entry: JournalEntry) -> bool:
        """A journal entry this scope finishes after a crash: one deciding about its systems."""
        return (
            any(self.owns(st.system_id) for st in entry.states if st.system_id)
            or any(self.owns(i.system_id) for i in entry.incidents)
            or any(self.owns(e.incident.system_id) for e in entry.events)
            or (self.platform and not (entry.states or entry.incidents or entry.events))
        )
