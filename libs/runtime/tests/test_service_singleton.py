"""``ServiceApp(singleton=True)``: one active instance, standbys wait with /healthz up, a clean stop
hands over at once, and a lost lease stops the service and makes the process exit non-zero."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator

import httpx
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from fao.runtime.launch import free_port
from fao.runtime.lease import lease_key, leases_bucket
from fao.runtime.service import LeaseLostError, Runtime, ServiceApp, new_broker, serve
from fao.runtime.settings import ServiceSettings

TTL = 2.0
NAME = "t-singleton"


@pytest.fixture
async def leases(nats_url: str) -> AsyncIterator[KeyValue]:
    nc: NatsClient = await nats.connect(nats_url)
    try:
        yield await leases_bucket(nc.jetstream(), TTL)
    finally:
        await nc.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


class Instance:
    """One in-process instance of the test service and what its hooks saw."""

    def __init__(self, nats_url: str, label: str) -> None:
        self.port = free_port()
        settings = ServiceSettings(nats_url=nats_url, http_port=self.port, lease_ttl=TTL, log_level="warning")
        self.events: list[str] = []
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()

        async def on_start(_: Runtime) -> None:
            self.events.append(f"{label} started")

        async def on_stop(_: Runtime) -> None:
            self.events.append(f"{label} stopped")

        app = ServiceApp(
            NAME, settings, new_broker(settings), on_start=on_start, on_stop=on_stop,
            uses_mongo=False, singleton=True,
        )  # fmt: skip
        self.task = asyncio.create_task(serve(app, self.stop, self.ready))

    async def healthz(self) -> int:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{self.port}/healthz")).status_code

    async def wait_healthz(self, timeout: float = 10.0) -> int:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    return await self.healthz()
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(LeaseLostError):
            await asyncio.wait_for(self.task, 15.0)


async def test_standby_waits_then_takes_over_at_once_and_stops_when_it_loses_the_lease(
    nats_url: str, leases: KeyValue
) -> None:
    first = Instance(nats_url, "first")
    await asyncio.wait_for(first.ready.wait(), 10.0)
    second = Instance(nats_url, "second")
    try:
        assert await second.wait_healthz() == 200, "a standby serves /healthz before it is active"
        done, _ = await asyncio.wait({asyncio.ensure_future(second.ready.wait())}, timeout=1.5 * TTL)
        assert not done, "the second instance must stay standby while the first is active"
        assert first.events == ["first started"]
        assert second.events == []

        first.stop.set()
        await asyncio.wait_for(first.task, 10.0)
        assert first.events == ["first started", "first stopped"]
        await asyncio.wait_for(second.ready.wait(), TTL)  # released: taken over within one poll
        assert second.events == ["second started"]

        await leases.put(lease_key(NAME), b"someone-else")
        with pytest.raises(LeaseLostError):
            await asyncio.wait_for(second.task, 2 * TTL)
        assert second.events == ["second started", "second stopped"]
        assert (await leases.get(lease_key(NAME))).value == b"someone-else"
    finally:
        await first.close()
        await second.close()


async def test_a_standby_stopped_before_it_is_active_never_starts(nats_url: str) -> None:
    active = Instance(nats_url, "active")
    await asyncio.wait_for(active.ready.wait(), 10.0)
    standby = Instance(nats_url, "standby")
    try:
        await standby.wait_healthz()
        standby.stop.set()
        await asyncio.wait_for(standby.task, 5.0)
        assert standby.events == []
        assert active.events == ["active started"]
    finally:
        await standby.close()
        await active.close()


SERVICE_SCRIPT = """
from fao.runtime.service import ServiceApp, new_broker, run
from fao.runtime.settings import ServiceSettings

settings = ServiceSettings()
run(lambda: ServiceApp("t-process", settings, new_broker(settings), uses_mongo=False, singleton=True))
"""


async def wait_active(proc: asyncio.subprocess.Process, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """Read the process's JSON log lines until it says it is active."""
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while line := await proc.stdout.readline():
            if json.loads(line).get("event") == "active":
                return
    raise AssertionError("the service exited before it became active")


async def test_the_process_exits_0_on_sigterm_and_1_when_it_loses_the_lease(
    nats_url: str, leases: KeyValue
) -> None:
    env = {**os.environ, "FAO_NATS_URL": nats_url, "FAO_LEASE_TTL": str(TTL), "FAO_HTTP_PORT": "-1"}
    hostname = socket.gethostname()

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVICE_SCRIPT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    clean = await start()
    try:
        await wait_active(clean)
        assert (await leases.get(lease_key("t-process"))).value == f"{hostname}-{clean.pid}".encode()
        clean.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(clean.wait(), 15.0) == 0
        with pytest.raises(KeyNotFoundError):
            await leases.get(lease_key("t-process"))
    finally:
        if clean.returncode is None:
            clean.kill()
            await clean.wait()

    crashing = await start()
    try:
        await wait_active(crashing)
        await leases.put(lease_key("t-process"), b"someone-else")
        assert await asyncio.wait_for(crashing.wait(), 15.0) == 1
    finally:
        if crashing.returncode is None:
            crashing.kill()
            await crashing.wait()


async def test_a_singleton_waiting_for_nats_says_fao_service_active_0() -> None:
    """Found black-box: while a restarted correlator or notifier waited for NATS, its /metrics had
    no ``fao_service_active`` at all (the gauge was first set once NATS answered), so an alert on
    ``fao_service_active == 0`` (or on no instance being 1) saw nothing to compare."""
    name = "t-singleton-waiting"
    port = free_port()
    nowhere = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    settings = ServiceSettings(nats_url=nowhere, http_port=port, lease_ttl=TTL, log_level="warning")
    app = ServiceApp(name, settings, new_broker(settings), uses_mongo=False, singleton=True)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop))
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(10):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    health = await client.get(f"http://127.0.0.1:{port}/healthz")
                    break
                await asyncio.sleep(0.05)
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert health.status_code == 503, health.text
        assert f'fao_service_active{{service="{name}"}} 0.0' in metrics.splitlines(), metrics
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)
