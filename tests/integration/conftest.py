"""A whole Fao on loopback for end-to-end tests: real NATS, FerretDB, service processes, fake LINE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import CONFIG, Fao, Target

from fao.cli.apply import apply
from fao.runtime.store import Document
from fao.testing.fake_line import FakeLineServer
from fao.testing.processes import ServiceProcess


@pytest_asyncio.fixture
async def fao(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[Fao]:
    target = Target()
    await target.start()
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(CONFIG.replace("{port}", str(target.port)), encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    async with FakeLineServer(access_token="test-token") as line:
        env = {
            "FAO_NATS_URL": nats_url,
            "FAO_MONGO_URL": mongo_url,
            "FAO_MONGO_DB": mongo_db.name,
            "FAO_LINE_CHANNEL_ACCESS_TOKEN": "test-token",
            "FAO_LINE_API_BASE": line.base_url,
            "FAO_LINE_BACKOFF_BASE": "0.1",
            "FAO_PROBER_ID": "p1",
            "NO_PROXY": "127.0.0.1",
        }
        system = Fao(mongo_db, line, target)
        try:
            for name in ("correlator", "notifier", "reporter", "prober"):
                system.services[name] = ServiceProcess(name, env, tmp_path)
                await asyncio.to_thread(system.services[name].start)
            yield system
        finally:
            for service in system.services.values():
                service.stop()
            await target.stop()
