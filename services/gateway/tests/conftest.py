"""Fixtures for the gateway tests (``services.gateway.tests.stack`` has the stack itself).

- ``gw``: a ``GatewayStack``: posts webhooks signed like LINE's (``fao.testing.fake_line``'s
  event builders), counts what reached ``FAO_COMMANDS``, reads the gateway's collections.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import nats
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.stack import GROUP, SECRET, GatewayStack, add_inventory, make_handler

from fao.gateway.app import create_app
from fao.gateway.line_api import SdkLine
from fao.gateway.rejections import RejectionWatch
from fao.gateway.replies import load_replies
from fao.gateway.store import GatewayStore
from fao.runtime.bus import ensure_bus
from fao.runtime.store import Document
from fao.testing.fake_line import FakeLineServer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FAO_* setting of the developer's shell leaks in; loopback never goes through a proxy."""
    for name in list(os.environ):
        if name.startswith("FAO_") and not name.startswith("FAO_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def gw(
    nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document], fake_line: FakeLineServer
) -> AsyncIterator[GatewayStack]:
    fake_line.add_group(GROUP, 5)
    fake_line.set_group_name(GROUP, "ทีมพัฒนาระบบงาน แจ้งเตือน")
    await add_inventory(mongo_db)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_bus(js)
    line = SdkLine(fake_line.base_url, "test-token", timeout=5)
    await line.start()
    store = GatewayStore(mongo_db)
    watch = RejectionWatch(store, line, load_replies(), window=30)
    await watch.start(nc)
    handler, reports = make_handler(mongo_db, js, line, watch)
    app = create_app(lambda: handler, SECRET, 64 * 1024)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield GatewayStack(mongo_url, mongo_db, js, fake_line, client, handler, reports)
    finally:
        await watch.stop()
        await line.stop()
        await nc.close()
