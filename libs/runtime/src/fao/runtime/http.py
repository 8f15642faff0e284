"""Per-service ``/healthz`` and Prometheus ``/metrics`` on a small aiohttp server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = structlog.get_logger()

HealthCheck = Callable[[], Awaitable[bool]]


class OpsServer:
    """Serves ``/healthz`` (200 when every named check passes, 503 otherwise) and ``/metrics``."""

    def __init__(self, host: str, port: int, checks: dict[str, HealthCheck]) -> None:
        self._host = host
        self._port = port
        self._checks = checks
        self._runner: web.AppRunner | None = None
        self.port = port

    async def _healthz(self, _: web.Request) -> web.Response:
        results: dict[str, bool] = {}
        for name, check in self._checks.items():
            try:
                results[name] = await check()
            except Exception:
                results[name] = False
        ok = all(results.values())
        return web.json_response(
            {"status": "ok" if ok else "failing", "checks": results}, status=200 if ok else 503
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        if server is not None and self._port == 0:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("ops_http_listening", url=f"http://{self._host}:{self.port}", paths=["/healthz", "/metrics"])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
