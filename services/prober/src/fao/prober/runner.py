"""The asyncio loop that drives the scheduler: start due checks, record results, hand them to the sink.

One loop for all monitors. It takes a concurrency slot (``asyncio.Semaphore``), then waits until the
scheduler has a run due, sleeping until ``next_due()`` or until woken: ``upsert``/``remove`` and a
finished check whose next run is earlier than the current sleep set the wake-up ``Event``, so config
changes and re-checks take effect at once. Due monitors wait in the scheduler's heap rather than as
parked tasks, so an update or removal still applies to them while the prober is saturated.

A sleep ends up to ``WAKE_SLACK`` (10 ms) after the run it waits for is due, so runs due close
together share one wake-up (a prober paced at hundreds of checks a second would otherwise wake once
per check); a config change or an earlier re-check still wakes it at once.

Each check runs in its own task: ``registry.run`` (never raises) → ``scheduler.record`` (re-arms the
monitor) → a failure's screenshot kept (``ScreenshotKeeper``) → ``CheckResult`` → ``sink.submit``. ``stop()`` lets in-flight checks finish (up to
``drain_timeout``); cancelling ``run()`` cancels them, and their monitors are re-armed without a result.

Politeness: at most ``max_per_host`` checks run against one target host at once (each check type's
``target_host``: a URL's host, a check's ``host``; a check without one is not limited). A due run
whose host is busy waits in that host's queue, holding no concurrency slot, and starts — taking
over the slot — when a check of that host ends; its monitor is skipped if it was removed meanwhile
(handed to another prober: that one runs it now).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque

import structlog

from fao.prober.checks.registry import CheckerRegistry
from fao.prober.clock import Clock, SystemClock
from fao.prober.scheduler import Due, Scheduler
from fao.prober.screenshots import ScreenshotKeeper
from fao.prober.sink import ResultSink
from fao.schemas import CheckResult, CheckSpec, Monitor

log = structlog.get_logger()

WAKE_SLACK = 0.01
"""Seconds a sleeping loop may wake after the next run is due: the runs due in between start
together, one wake-up (a timer, a loop turn) for several instead of one each. Scheduled runs are
jittered by up to a second anyway; 10 ms later changes nothing a monitor measures."""


class ProbeRunner:
    """Runs the monitors given to it (``upsert``/``remove``) with at most ``concurrency`` checks at once."""

    def __init__(
        self,
        scheduler: Scheduler,
        registry: CheckerRegistry,
        sink: ResultSink,
        *,
        zone: str,
        prober_id: str,
        concurrency: int = 50,
        clock: Clock | None = None,
        drain_timeout: float = 10.0,
        max_per_host: int | None = None,
        screenshots: ScreenshotKeeper | None = None,
    ) -> None:
        """``max_per_host``: checks at once against one host (``None``: only ``concurrency``);
        ``screenshots``: where failing checks' screenshots go (``None``: files on this host)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_per_host is not None and max_per_host < 1:
            raise ValueError("max_per_host must be at least 1")
        self._scheduler = scheduler
        self._registry = registry
        self._sink = sink
        self._zone = zone
        self._prober_id = prober_id
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._drain_timeout = drain_timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._sleep_until = -math.inf  # when the loop sleeps: the time it will wake up by itself
        self._tasks: set[asyncio.Task[None]] = set()
        self._max_per_host = max_per_host
        self._screenshots = screenshots if screenshots is not None else ScreenshotKeeper(None)
        self._hosts: dict[str, tuple[CheckSpec, str | None]] = {}  # monitor → (its check, its host)
        self._host_busy: dict[str, int] = {}  # host → checks running against it
        self._host_queue: dict[str, deque[Due]] = {}  # host → due runs waiting for it
        self._running = False
        self._stopping = False
        self.checks_completed = 0
        """Checks whose result reached the sink."""
        self.checks_errored = 0
        """Checks that ended in an unexpected error in the runner or the sink (logged)."""
        # Fail at start-up, not on the first result, if zone or prober_id break the contract.
        CheckResult(
            monitor_id="x", system_id="x", zone=zone, prober_id=prober_id,
            started_at=self._clock.now(), ok=True, latency_ms=0.0,
        )  # fmt: skip

    @property
    def in_flight(self) -> int:
        """Checks running now."""
        return len(self._tasks)

    @property
    def monitor_count(self) -> int:
        return len(self._scheduler)

    @property
    def waiting_for_host(self) -> int:
        """Due runs waiting because their host already has ``max_per_host`` checks running."""
        return sum(len(q) for q in self._host_queue.values())

    def upsert(self, monitor: Monitor) -> None:
        """Add or update a monitor; takes effect at once."""
        self._scheduler.upsert(monitor, self._clock.monotonic())
        self._wake.set()

    def remove(self, monitor_id: str) -> None:
        """Stop running a monitor; a check of it already in flight finishes, its result is still sent."""
        self._scheduler.remove(monitor_id)
        self._hosts.pop(monitor_id, None)
        self._wake.set()

    def stop(self) -> None:
        """Ask ``run()`` to return after in-flight checks finish (at most ``drain_timeout``).

        Called before ``run()`` has started, it makes that ``run()`` return at once.
        """
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Run checks until ``stop()`` is called or the task is cancelled."""
        if self._running:
            raise RuntimeError("ProbeRunner.run() is already running")
        self._running = True
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._slots.acquire()
                try:
                    due = await self._wait_for_due()
                except BaseException:
                    self._slots.release()
                    raise
                if due is None:
                    self._slots.release()
                    break
                host = self._host_of(due.monitor) if self._max_per_host is not None else None
                if host is not None and self._max_per_host is not None:
                    busy = self._host_busy.get(host, 0)
                    if busy >= self._max_per_host:
                        self._host_queue.setdefault(host, deque()).append(due)
                        self._slots.release()
                        continue
                    self._host_busy[host] = busy + 1
                self._start(loop, due)
        except asyncio.CancelledError:
            self._stopping = True  # a cancelled check must not start the next one for its host
            await self._cancel_in_flight()
            raise
        else:
            await self._drain()
        finally:
            self._release_waiting()
            self._sleep_until = -math.inf
            self._running = False
            self._stopping = False  # a stopped runner may be run again

    def _start(self, loop: asyncio.AbstractEventLoop, due: Due) -> None:
        """Run ``due`` in its own task; it holds a concurrency slot (and, when limited, its host)."""
        task = loop.create_task(self._check(due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _host_of(self, monitor: Monitor) -> str | None:
        cached = self._hosts.get(monitor.id)
        if cached is not None and cached[0] is monitor.check:
            return cached[1]
        host = monitor.check.target_host or None
        self._hosts[monitor.id] = (monitor.check, host)
        return host

    def _host_done(self, monitor: Monitor) -> None:
        """A check ended: its slot and host go to the next run waiting for that host, else free."""
        host = self._host_of(monitor) if self._max_per_host is not None else None
        if host is not None:
            queue = self._host_queue.get(host)
            while queue and not self._stopping:
                due = queue.popleft()
                if not queue:
                    del self._host_queue[host]
                if due.monitor.id in self._scheduler:
                    self._start(asyncio.get_running_loop(), due)
                    return
                self._scheduler.release(due.monitor.id, self._clock.monotonic())  # removed meanwhile
            busy = self._host_busy.get(host, 1) - 1
            if busy > 0:
                self._host_busy[host] = busy
            else:
                self._host_busy.pop(host, None)
        self._slots.release()

    def _release_waiting(self) -> None:
        """Runs still waiting for their host when the runner ends go back to the scheduler."""
        now = self._clock.monotonic()
        for queue in self._host_queue.values():
            for due in queue:
                self._scheduler.release(due.monitor.id, now)
        self._host_queue.clear()
        self._host_busy.clear()

    async def _wait_for_due(self) -> Due | None:
        """The next due run (marked running by the scheduler), or ``None`` once stopping."""
        scheduler = self._scheduler
        clock = self._clock
        while not self._stopping:
            now = clock.monotonic()
            dues = scheduler.pop_due(now, 1)
            if dues:
                return dues[0]
            next_due = scheduler.next_due()
            self._wake.clear()
            try:
                if next_due is None:
                    self._sleep_until = math.inf
                    await self._wake.wait()
                else:
                    self._sleep_until = next_due
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(next_due - now + WAKE_SLACK):
                            await self._wake.wait()
            finally:
                self._sleep_until = -math.inf
        return None

    async def _check(self, due: Due) -> None:
        monitor = due.monitor
        scheduler = self._scheduler
        clock = self._clock
        recorded = False
        try:
            started_at = clock.now()
            outcome = await self._registry.run(monitor.check, monitor.timeout)
            next_due = scheduler.record(monitor.id, outcome.ok, clock.monotonic())
            recorded = True
            if next_due is not None and next_due < self._sleep_until:
                self._wake.set()
            if outcome.screenshot is not None:
                outcome = await self._screenshots.keep(monitor.id, started_at, outcome)
            result = CheckResult(
                monitor_id=monitor.id,
                system_id=monitor.system,
                zone=self._zone,
                prober_id=self._prober_id,
                started_at=started_at,
                ok=outcome.ok,
                latency_ms=outcome.latency_ms,
                error_kind=outcome.error_kind,
                detail=outcome.detail,
                attempt=due.attempt,
                http_status=outcome.http_status,
                observations=outcome.observations,
            )
            await self._sink.submit(result)
            self.checks_completed += 1
        except Exception:  # a bug or a broken sink must not stop the loop or strand the monitor
            self.checks_errored += 1
            log.exception("check_run_failed", monitor_id=monitor.id)
            if not recorded:
                scheduler.release(monitor.id, clock.monotonic() + monitor.interval)
                self._wake.set()
        except BaseException:
            if not recorded:
                scheduler.release(monitor.id, clock.monotonic())
            raise
        finally:
            self._host_done(monitor)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._drain_timeout)
        if pending:
            log.warning("checks_cancelled_at_stop", count=len(pending))
            await self._cancel_in_flight()

    async def _cancel_in_flight(self) -> None:
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
