"""``bus.kv_keys`` on a real nats-server: the live keys, every time (nats-py's ``KeyValue.keys()``
now and then answered "no keys" for a full bucket: see its docstring)."""

from __future__ import annotations

from nats.js import JetStreamContext

from fao.runtime.bus import kv_keys, monitors_bucket
from fao.schemas.subjects import MONITORS_BUCKET


async def test_live_keys_without_deleted_or_purged_ones_every_time(js: JetStreamContext) -> None:
    kv = await monitors_bucket(js)
    assert await kv_keys(js, MONITORS_BUCKET) == []
    for n in range(40):
        await kv.put(f"monitor.m{n:02d}", b"{}")
    await kv.put("monitor.m00", b"{}")  # a second revision is still one key
    await kv.delete("monitor.m01")
    await kv.purge("monitor.m02")
    expected = [f"monitor.m{n:02d}" for n in range(40) if n not in (1, 2)]
    for _ in range(20):  # the race nats-py lost showed within a few listings
        assert await kv_keys(js, MONITORS_BUCKET) == expected
    for n in range(40):
        await kv.delete(f"monitor.m{n:02d}")
    assert await kv_keys(js, MONITORS_BUCKET) == []
