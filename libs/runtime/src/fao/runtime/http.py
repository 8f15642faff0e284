"""Per-service ``/healthz`` and Prometheus ``/metrics``, answered from a thread of their own.

The service's event loop can be busy (a flood of messages) or, in the worst case, stuck; the ops
endpoints must answer anyway and say so truthfully. So they are served by a small stdlib HTTP
server in its own thread, which never touches the event loop:

- the health checks (async callables: a NATS ping, a MongoDB ping...) run *in the service's loop*,
  all at once, every ``interval`` seconds (default 1 s), each bounded by ``timeout`` (default 2 s);
  the results are kept as one snapshot;
- ``/healthz`` answers from the latest snapshot: 200 when every check passed, 503 otherwise. The
  snapshot's age is part of the answer (``age_s``) and of the verdict: a check ``event_loop`` is
  false when the loop has not refreshed the snapshot for ``stale_after`` seconds (default 10 s),
  so a loop that is stuck reads as unhealthy instead of as its last good state;
- ``/metrics`` renders the Prometheus registry (its collectors only read in-memory values).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = structlog.get_logger()

HealthCheck = Callable[[], Awaitable[bool]]
# Figures a service adds to the /healthz body (e.g. the notifier's undelivered messages); they
# inform, they never change the status code.
HealthDetails = Callable[[], Mapping[str, object]]

CHECK_INTERVAL = 1.0
CHECK_TIMEOUT = 2.0
STALE_AFTER = 10.0


class OpsServer:
    """Serves ``/healthz`` (see the module docstring) and ``/metrics`` on ``host:port`` (0: a free
    port, in ``port`` after ``start``). ``checks`` is read at every refresh: checks added later count."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Mapping[str, HealthCheck],
        *,
        interval: float = CHECK_INTERVAL,
        timeout: float = CHECK_TIMEOUT,
        stale_after: float = STALE_AFTER,
        details: HealthDetails | None = None,
    ) -> None:
        self._host = host
        self._details = details
        self._details_snapshot: Mapping[str, object] = {}
        self._checks = checks
        self._interval = interval
        self._timeout = timeout
        self._stale_after = stale_after
        # (results, monotonic time of the refresh): replaced as a whole, read by the HTTP thread.
        self._snapshot: tuple[dict[str, bool], float] = ({}, time.monotonic())
        self._refresher: asyncio.Task[None] | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    async def refresh(self) -> dict[str, bool]:
        """Run every check now (concurrently, each within ``timeout``) and keep the results."""
        names = list(self._checks)
        outcomes = await asyncio.gather(
            *(self._run_check(self._checks[name]) for name in names), return_exceptions=True
        )
        results = {name: outcome is True for name, outcome in zip(names, outcomes, strict=True)}
        if self._details is not None:
            try:
                self._details_snapshot = dict(self._details())
            except Exception as exc:  # figures are informative: never let them break /healthz
                self._details_snapshot = {"error": f"{type(exc).__name__}: {exc}"}
        self._snapshot = (results, time.monotonic())
        return results

    async def _run_check(self, check: HealthCheck) -> bool:
        async with asyncio.timeout(self._timeout):
            return bool(await check())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    def health(self) -> tuple[int, dict[str, object]]:
        """The ``/healthz`` status code and body, from the latest snapshot (any thread)."""
        results, at = self._snapshot
        age = time.monotonic() - at
        checks = {**results, "event_loop": age <= self._stale_after}
        ok = all(checks.values())
        body: dict[str, object] = {
            "status": "ok" if ok else "failing",
            "checks": checks,
            "age_s": round(age, 3),
        }
        if self._details is not None:
            body["details"] = self._details_snapshot
        return (200 if ok else 503), body

    async def start(self) -> None:
        """Evaluate the checks once, then listen (so the first answer is already a real one)."""
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="ops-health-refresh")
        self._httpd = ThreadingHTTPServer((self._host, self.port), _handler(self))
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="fao-ops-http", daemon=True
        )
        self._thread.start()
        log.info("ops_http_listening", url=f"http://{self._host}:{self.port}", paths=["/healthz", "/metrics"])

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            await asyncio.to_thread(httpd.shutdown)  # waits at most one poll_interval
            httpd.server_close()


def _handler(ops: OpsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                status, body = ops.health()
                self._reply(status, json.dumps(body).encode(), "application/json")
            elif path == "/metrics":
                self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, b"not found\n", "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # the stdlib's parameter name
            """No access log: probes come every few seconds."""

    return Handler
