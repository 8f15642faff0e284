"""A small web site for the embedded demo that goes down and comes back on a timetable.

It serves an "e-Service" page on 127.0.0.1; every ``period`` seconds it answers 503 for ``outage``
seconds, so a fresh ``fao dev up`` shows an incident open and resolve within a few minutes.
"""

from __future__ import annotations

import time

from aiohttp import web

PAGE = "<html><body><h1>e-Service</h1><p>ระบบบริการอิเล็กทรอนิกส์</p></body></html>"


class DemoTarget:
    def __init__(
        self, host: str, port: int, period: float, outage: float, started: float | None = None
    ) -> None:
        self.host, self.port, self.period, self.outage = host, port, period, outage
        self._started = time.monotonic() if started is None else started
        self._runner: web.AppRunner | None = None

    def is_down(self, now: float) -> bool:
        """Down during the last ``outage`` seconds of every ``period``."""
        return (now - self._started) % self.period >= self.period - self.outage

    async def _page(self, _: web.Request) -> web.Response:
        if self.is_down(time.monotonic()):
            return web.Response(status=503, text="maintenance: service unavailable")
        return web.Response(text=PAGE, content_type="text/html")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
