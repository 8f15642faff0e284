"""pytest plugin (``-p fao.testing.plugin``): real nats-server and FerretDB for tests.

- ``mongo_url``: FerretDB v1 (SQLite) started once per session on a free loopback port, or the
  server named by ``FAO_TEST_MONGO_URL``. Each test gets its own database (``mongo_db_name``).
- ``nats_url``: nats-server with JetStream started once per session on a free loopback port, or
  the server named by ``FAO_TEST_NATS_URL``. Before each test every Fao stream (with its durable
  consumers) and bucket is deleted, so nothing leaks from one test into the next.
- ``js``: a JetStream context on that server with every Fao stream and bucket created.
- ``fake_line``: the fake LINE Messaging API server; the real line-bot-sdk talks to it.

Order: files with a test that declares its own ``timeout`` mark (the long scenarios, minutes of
real time) run first, the longest declared first; the rest keep their order. ``make pytest`` runs
files in parallel (pytest-xdist, ``--dist loadfile``): the long ones start at once instead of
holding up the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.bus import STREAMS, ensure_bus
from fao.runtime.launch import LocalServer, start_ferretdb, start_nats
from fao.runtime.store import Document, connect
from fao.schemas import subjects
from fao.testing.fake_line import FakeLineServer


def _declared_timeout(item: pytest.Item) -> float:
    """Seconds of the test's ``timeout`` mark (pytest-timeout); 0 without one."""
    marker = item.get_closest_marker("timeout")
    if marker is None:
        return 0.0
    return float(marker.args[0] if marker.args else marker.kwargs.get("timeout", 0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files by the longest ``timeout`` one of their tests declares, longest first. A stable sort:
    files that declare none keep their order, and each file its tests' order."""
    longest: dict[str, float] = {}
    for item in items:
        longest[item.location[0]] = max(longest.get(item.location[0], 0.0), _declared_timeout(item))
    items.sort(key=lambda item: -longest[item.location[0]])


def _server_url(
    env: str, start: Callable[[Path], LocalServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL in ``env`` if set, else a server of our own for the session."""
    if url := os.environ.get(env):
        yield url
        return
    server = start(tmp_path_factory.mktemp(env.lower()))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _server_url("FAO_TEST_MONGO_URL", start_ferretdb, tmp_path_factory)


async def _reset_shared_nats(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for spec in STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(spec.name)
        for bucket in (
            subjects.MONITORS_BUCKET,
            subjects.PROBERS_BUCKET,
            subjects.MAINTENANCE_BUCKET,
            subjects.LEASES_BUCKET,
            subjects.STATE_BUCKET,
        ):
            with contextlib.suppress(NotFoundError):
                await js.delete_key_value(bucket)
        with contextlib.suppress(NotFoundError):
            await js.delete_object_store(subjects.SCREENSHOTS_BUCKET)
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def nats_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _server_url("FAO_TEST_NATS_URL", start_nats, tmp_path_factory)


@pytest_asyncio.fixture
async def nats_url(nats_server_url: str) -> str:
    await _reset_shared_nats(nats_server_url)
    return nats_server_url


@pytest_asyncio.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """JetStream on the test's nats-server, with every Fao stream and bucket created."""
    nc = await nats.connect(nats_url)
    try:
        jsc = nc.jetstream()
        await ensure_bus(jsc)
        yield jsc
    finally:
        await nc.close()


@pytest.fixture
def mongo_db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Document]]:
    client = connect(mongo_url)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture
async def mongo_db(
    mongo_client: AsyncMongoClient[Document], mongo_db_name: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    db = mongo_client[mongo_db_name]
    try:
        yield db
    finally:
        await mongo_client.drop_database(mongo_db_name)


@pytest_asyncio.fixture
async def fake_line() -> AsyncIterator[FakeLineServer]:
    async with FakeLineServer(access_token="test-token") as server:
        yield server
