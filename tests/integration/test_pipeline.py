"""Service behaviour through real NATS and FerretDB, services run in-process.

- the prober follows the monitors bucket live: an applied change is probed with no restart;
- a result that breaks the contract is dead-lettered with its reason and never blocks the stream.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
from nats.aio.msg import Msg
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import CONFIG, Target, eventually

from fao.cli.apply import apply
from fao.correlator.app import CorrelatorSettings
from fao.correlator.app import build as build_correlator
from fao.prober.app import ProberSettings
from fao.prober.app import build as build_prober
from fao.runtime.store import Document
from fao.schemas import CheckResult
from fao.schemas import subjects as s
from fao.testing.inprocess import serving

EXTRA_MONITOR = """
  - id: network-tcp
    system: network
    check: {{type: tcp, host: 127.0.0.1, port: {port}}}
    interval: 1s
    timeout: 500ms
"""


async def test_prober_follows_applied_changes_live(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    target = Target()
    await target.start()
    config = tmp_path / "config"
    config.mkdir()
    inventory = config / "inventory.yaml"
    inventory.write_text(CONFIG.replace("{port}", str(target.port)), encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)

    seen: list[CheckResult] = []
    nc = await nats.connect(nats_url)

    async def collect(msg: Msg) -> None:
        seen.append(CheckResult.model_validate_json(msg.data))

    await nc.subscribe(s.RESULTS_SUBJECTS, cb=collect)
    settings = ProberSettings(nats_url=nats_url, http_port=-1, prober_id="p-live", zone="default")
    try:
        async with serving(build_prober(settings)):

            async def probed(monitor_id: str) -> bool:
                return any(r.monitor_id == monitor_id for r in seen)

            await eventually(lambda: probed("e-service-home"), 10, "first monitor probed")
            assert not any(r.monitor_id == "network-tcp" for r in seen)

            inventory.write_text(
                inventory.read_text() + EXTRA_MONITOR.format(port=target.port), encoding="utf-8"
            )
            await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
            await eventually(lambda: probed("network-tcp"), 10, "added monitor probed without restart")
            new = next(r for r in seen if r.monitor_id == "network-tcp")
            assert new.ok
            assert new.zone == "default"
            assert new.prober_id == "p-live"

            inventory.write_text(CONFIG.replace("{port}", str(target.port)), encoding="utf-8")
            await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
            await asyncio.sleep(0.5)  # let a check already in flight land
            count = sum(1 for r in seen if r.monitor_id == "network-tcp")
            await asyncio.sleep(2.5)
            assert sum(1 for r in seen if r.monitor_id == "network-tcp") == count, "removed monitor stops"
    finally:
        await nc.close()
        await target.stop()


async def test_malformed_result_is_dead_lettered_and_does_not_block(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(CONFIG.replace("{port}", "9"), encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    settings = CorrelatorSettings(
        nats_url=nats_url, mongo_url=mongo_url, mongo_db=mongo_db.name, http_port=-1
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        async with serving(build_correlator(settings)):
            await js.publish(
                s.result_subject("e-service-home"), b'{"monitor_id": "e-service-home", "ok": "maybe"}'
            )
            good = CheckResult(
                monitor_id="e-service-home", system_id="e-service", zone="default", prober_id="p1",
                started_at="2026-11-25T01:00:00Z", ok=True, latency_ms=3.0,
            )  # fmt: skip
            await js.publish(s.result_subject("e-service-home"), good.model_dump_json().encode())

            async def state_saved() -> bool:
                return await mongo_db["monitor_state"].find_one({"_id": "e-service-home"}) is not None

            await eventually(state_saved, 10, "the valid result after the bad one is applied")
        sub = await js.pull_subscribe(s.DEAD_LETTER_SUBJECTS, durable="t", stream=s.DEAD_LETTER_STREAM)
        [dead] = await sub.fetch(1, timeout=5)
        assert dead.subject == s.dead_letter_subject("correlator")
        assert json.loads(dead.data)["ok"] == "maybe", "the original body is kept"
        assert dead.headers is not None
        assert "ok" in dead.headers["Fao-Reason"]
        assert dead.headers["Fao-Original-Subject"] == s.result_subject("e-service-home")
    finally:
        await nc.close()
