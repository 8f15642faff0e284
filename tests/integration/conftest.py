"""A whole Fao on loopback for end-to-end tests: real NATS, FerretDB, service processes, fake LINE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import CONFIG, Fao, Target, service_env

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
        env = service_env(nats_url, mongo_url, mongo_db.name, line, FAO_PROBER_ID="p1")
        system = Fao(mongo_db, nats_url, line, target)
        try:
            # the prober first: results from the first moment the correlator runs (a correlator
            # that waited for a slow-starting prober longer than a check's staleness said, rightly,
            # "probers silent": seen under a loaded full run)
            for name in ("prober", "correlator", "notifier", "reporter"):
                system.services[name] = ServiceProcess(name, env, tmp_path)
                await asyncio.to_thread(system.services[name].start)
            yield system
        finally:
            for service in system.services.values():
                service.stop()
            await target.stop()
