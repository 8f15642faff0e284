"""The asyncio loop that drives the scheduler: start due checks, record results, hand them to the sink.

One loop for all monitors. It takes a concurrency slot (``asyncio.Semaphore``), then waits until the
scheduler has a run due, sleeping until ``next_due()`` or until woken: ``upsert``/``remove`` and a
finished check whose next run is earlier than the current sleep set the wake-up ``Event``, so config
changes and re-checks take effect at once. Due monitors wait in the scheduler's heap rather than as
parked tasks, so an update or removal still applies to them while the prober is saturated.

Each check runs in its own task: ``registry.run`` (never raises) → ``scheduler.record`` (re-arms the
monitor) → ``CheckResult`` → ``sink.submit``. ``stop()`` lets in-flight checks finish (up to
``drain_timeout``); cancelling ``run()`` cancels them, and their monitors are re-armed without a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

import structlog

from fao.prober.checks.registry import CheckerRegistry
from fao.prober.clock import Clock, SystemClock
from fao.prober.scheduler import Due, Scheduler
from fao.prober.sink import ResultSink
from fao.schemas import CheckResult, Monitor

log = structlog.get_logger()


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
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
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

    def upsert(self, monitor: Monitor) -> None:
        """Add or update a monitor; takes effect at once."""
        self._scheduler.upsert(monitor, self._clock.monotonic())
        self._wake.set()

    def remove(self, monitor_id: str) -> None:
        """Stop running a monitor; a check of it already in flight finishes, its result is still sent."""
        self._scheduler.remove(monitor_id)
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
                task = loop.create_task(self._check(due))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except asyncio.CancelledError:
            await self._cancel_in_flight()
            raise
        else:
            await self._drain()
        finally:
            self._sleep_until = -math.inf
            self._running = False
            self._stopping = False  # a stopped runner may be run again

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
                        async with asyncio.timeout(next_due - now):
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
            self._slots.release()

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
