"""Shared fixtures: a monitor factory and a real aiohttp.web target on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from fao.schemas import Monitor

MonitorFactory = Callable[..., Monitor]


@pytest.fixture
def make_monitor() -> MonitorFactory:
    """Build a valid ``Monitor``; keyword arguments override fields, ``check`` defaults to a TCP check."""

    def build(monitor_id: str = "web", **overrides: Any) -> Monitor:
        fields: dict[str, Any] = {
            "id": monitor_id,
            "system": "portal",
            "check": {"type": "tcp", "host": "127.0.0.1", "port": 9},
            "interval": 60.0,
            "timeout": 5.0,
            "recheck_interval": 10.0,
        }
        fields.update(overrides)
        return Monitor.model_validate(fields)

    return build


class Target:
    """Handlers the checks run against; ``fail_next`` makes /flaky answer 500 that many times."""

    def __init__(self) -> None:
        self.fail_next = 0
        self.hits: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/ok", self.ok)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/loop", self.loop)
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_get("/big", self.big)
        app.router.add_get("/thai", self.thai)
        app.router.add_get("/set-cookie", self.set_cookie)
        app.router.add_get("/cookies", self.cookies)
        app.router.add_get("/flaky", self.flaky)
        return app

    def _hit(self, request: web.Request) -> None:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1

    async def ok(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(text="hello fao world")

    async def status(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response(
            {"method": request.method, "x_fao": request.headers.get("X-Fao", ""), "body": body}
        )

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (2 << 20) + b"needle", content_type="text/plain")

    async def thai(self, request: web.Request) -> web.Response:
        return web.Response(body="สวัสดีชาวโลก".encode("tis-620"), content_type="text/html", charset="tis-620")

    async def set_cookie(self, request: web.Request) -> web.Response:
        response = web.Response(text="set")
        response.set_cookie("session", "abc")
        return response

    async def cookies(self, request: web.Request) -> web.Response:
        return web.Response(text=f"cookies={sorted(request.cookies)}")

    async def flaky(self, request: web.Request) -> web.Response:
        self._hit(request)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="broken")
        return web.Response(text="fine")


@pytest.fixture(scope="session")
async def target_server() -> AsyncIterator[tuple[str, Target]]:
    """A real aiohttp.web server on 127.0.0.1; yields its base URL and handler state."""
    target = Target()
    runner = web.AppRunner(target.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", target
    await runner.cleanup()


@pytest.fixture
def target(target_server: tuple[str, Target]) -> Target:
    """The target's handler state, reset for each test."""
    state = target_server[1]
    state.fail_next = 0
    state.hits.clear()
    return state


@pytest.fixture
def base_url(target_server: tuple[str, Target]) -> str:
    return target_server[0]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
