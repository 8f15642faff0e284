"""``POST /push/<token>``: heartbeats of push monitors (batch jobs that must report in).

A push monitor (``check: {type: push, token_sha256: …, grace: …}``) is run by no prober: the job
it watches calls ``POST /push/<token>`` (or ``GET``, for jobs that can only fetch a URL) after each
successful run. The token is random (``fao.schemas.checks.new_push_token``; ``fao push-token``
prints one), the config keeps only its SHA-256, so a leaked config file does not let anyone fake
heartbeats. Each heartbeat is published as a successful ``CheckResult`` (``prober_id`` ``gateway``, the monitor's
first zone); the correlator turns a missing heartbeat into failures
(``fao.correlator.policy.missed_heartbeats``), so a late one is down and the next heartbeat starts
its recovery.

Answers: 200 ``{"monitor": id}`` recorded; 404 for an unknown token and for a disabled monitor
(the same answer, so tokens cannot be probed for monitors); 503 when the result cannot be
published (the job may retry). The token never appears in logs: requests are logged by the
monitor id, or by the first 8 hex digits of the token's hash when unknown.

Mount with ``app.include_router(push_router(PushHeartbeats(monitors, publish)))``: ``monitors``
gives the current monitors (the gateway follows the ``fao-monitors`` KV bucket), ``publish``
sends a result to ``fao.results.<monitor>`` (``fao.schemas.subjects.result_subject``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Final

import structlog
from fastapi import APIRouter, HTTPException

from fao.schemas import CheckResult, Monitor
from fao.schemas.checks import push_token_sha256

log = structlog.get_logger()

PUSH_PROBER: Final = "gateway"
"""The ``prober_id`` of heartbeat results."""


class PushHeartbeats:
    """Finds the push monitor of a token and publishes its heartbeat."""

    def __init__(
        self,
        monitors: Callable[[], Iterable[Monitor]],
        publish: Callable[[CheckResult], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._monitors = monitors
        self._publish = publish
        self._clock = clock

    def monitor_for(self, token: str) -> Monitor | None:
        digest = push_token_sha256(token)
        for monitor in self._monitors():
            check = monitor.check
            if (
                check.type == "push"
                and monitor.enabled
                and secrets.compare_digest(check.token_sha256, digest)
            ):
                return monitor
        return None

    async def beat(self, token: str) -> Monitor | None:
        """Record one heartbeat; ``None`` when no enabled push monitor has this token."""
        monitor = self.monitor_for(token)
        if monitor is None:
            log.info("push_unknown_token", token_sha256_prefix=push_token_sha256(token)[:8])
            return None
        await self._publish(
            CheckResult(
                monitor_id=monitor.id,
                system_id=monitor.system,
                zone=monitor.zones[0],
                prober_id=PUSH_PROBER,
                started_at=self._clock(),
                ok=True,
                latency_ms=0.0,
            )
        )
        log.info("push_heartbeat", monitor_id=monitor.id)
        return monitor


def push_router(heartbeats: PushHeartbeats) -> APIRouter:
    """The ``/push/{token}`` routes (POST and GET)."""
    router = APIRouter()

    @router.api_route("/push/{token}", methods=["POST", "GET"])
    async def push(token: str) -> dict[str, str]:
        if not 16 <= len(token) <= 128:
            raise HTTPException(status_code=404, detail="unknown push token")
        try:
            monitor = await heartbeats.beat(token)
        except Exception as exc:  # the bus is away: the job may retry
            log.warning("push_not_recorded", error=type(exc).__name__)
            raise HTTPException(status_code=503, detail="heartbeat not recorded, try again") from None
        if monitor is None:
            raise HTTPException(status_code=404, detail="unknown push token")
        return {"monitor": monitor.id}

    return router
