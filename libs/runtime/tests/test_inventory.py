"""MonitorCatalog against a real nats-server: replay, live changes, bad values, and re-watching."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import pytest

from fao.runtime.bus import ensure_bus, monitors_bucket
from fao.runtime.inventory import MonitorCatalog
from fao.schemas import Monitor, TcpCheck
from fao.schemas.subjects import monitor_key


def monitor(monitor_id: str, port: int = 80) -> Monitor:
    return Monitor(id=monitor_id, system="s", check=TcpCheck(host="127.0.0.1", port=port))


async def settle(
    catalog: MonitorCatalog, predicate: Callable[[dict[str, Monitor]], bool], within: float = 5.0
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate(catalog.monitors):
        assert asyncio.get_running_loop().time() < deadline, catalog.monitors
        await asyncio.sleep(0.02)


async def test_catalog_replays_follows_and_keeps_last_good_definition(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_bus(js)
    kv = await monitors_bucket(js)
    await kv.put(monitor_key("a"), monitor("a").model_dump_json().encode())
    await kv.put(monitor_key("b"), monitor("b").model_dump_json().encode())
    await kv.delete(monitor_key("b"))
    changes: list[tuple[str, Monitor | None]] = []
    catalog = MonitorCatalog(js, lambda i, m: changes.append((i, m)))
    try:
        await catalog.start()
        assert set(catalog.monitors) == {"a"}, "replay: deleted keys are not running"

        await kv.put(monitor_key("c"), monitor("c").model_dump_json().encode())
        await settle(catalog, lambda ms: "c" in ms)
        await kv.put(monitor_key("a"), monitor("a", port=81).model_dump_json().encode())
        await settle(catalog, lambda ms: ms["a"].check == TcpCheck(host="127.0.0.1", port=81))

        await kv.put(monitor_key("a"), b'{"id": "a", "check": "not a check"}')
        await kv.delete(monitor_key("c"))
        await settle(catalog, lambda ms: "c" not in ms)
        assert catalog.monitors["a"].check == TcpCheck(host="127.0.0.1", port=81), "bad value: last good kept"
        assert ("c", None) in changes
    finally:
        await catalog.stop()
        await nc.close()


async def test_catalog_start_fails_clearly_when_bucket_unreachable(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    await nc.close()
    catalog = MonitorCatalog(nc.jetstream())
    with pytest.raises(RuntimeError, match="fao-monitors bucket"):
        await catalog.start(timeout=1.0)
    await catalog.stop()
