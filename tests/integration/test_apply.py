"""`fao apply` against real NATS and FerretDB: validate first, then write collections, KV and audit."""

from __future__ import annotations

import shutil
from pathlib import Path

import nats
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from fao.cli.apply import apply
from fao.runtime.bus import ensure_bus, kv_keys, monitors_bucket
from fao.runtime.store import Document
from fao.schemas import Monitor
from fao.schemas.loader import ConfigError, load_inventory
from fao.schemas.subjects import MONITORS_BUCKET

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"
EXAMPLE_KEYS = {f"monitor.{m.id}" for m in load_inventory(EXAMPLES).monitors}  # checks.yaml: one of each type


async def kv_monitors(nats_url: str) -> dict[str, Monitor]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_bus(js)
        kv = await monitors_bucket(js)
        keys = await kv_keys(js, MONITORS_BUCKET)
        return {k: Monitor.model_validate_json((await kv.get(k)).value or b"") for k in keys}
    finally:
        await nc.close()


async def snapshot(db: AsyncDatabase[Document]) -> dict[str, list[Document]]:
    return {name: await db[name].find({}).to_list() for name in ("teams", "systems", "monitors", "audit")}


async def test_apply_writes_inventory_kv_and_audit(
    nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    plan = await apply(EXAMPLES, mongo_url, mongo_db.name, nats_url, dry_run=False)
    assert {str(c) for c in plan.changes} >= {"+ team noc", "+ system e-service", "+ monitor e-service-home"}
    kv = await kv_monitors(nats_url)
    assert set(kv) == EXAMPLE_KEYS
    assert set(kv) >= {"monitor.e-service-home", "monitor.core-gateway-tcp", "monitor.mail-webmail"}
    state = await snapshot(mongo_db)
    assert {d["_id"] for d in state["systems"]} == {"core-network", "e-service", "mail", "shared-services"}
    assert len(state["audit"]) == 1
    assert len(state["audit"][0]["changes"]) == len(plan.changes)

    again = await apply(EXAMPLES, mongo_url, mongo_db.name, nats_url, dry_run=False)
    assert again.changes == [], "re-applying the same config is a no-op"
    assert len(await mongo_db["audit"].find({}).to_list()) == 1


async def test_apply_diff_changes_and_removes(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    text = (config / "monitors.yaml").read_text()
    head, _, _ = text.partition("  - id: core-gateway-tcp")
    (config / "monitors.yaml").write_text(head.replace("interval: 5s", "interval: 7s"))
    plan = await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False, prune=True)
    assert {str(c) for c in plan.changes} == {"~ monitor e-service-home", "- monitor core-gateway-tcp"}
    kv = await kv_monitors(nats_url)
    assert set(kv) == EXAMPLE_KEYS - {"monitor.core-gateway-tcp"}
    assert kv["monitor.e-service-home"].interval == 7.0


async def test_bad_config_is_rejected_with_file_line_and_changes_nothing(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    await apply(EXAMPLES, mongo_url, mongo_db.name, nats_url, dry_run=False)
    before_db, before_kv = await snapshot(mongo_db), await kv_monitors(nats_url)

    config = tmp_path / "bad"
    shutil.copytree(EXAMPLES, config)
    monitors = config / "monitors.yaml"
    lines = monitors.read_text().splitlines()
    url_line = next(i for i, line in enumerate(lines) if "url:" in line)
    lines[url_line] = "      url: ftp//nowhere"
    monitors.write_text("\n".join(lines) + "\n")
    (config / "systems.yaml").write_text(
        (config / "systems.yaml").read_text().replace("team: apps", "team: nobody")
    )

    with pytest.raises(ConfigError) as caught:
        await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    messages = [str(p) for p in caught.value.problems]
    assert f"{monitors}:{url_line + 1}: monitors[0].check.url: " in messages[1] or any(
        m.startswith(f"{monitors}:{url_line + 1}: monitors[0].check.url:") for m in messages
    )
    assert any(m.startswith(f"{config / 'systems.yaml'}:") and "unknown team 'nobody'" in m for m in messages)
    assert await snapshot(mongo_db) == before_db
    assert await kv_monitors(nats_url) == before_kv
