"""The prober process: follows monitor definitions in KV and publishes results to JetStream.

Runs every enabled monitor listed for its zone (``FAO_ZONE``). Results are published in batches,
each with a ``Nats-Msg-Id`` so a retried batch is stored once. The prober needs no database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Iterator

import structlog
from nats.js import JetStreamContext
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fao.prober.checks.registry import CheckerRegistry
from fao.prober.runner import ProbeRunner
from fao.prober.scheduler import Scheduler
from fao.prober.sink import BatchingSink
from fao.runtime.inventory import MonitorCatalog
from fao.runtime.service import Runtime, ServiceApp, new_broker
from fao.runtime.settings import ServiceSettings
from fao.schemas import CheckResult, Monitor
from fao.schemas.subjects import result_subject

log = structlog.get_logger()
SERVICE = "prober"

PUBLISHED = Counter("fao_prober_results_published_total", "Results accepted by JetStream", ["outcome"])
MONITORS = Gauge("fao_prober_monitors", "Monitors this prober runs")


class ProberSettings(ServiceSettings):
    zone: str = "default"
    prober_id: str = f"{socket.gethostname()}-{os.getpid()}"
    concurrency: int = 100


class ProberCollector(Collector):
    """The runner's and sink's own counters, read at scrape time (no bookkeeping on the hot path)."""

    def __init__(self, prober: Prober) -> None:
        self._prober = prober

    def collect(self) -> Iterator[Metric]:
        runner, sink = self._prober.runner, self._prober.sink
        yield CounterMetricFamily(
            "fao_prober_checks", "Checks whose result reached the sink", value=runner.checks_completed
        )
        yield CounterMetricFamily(
            "fao_prober_check_errors",
            "Checks that failed inside the prober (logged)",
            value=runner.checks_errored,
        )
        yield GaugeMetricFamily("fao_prober_checks_in_flight", "Checks running now", value=runner.in_flight)
        yield GaugeMetricFamily(
            "fao_prober_results_buffered", "Results waiting to be published", value=sink.pending
        )
        yield CounterMetricFamily(
            "fao_prober_results_dropped", "Results dropped: buffer over its cap", value=sink.dropped
        )
        yield CounterMetricFamily(
            "fao_prober_results_oversized",
            "Results dropped: larger than the results stream accepts",
            value=sink.oversized,
        )
        yield CounterMetricFamily(
            "fao_prober_publish_failures", "Batch publishes that failed (retried)", value=sink.flush_failures
        )


class Prober:
    """The running parts: KV catalog → runner (scheduler + checkers) → batching sink → JetStream."""

    def __init__(self, settings: ProberSettings, js: JetStreamContext) -> None:
        self._settings = settings
        self._js = js
        self.registry = CheckerRegistry.builtin()
        self.sink = BatchingSink(self._publish)
        self.runner = ProbeRunner(
            Scheduler(random.Random()), self.registry, self.sink,
            zone=settings.zone, prober_id=settings.prober_id, concurrency=settings.concurrency,
        )  # fmt: skip
        self.catalog = MonitorCatalog(js, self._on_change)
        self._task: asyncio.Task[None] | None = None
        self._collector: ProberCollector | None = None

    async def _publish(self, batch: list[CheckResult]) -> None:
        acks = await asyncio.gather(
            *(
                self._js.publish(
                    result_subject(r.monitor_id), r.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": r.msg_id}, timeout=5.0,
                )
                for r in batch
            )
        )  # fmt: skip
        PUBLISHED.labels("stored").inc(sum(1 for a in acks if not a.duplicate))

    def _on_change(self, monitor_id: str, monitor: Monitor | None) -> None:
        if monitor is not None and monitor.enabled and self._settings.zone in monitor.zones:
            self.runner.upsert(monitor)
        else:
            self.runner.remove(monitor_id)
        MONITORS.set(self.runner.monitor_count)

    async def start(self) -> None:
        self._collector = ProberCollector(self)
        REGISTRY.register(self._collector)
        self._task = asyncio.create_task(self.runner.run(), name="probe-runner")
        await self.catalog.start()
        log.info(
            "prober_ready", zone=self._settings.zone, prober=self._settings.prober_id,
            monitors=self.runner.monitor_count,
        )  # fmt: skip

    async def stop(self) -> None:
        await self.catalog.stop()
        self.runner.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sink.aclose()
        await self.registry.aclose()
        if self._collector is not None:
            REGISTRY.unregister(self._collector)


def build(settings: ProberSettings | None = None) -> ServiceApp:
    settings = settings or ProberSettings()
    broker = new_broker(settings)
    running: list[Prober] = []

    async def on_start(rt: Runtime) -> None:
        prober = Prober(settings, rt.js)
        await prober.start()
        running.append(prober)

    async def on_stop(_: Runtime) -> None:
        for prober in running:
            await prober.stop()

    return ServiceApp(SERVICE, settings, broker, on_start=on_start, on_stop=on_stop, uses_mongo=False)
