"""A small site for the embedded demo that goes away and comes back on a timetable.

It stands for everything behind the core switch on 127.0.0.1: an "e-Service" page at ``/`` and a
webmail page at ``/mail``. For the last ``outage`` seconds of every ``period`` it stops listening
altogether (as if the switch were down), so HTTP and TCP checks of it fail together and a fresh
``fao dev up`` shows an incident open and resolve within a few minutes. A request on a connection
that was already open when the outage began is answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

PAGES = {
    "/": "<html><body><h1>e-Service</h1><p>ระบบบริการอิเล็กทรอนิกส์</p></body></html>",
    "/mail": "<html><body><h1>Webmail</h1><p>ระบบจดหมายอิเล็กทรอนิกส์</p></body></html>",
}
PAGE = PAGES["/"]
# While the port should be open but cannot be bound (taken for a moment), try again this often.
REBIND_RETRY = 1.0


class DemoTarget:
    def __init__(
        self, host: str, port: int, period: float, outage: float, started: float | None = None
    ) -> None:
        self.host, self.port, self.period, self.outage = host, port, period, outage
        self._started = time.monotonic() if started is None else started
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._timetable: asyncio.Task[None] | None = None

    def is_down(self, now: float) -> bool:
        """Down during the last ``outage`` seconds of every ``period``."""
        return (now - self._started) % self.period >= self.period - self.outage

    def until_change(self, now: float) -> float:
        """Seconds from ``now`` until ``is_down`` flips."""
        phase = (now - self._started) % self.period
        up_for = self.period - self.outage
        return up_for - phase if phase < up_for else self.period - phase

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def _page(self, request: web.Request) -> web.Response:
        if self.is_down(time.monotonic()):
            return web.Response(status=503, text="service unavailable")
        return web.Response(text=PAGES[request.path], content_type="text/html")

    async def _listen(self) -> None:
        assert self._runner is not None
        assert self._runner.server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._runner.server, self.host, self.port, reuse_address=True)

    def _close(self) -> None:
        if self._server is not None:
            self._server.close()  # stops accepting; open connections finish on their own
            self._server = None

    async def _follow_timetable(self) -> None:
        while True:
            want_up = not self.is_down(time.monotonic())
            if want_up and self._server is None:
                with contextlib.suppress(OSError):
                    await self._listen()
            elif not want_up:
                self._close()
            wait = self.until_change(time.monotonic())
            if want_up and self._server is None:
                wait = min(wait, REBIND_RETRY)
            await asyncio.sleep(max(wait, 0.01))

    async def start(self) -> None:
        """Serve the pages; raises ``OSError`` when the port cannot be bound now."""
        app = web.Application()
        for path in PAGES:
            app.router.add_get(path, self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        if not self.is_down(time.monotonic()):
            await self._listen()
        self._timetable = asyncio.create_task(self._follow_timetable(), name="demo-timetable")

    async def stop(self) -> None:
        if self._timetable is not None:
            self._timetable.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timetable
        self._close()
        if self._runner is not None:
            await self._runner.cleanup()
