"""Which prober of a zone runs which monitor: rendezvous (highest-random-weight) hashing. Pure.

The owner of a monitor is the live prober with the highest ``weight(monitor, prober)``, a hash of
the two ids. Every prober of the zone computes the same owner from the same member list, with no
other coordination; a prober that leaves gives up only its own monitors (each goes to the prober
with its next-highest weight), and one that joins takes ≈1/N of the monitors, evenly from every
other member. With no peers a prober owns everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(monitor_id: str, member: str) -> int:
    """The rendezvous weight of ``member`` for ``monitor_id``: 64 bits of BLAKE2b of both ids."""
    digest = hashlib.blake2b(f"{monitor_id}\x00{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(monitor_id: str, members: Iterable[str]) -> str:
    """The member that runs ``monitor_id`` (ties, which 64-bit hashes make vanishingly rare, go to
    the greater id). ``members`` must not be empty."""
    return max(members, key=lambda member: (weight(monitor_id, member), member))
