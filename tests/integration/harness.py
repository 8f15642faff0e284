"""Helpers for end-to-end tests: an HTTP target to break, the running system, and polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.states import state_doc
from fao.runtime.store import Document
from fao.testing.fake_line import FakeLineServer
from fao.testing.processes import ServiceProcess

GROUP = "C" + "a1" * 16
OTHER_GROUP = "C" + "b2" * 16
SYSTEM_TH = "ระบบบริการอิเล็กทรอนิกส์"

CONFIG = f"""
teams:
  - id: apps
    name: ทีมพัฒนาระบบงาน
    line_groups: ["{GROUP}"]
  - id: noc
    name: NOC
    line_groups: ["{OTHER_GROUP}"]
systems:
  - id: e-service
    name: e-Service portal
    name_th: {SYSTEM_TH}
    team: apps
  - id: network
    name: Network
    team: noc
monitors:
  - id: e-service-home
    system: e-service
    name: หน้าแรก
    check: {{type: http, url: "http://127.0.0.1:{{port}}/", expected_status: [200], keyword: "e-Service"}}
    interval: 1s
    timeout: 500ms
    recheck_interval: 200ms
    confirm: {{failures: 2, of: 3}}
    quiet_period: 2s
"""


class Target:
    """An HTTP service on 127.0.0.1 that a test switches down (HTTP 503) and up."""

    def __init__(self) -> None:
        self.down = False
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _page(self, _: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503, text="unavailable")
        return web.Response(text="<h1>e-Service</h1>")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Fao:
    db: AsyncDatabase[Document]
    nats_url: str
    line: FakeLineServer
    target: Target
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    async def monitor_state(self, monitor_id: str) -> Document | None:
        """The correlator's stored state of ``monitor_id`` (None: none yet, or NATS away)."""
        return await monitor_state(self.nats_url, monitor_id)

    def restart(self, name: str) -> None:
        self.services[name].kill()
        self.services[name].start()

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{s.output()}" for n, s in self.services.items())


async def monitor_state(nats_url: str, monitor_id: str) -> Document | None:
    """The correlator's stored state of ``monitor_id`` from the state bucket (None: none yet, or
    NATS cannot be reached)."""
    try:
        nc = await nats.connect(nats_url, allow_reconnect=False, connect_timeout=2)
    except Exception:  # NATS away (an outage test): not known now
        return None
    try:
        return await state_doc(nc.jetstream(), monitor_id)
    finally:
        await nc.close()


def service_env(
    nats_url: str, mongo_url: str, mongo_db: str, line: FakeLineServer, **extra: str
) -> dict[str, str]:
    """The environment of a Fao service process talking to the test's servers and fake LINE."""
    return {
        "FAO_NATS_URL": nats_url,
        "FAO_MONGO_URL": mongo_url,
        "FAO_MONGO_DB": mongo_db,
        "FAO_LINE_CHANNEL_ACCESS_TOKEN": "test-token",
        "FAO_LINE_API_BASE": line.base_url,
        "FAO_LINE_BACKOFF_BASE": "0.1",
        # The quarterly owner review is due at any time of a quarter: its pushes would be counted.
        "FAO_REVIEW_ENABLED": "false",
        "NO_PROXY": "127.0.0.1",
        **extra,
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, what: str, fao: Fao | None = None
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for: {what}\n{fao.logs() if fao else ''}")


async def wait_pushes(fao: Fao, n: int, within: float) -> list[dict[str, Any]]:
    """``FakeLineServer.wait_for_pushes`` with the services' logs attached on failure."""
    try:
        return await fao.line.wait_for_pushes(n, timeout=within)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{fao.logs()}") from None
