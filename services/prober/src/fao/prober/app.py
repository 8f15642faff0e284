"""The prober process: follows monitor definitions in KV and publishes results to JetStream.

Runs the enabled monitors listed for its zone (``FAO_ZONE``) that rendezvous hashing gives it
among the zone's live probers (``membership.py``, ``fao.runtime.rendezvous``; alone, it runs them all), on
a grid shared by every prober (``cadence.py``), so a monitor that moves is checked at its usual
slot. Results are published in ``ResultBatch`` messages (``batches.py``, ``sink.py``), each with a
``Nats-Msg-Id`` so a retried batch is stored once. The prober needs no database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator

import structlog
from nats.js import JetStreamContext
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field

from fao.prober.batches import Batch, Batcher
from fao.prober.cadence import SharedCadence
from fao.prober.checks.registry import CheckerRegistry
from fao.prober.clock import Clock, SystemClock
from fao.prober.membership import Membership
from fao.prober.runner import ProbeRunner
from fao.prober.scheduler import Scheduler
from fao.prober.screenshots import ScreenshotKeeper
from fao.prober.sink import BatchingSink
from fao.runtime.inventory import MonitorCatalog
from fao.runtime.rendezvous import owner
from fao.runtime.service import Runtime, ServiceApp, new_broker
from fao.runtime.settings import ServiceSettings
from fao.schemas import PROBER_SKIPS, Monitor

log = structlog.get_logger()
SERVICE = "prober"

# A prober joining peers waits this long after registering before it runs its share: the others
# give those monitors up as soon as they see it (milliseconds), so no slot is run by both; a slot
# due in between is skipped once.
JOIN_SETTLE = 0.25

PUBLISHED = Counter("fao_prober_results_published_total", "Results accepted by JetStream", ["outcome"])
MONITORS = Gauge("fao_prober_monitors", "Monitors this prober runs")


class ProberSettings(ServiceSettings):
    zone: str = "default"
    prober_id: str = f"{socket.gethostname()}-{os.getpid()}"
    concurrency: int = Field(default=100, ge=1)
    # Checks at once against one target host (a URL's host, a TCP check's host).
    max_checks_per_host: int = Field(default=8, ge=1)
    # A results batch is published when it holds this many results (or its message would be over
    # the results stream's size limit), or when its oldest result has waited batch_max_delay seconds.
    batch_max_results: int = Field(default=256, ge=1)
    batch_max_delay: float = Field(default=0.05, ge=0.0, le=0.2)
    # Seconds a prober's heartbeat lives in the fao-probers bucket: a dead prober's monitors move
    # to the others within this long. Applied to the bucket only when the prober manages the bus.
    prober_ttl: float = Field(default=6.0, gt=0.0)


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
        yield GaugeMetricFamily(
            "fao_prober_members", "Live probers of this zone, this one included",
            value=len(self._prober.membership.members),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "fao_prober_checks_waiting_for_host",
            "Due checks waiting because their host has max_checks_per_host checks running",
            value=runner.waiting_for_host,
        )


class Prober:
    """The running parts: membership and KV catalog → runner (scheduler + checkers) → batching sink
    → JetStream."""

    def __init__(self, settings: ProberSettings, js: JetStreamContext, clock: Clock | None = None) -> None:
        self._settings = settings
        self._js = js
        clock = clock or SystemClock()
        started = clock.now()
        self.registry = CheckerRegistry.builtin()
        self.batcher = Batcher(
            prober_id=settings.prober_id, zone=settings.zone, boot=int(started.timestamp() * 1e6),
            max_count=settings.batch_max_results, max_delay=settings.batch_max_delay,
        )  # fmt: skip
        self.sink = BatchingSink(self.batcher, self._publish)
        self.screenshots = ScreenshotKeeper(js)
        cadence = SharedCadence(epoch=clock.monotonic() - started.timestamp())
        self.runner = ProbeRunner(
            Scheduler(cadence), self.registry, self.sink, zone=settings.zone, prober_id=settings.prober_id,
            concurrency=settings.concurrency, clock=clock, max_per_host=settings.max_checks_per_host,
            screenshots=self.screenshots,
        )  # fmt: skip
        self.membership = Membership(
            js, zone=settings.zone, prober_id=settings.prober_id, started_at=started,
            listener=self._members_changed,
            ttl=settings.prober_ttl if settings.nats_manage_streams else None,
        )  # fmt: skip
        self.catalog = MonitorCatalog(js, self._on_change)
        self._zone_monitors: dict[str, Monitor] = {}  # enabled monitors of this zone, any prober's
        self._task: asyncio.Task[None] | None = None
        self._collector: ProberCollector | None = None

    async def _publish(self, batch: Batch) -> None:
        ack = await self._js.publish(batch.subject, batch.body, headers=batch.headers, timeout=5.0)
        PUBLISHED.labels("duplicate" if ack.duplicate else "stored").inc(batch.count)

    def _mine(self, monitor_id: str) -> bool:
        members = self.membership.members
        return len(members) == 1 or owner(monitor_id, members) == self.membership.name

    def _assign(self, monitor: Monitor) -> None:
        if self._mine(monitor.id):
            self.runner.upsert(monitor)
        else:
            self.runner.remove(monitor.id)

    def _on_change(self, monitor_id: str, monitor: Monitor | None) -> None:
        if (
            monitor is not None
            and monitor.enabled
            and self._settings.zone in monitor.zones
            and monitor.check.type not in PROBER_SKIPS
        ):
            self._zone_monitors[monitor_id] = monitor
            self._assign(monitor)
        else:
            self._zone_monitors.pop(monitor_id, None)
            self.runner.remove(monitor_id)
        MONITORS.set(self.runner.monitor_count)

    def _members_changed(self, _members: frozenset[str]) -> None:
        for monitor in self._zone_monitors.values():
            self._assign(monitor)
        MONITORS.set(self.runner.monitor_count)

    async def start(self) -> None:
        self._collector = ProberCollector(self)
        REGISTRY.register(self._collector)
        await self.membership.start()  # the zone's members first: never run what a peer runs
        if len(self.membership.members) > 1:
            await asyncio.sleep(JOIN_SETTLE)
        self._task = asyncio.create_task(self.runner.run(), name="probe-runner")
        await self.catalog.start()
        log.info(
            "prober_ready", zone=self._settings.zone, prober=self._settings.prober_id,
            monitors=self.runner.monitor_count, zone_monitors=len(self._zone_monitors),
            probers=len(self.membership.members),
        )  # fmt: skip

    async def stop(self) -> None:
        await self.catalog.stop()
        self.runner.stop()  # no new checks before the others take our monitors over
        await self.membership.stop()
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
