"""MaintenanceCatalog (the generic KvCatalog over ``fao-maintenance``) against a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import nats
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.bus import ensure_bus, maintenance_bucket
from fao.runtime.inventory import (
    MAINTENANCE,
    MaintenanceCatalog,
    maintenance_from_doc,
    maintenance_to_doc,
)
from fao.runtime.store import Document
from fao.schemas import MaintenanceWindow
from fao.schemas.subjects import MAINTENANCE_BUCKET, maintenance_key


def window(window_id: str, reason: str = "upgrade") -> MaintenanceWindow:
    return MaintenanceWindow(
        id=window_id,
        reason=reason,
        systems=["core"],
        start=datetime(2026, 12, 1, 15, tzinfo=UTC),
        end=datetime(2026, 12, 1, 19, tzinfo=UTC),
    )


async def settle(
    catalog: MaintenanceCatalog,
    predicate: Callable[[dict[str, MaintenanceWindow]], bool],
    within: float = 5.0,
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate(catalog.windows):
        assert asyncio.get_running_loop().time() < deadline, catalog.windows
        await asyncio.sleep(0.02)


async def test_ensure_bus_creates_the_maintenance_bucket(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_bus(js)
        await ensure_bus(js)
        assert (await (await js.key_value(MAINTENANCE_BUCKET)).status()).bucket == MAINTENANCE_BUCKET
    finally:
        await nc.close()


async def test_catalog_replays_follows_and_skips_invalid_windows(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    kv = await maintenance_bucket(js)
    await kv.put(maintenance_key("a"), window("a").model_dump_json().encode())
    await kv.put(maintenance_key("gone"), window("gone").model_dump_json().encode())
    await kv.delete(maintenance_key("gone"))
    await kv.put(maintenance_key("bad"), b'{"id": "bad"}')
    changes: list[tuple[str, MaintenanceWindow | None]] = []
    catalog = MaintenanceCatalog(js, lambda i, w: changes.append((i, w)))
    try:
        await catalog.start()
        assert catalog.ready.is_set()
        assert set(catalog.windows) == {"a"}, "deleted and invalid entries are not windows"

        await kv.put(maintenance_key("b"), window("b").model_dump_json().encode())
        await settle(catalog, lambda ws: "b" in ws)
        await kv.put(maintenance_key("a"), window("a", reason="longer").model_dump_json().encode())
        await settle(catalog, lambda ws: ws["a"].reason == "longer")

        await kv.put(maintenance_key("a"), b"not json")
        await kv.delete(maintenance_key("b"))
        await settle(catalog, lambda ws: "b" not in ws)
        assert catalog.windows["a"].reason == "longer", "an invalid value keeps the last good window"
        assert ("b", None) in changes
    finally:
        await catalog.stop()
        await nc.close()


async def test_maintenance_documents_carry_their_source(mongo_db: AsyncDatabase[Document]) -> None:
    doc = maintenance_to_doc(window("a"), "cli")
    assert doc["_id"] == "a"
    assert doc["source"] == "cli"
    await mongo_db[MAINTENANCE].insert_one(doc)
    stored = await mongo_db[MAINTENANCE].find_one({"_id": "a"})
    assert stored is not None
    assert maintenance_from_doc(stored) == (window("a"), "cli")
