"""Each monitor's most recent check results, heard as they pass on ``fao.results.>``.

The correlator stores only what its decisions need (the monitor states: outcomes, no latency), so
the dashboard's recent results and latency sparklines come from the results themselves: a core
NATS subscription (no durable consumer, nothing acknowledged; the correlator's consumer is not
affected) keeping the newest ``RECENT`` results of each monitor in memory. A replica that just
started shows what it heard since; the API says so (``recent_results`` may be short).
"""

from __future__ import annotations

from collections import deque
from typing import Final

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from fao.schemas import CheckResult
from fao.schemas import subjects as s
from fao.schemas.results import ResultMessage

log = structlog.get_logger()

RECENT: Final = 60
# Monitors remembered at most (a bound on memory whatever arrives on the subject).
MAX_MONITORS: Final = 50_000


class RecentResults:
    def __init__(self, keep: int = RECENT) -> None:
        self._keep = keep
        self._by_monitor: dict[str, deque[CheckResult]] = {}
        self._subscription: Subscription | None = None

    def add(self, result: CheckResult) -> None:
        recent = self._by_monitor.get(result.monitor_id)
        if recent is None:
            if len(self._by_monitor) >= MAX_MONITORS:
                return
            recent = self._by_monitor[result.monitor_id] = deque(maxlen=self._keep)
        recent.append(result)

    def of(self, monitor_id: str) -> list[CheckResult]:
        """Oldest first."""
        return sorted(self._by_monitor.get(monitor_id, ()), key=lambda r: r.started_at)

    async def _on_message(self, msg: Msg) -> None:
        try:
            message = ResultMessage.model_validate_json(msg.data)
        except ValidationError:
            return  # not ours to judge: the correlator dead-letters it
        for result in message.results:
            self.add(result)

    async def start(self, nc: Client) -> None:
        self._subscription = await nc.subscribe(s.RESULTS_SUBJECTS, cb=self._on_message)

    async def stop(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # a closed connection: nothing left to stop
                log.debug("results_feed_unsubscribe_failed", error=f"{type(exc).__name__}: {exc}")
            self._subscription = None
