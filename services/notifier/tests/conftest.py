"""Fixtures for the notifier tests: real servers, the fake LINE API, and a running notifier.

- ``db``: this test's database on the session's FerretDB; ``nats_url`` is a nats-server of its
  own (both from ``fao.testing.plugin``).
- ``line``: a `FakeLineServer` that knows the test groups (a push to any other group gets 400).
- ``stack``: ties them together: publishes events, inserts inventory, starts and stops notifier
  processes in-process with ``serve``, and waits for the consumer to settle.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable

import nats
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from services.notifier.tests.stack import GROUP, GROUP_2, TOKEN, Stack, make_event, make_incident

from fao.runtime.bus import ensure_streams
from fao.runtime.store import Document
from fao.schemas import Incident, IncidentEvent
from fao.testing.fake_line import FakeLineServer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FAO_* setting of the developer's shell leaks in; loopback traffic never goes to a proxy."""
    for name in list(os.environ):
        if name.startswith("FAO_") and not name.startswith("FAO_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def db(mongo_db: AsyncDatabase[Document]) -> AsyncDatabase[Document]:
    """This test's own database on the session's FerretDB (``fao.testing.plugin``)."""
    return mongo_db


@pytest.fixture
async def line() -> AsyncIterator[FakeLineServer]:
    async with FakeLineServer(access_token=TOKEN, groups={GROUP: 7, GROUP_2: 3}) as server:
        yield server


@pytest.fixture(name="make_event")
def _make_event() -> Callable[..., IncidentEvent]:
    """``make_event(type="opened", incident=None, *, actor=None, text="")``: an event of the
    standard test incident (a ``resolved`` one gets a resolution 1 h 12 min after the start)."""
    return make_event


@pytest.fixture(name="make_incident")
def _make_incident() -> Callable[..., Incident]:
    """``make_incident(id=..., **changes)``: the standard test incident, changed."""
    return make_incident


@pytest.fixture
async def stack(
    nats_url: str,
    mongo_url: str,
    db: AsyncDatabase[Document],
    line: FakeLineServer,
) -> AsyncIterator[Stack]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    st = Stack(nats_url, mongo_url, db.name, db, line, nc, js)
    try:
        yield st
    finally:
        for running in st.running:
            if not running.task.done():
                await running.stop()
        await nc.close()
        # serve() routes SIGINT/SIGTERM to its stop event; give them back to pytest.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
