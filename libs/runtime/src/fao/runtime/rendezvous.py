"""Who of a group of live members does which piece of work: rendezvous (highest-random-weight)
hashing. Pure. Probers share a zone's monitors by it, correlators their roles (``fao.correlator.roles``).

The owner of a piece is the live member with the highest ``weight(piece, member)``, a hash of the
two ids. Every member computes the same owner from the same member list, with no other
coordination; a member that leaves gives up only its own pieces (each goes to the member with its
next-highest weight), and one that joins takes ≈1/N of them, evenly from every other member. With
no peers a member owns everything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9_-]")


def member_name(member_id: str) -> str:
    """A member's name in a KV key and in the rendezvous hash: its id with only ``[A-Za-z0-9_-]``."""
    return _NOT_IN_KEY.sub("_", member_id) or "_"


def weight(piece: str, member: str) -> int:
    """The rendezvous weight of ``member`` for ``piece``: 64 bits of BLAKE2b of both ids."""
    digest = hashlib.blake2b(f"{piece}\x00{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(piece: str, members: Iterable[str]) -> str:
    """The member that does ``piece`` (ties, which 64-bit hashes make vanishingly rare, go to the
    greater id). ``members`` must not be empty."""
    return max(members, key=lambda member: (weight(piece, member), member))
