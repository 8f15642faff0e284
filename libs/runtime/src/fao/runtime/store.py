"""MongoDB access: one async client per process and per-owner index creation.

Indexes are created one per ``create_index`` call: FerretDB v1 panics when one createIndexes
command names two or more indexes that already exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


def connect(url: str) -> AsyncMongoClient[Document]:
    """A tz-aware client (every datetime read back is UTC-aware)."""
    return AsyncMongoClient(url, tz_aware=True, appname="fao")


async def ensure_indexes(db: AsyncDatabase[Document], specs: Sequence[IndexSpec]) -> None:
    for spec in specs:
        name = spec.name or "_".join(f"{k}_{d}" for k, d in spec.keys)
        await db[spec.collection].create_index(list(spec.keys), unique=spec.unique, name=name, **spec.options)
