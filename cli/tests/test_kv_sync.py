"""``fao.cli.kv_sync``: a config bucket is read in one pass and written concurrently, and a
failed apply's writes are put back. On a real nats-server."""

from __future__ import annotations

import nats
import pytest
from nats.js.kv import KeyValue

from fao.cli import kv_sync
from fao.cli.kv_sync import KvUndo, bucket_values, restore, sync_bucket
from fao.runtime.bus import ensure_bus, kv_keys, monitors_bucket
from fao.schemas.subjects import MONITORS_BUCKET


async def test_sync_writes_only_differences_beyond_one_batch_and_undo_restores_everything(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More keys than one batch in flight: every one written, unchanged keys left alone, keys not
    wanted deleted; the undo list brings the bucket back to exactly what it held."""
    monkeypatch.setattr(kv_sync, "IN_FLIGHT", 7)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_bus(js)
        kv = await monitors_bucket(js)
        before = {f"monitor.m{i:03d}": f"v{i}".encode() for i in range(30)}
        assert await sync_bucket(js, MONITORS_BUCKET, kv, before) == 30
        assert await bucket_values(js, MONITORS_BUCKET) == before

        wanted = {**{k: v for k, v in before.items() if k < "monitor.m020"}, "monitor.new": b"new"}
        wanted["monitor.m005"] = b"changed"
        undo: KvUndo = []
        # 1 changed + 1 added + 10 removed
        assert await sync_bucket(js, MONITORS_BUCKET, kv, wanted, undo) == 12
        assert await bucket_values(js, MONITORS_BUCKET) == wanted
        assert sorted(key for _, key, _ in undo) == sorted(
            ["monitor.m005", "monitor.new", *(f"monitor.m{i:03d}" for i in range(20, 30))]
        )

        failures: list[str] = []
        await restore(undo, lambda key, exc: failures.append(key))
        assert failures == []
        assert await bucket_values(js, MONITORS_BUCKET) == before
        assert await kv_keys(js, MONITORS_BUCKET) == sorted(before)
    finally:
        await nc.close()


async def test_a_failed_write_is_raised_after_its_batch_and_recorded_for_undo(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put that fails is raised only once every write of its batch is answered (no write is
    left in flight for the undo to race), and nothing after that batch is sent."""
    monkeypatch.setattr(kv_sync, "IN_FLIGHT", 4)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_bus(js)
        kv = await monitors_bucket(js)
        real_put = KeyValue.put

        async def put(self: KeyValue, key: str, value: bytes, validate_keys: bool = True) -> int:
            if key == "monitor.m02":
                raise OSError("injected")
            return await real_put(self, key, value, validate_keys)

        monkeypatch.setattr(KeyValue, "put", put)
        undo: KvUndo = []
        wanted = {f"monitor.m{i:02d}": b"x" for i in range(10)}
        with pytest.raises(OSError, match="injected"):
            await sync_bucket(js, MONITORS_BUCKET, kv, wanted, undo)
        written = await bucket_values(js, MONITORS_BUCKET)
        assert sorted(written) == ["monitor.m00", "monitor.m01", "monitor.m03"], "the batch, not beyond"
        assert [key for _, key, _ in undo] == ["monitor.m00", "monitor.m01", "monitor.m02", "monitor.m03"]
        await restore(undo, lambda key, exc: None)
        assert await bucket_values(js, MONITORS_BUCKET) == {}
    finally:
        await nc.close()
