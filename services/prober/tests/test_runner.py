"""ProbeRunner end to end: real checks, scheduler cadence, result records, concurrency and lifecycle."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from fao.prober.checks import CheckerRegistry, Outcome
from fao.prober.runner import ProbeRunner
from fao.prober.scheduler import Scheduler
from fao.schemas import CheckResult, ErrorKind, Monitor, TcpCheck


class Target(Protocol):
    """The part of conftest's target server state these tests steer."""

    fail_next: int


MonitorFactory = Callable[..., Monitor]

_WALL_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


class StartNowCadence:
    """A monitor's grid starts when it is first planned, so a new monitor runs at once; no jitter."""

    def __init__(self) -> None:
        self._phases: dict[str, float] = {}

    def phase(self, monitor_id: str, interval: float) -> float:
        return self._phases.setdefault(monitor_id, time.monotonic())

    def jitter(self, monitor_id: str, interval: float, slot: float, bound: float) -> float:
        return 0.0


class OffsetClock:
    """Real monotonic time (the loop sleeps for real) with a wall clock that starts at 2030-01-01."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return _WALL_EPOCH + timedelta(seconds=time.monotonic() - self._origin)


class MemorySink:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self.changed = asyncio.Event()

    async def submit(self, result: CheckResult) -> None:
        self.results.append(result)
        self.changed.set()

    async def wait_for(self, count: int, within: float = 3.0) -> list[CheckResult]:
        async with asyncio.timeout(within):
            while len(self.results) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.results


class GateChecker:
    """A TCP-type checker whose checks block until released; records peak concurrency."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.started = 0

    async def run(self, spec: TcpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the Checker signature
        self.running += 1
        self.started += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return Outcome.success(1.0)

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def registry() -> AsyncIterator[CheckerRegistry]:
    registry = CheckerRegistry.builtin()
    yield registry
    await registry.aclose()


def _runner(registry: CheckerRegistry, sink: MemorySink, concurrency: int = 10) -> ProbeRunner:
    return ProbeRunner(
        Scheduler(StartNowCadence()),
        registry,
        sink,
        zone="bkk",
        prober_id="prober-1",
        concurrency=concurrency,
        clock=OffsetClock(),
        drain_timeout=2.0,
    )


async def _stop(runner: ProbeRunner, task: asyncio.Task[None]) -> None:
    runner.stop()
    await asyncio.wait_for(task, 5.0)


async def test_failing_target_is_rechecked_at_recheck_interval(
    registry: CheckerRegistry, base_url: str, target: Target, make_monitor: MonitorFactory
) -> None:
    target.fail_next = 100
    sink = MemorySink()
    runner = _runner(registry, sink)
    runner.upsert(
        make_monitor(
            check={"type": "http", "url": f"{base_url}/flaky"},
            interval=60.0,
            recheck_interval=0.1,
            confirm={"failures": 2, "of": 3},
        )
    )
    task = asyncio.create_task(runner.run())
    results = await sink.wait_for(3)
    await asyncio.sleep(0.3)  # the window is decided: nothing more until the 60 s interval
    await _stop(runner, task)

    assert [r.attempt for r in sink.results] == ["scheduled", "recheck", "recheck"]
    assert all(not r.ok and r.error_kind is ErrorKind.HTTP_STATUS for r in results)
    assert all(r.http_status == 500 and r.detail == "HTTP 500" for r in results)
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(results)]
    assert all(0.09 <= gap < 0.5 for gap in gaps), gaps
    first = results[0]
    assert (first.monitor_id, first.system_id, first.zone, first.prober_id) == (
        "web",
        "portal",
        "bkk",
        "prober-1",
    )
    assert first.started_at.tzinfo is not None
    assert _WALL_EPOCH <= first.started_at < _WALL_EPOCH + timedelta(seconds=5)  # from the injected clock


async def test_recovering_target_is_rechecked_until_recover_after_successes(
    registry: CheckerRegistry, base_url: str, target: Target, make_monitor: MonitorFactory
) -> None:
    target.fail_next = 2
    sink = MemorySink()
    runner = _runner(registry, sink)
    runner.upsert(
        make_monitor(
            check={"type": "http", "url": f"{base_url}/flaky"},
            interval=0.6,
            timeout=0.5,
            recheck_interval=0.1,
            confirm={"failures": 2, "of": 2},
            recover_after=2,
        )
    )
    task = asyncio.create_task(runner.run())
    await sink.wait_for(4)
    await _stop(runner, task)
    summary = [(r.ok, r.attempt) for r in sink.results[:4]]
    assert summary == [(False, "scheduled"), (False, "recheck"), (True, "scheduled"), (True, "recheck")]
    recheck_gap = (sink.results[3].started_at - sink.results[2].started_at).total_seconds()
    assert 0.09 <= recheck_gap < 0.4


async def test_upsert_wakes_an_idle_runner_at_once(
    registry: CheckerRegistry, base_url: str, make_monitor: MonitorFactory
) -> None:
    sink = MemorySink()
    runner = _runner(registry, sink)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.05)  # the loop now sleeps with nothing scheduled
    added = time.monotonic()
    runner.upsert(make_monitor(check={"type": "http", "url": f"{base_url}/ok"}))
    await sink.wait_for(1, within=1.0)
    assert time.monotonic() - added < 0.5
    assert sink.results[0].ok
    await _stop(runner, task)


async def test_removed_monitor_is_no_longer_checked(
    registry: CheckerRegistry, base_url: str, target: Target, make_monitor: MonitorFactory
) -> None:
    sink = MemorySink()
    runner = _runner(registry, sink)
    runner.upsert(make_monitor(check={"type": "http", "url": f"{base_url}/ok"}, interval=0.2, timeout=0.2))
    task = asyncio.create_task(runner.run())
    await sink.wait_for(2)
    runner.remove("web")
    await asyncio.sleep(0.05)
    count = len(sink.results)
    await asyncio.sleep(0.5)
    assert len(sink.results) == count
    assert runner.monitor_count == 0
    await _stop(runner, task)


async def test_concurrency_is_bounded_and_every_due_monitor_runs(make_monitor: MonitorFactory) -> None:
    gate = GateChecker()
    sink = MemorySink()
    runner = _runner(CheckerRegistry({"tcp": gate}), sink, concurrency=3)
    for i in range(10):
        runner.upsert(make_monitor(f"m{i}"))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    assert gate.running == 3
    assert runner.in_flight == 3
    gate.release.set()
    await sink.wait_for(10)
    assert gate.peak == 3
    assert sorted(r.monitor_id for r in sink.results) == sorted(f"m{i}" for i in range(10))
    await _stop(runner, task)


async def test_at_most_max_per_host_checks_run_against_one_host(make_monitor: MonitorFactory) -> None:
    """Politeness: 6 monitors of one host and 2 of another, 10 slots, at most 2 per host: the busy
    host's other runs wait without holding a slot (the other host's run), then all run."""

    class HostGate(GateChecker):
        def __init__(self) -> None:
            super().__init__()
            self.by_host: dict[str, int] = {}
            self.peak_by_host: dict[str, int] = {}

        async def run(self, spec: TcpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the Checker signature
            self.by_host[spec.host] = self.by_host.get(spec.host, 0) + 1
            self.peak_by_host[spec.host] = max(self.peak_by_host.get(spec.host, 0), self.by_host[spec.host])
            try:
                return await super().run(spec, timeout)
            finally:
                self.by_host[spec.host] -= 1

    gate = HostGate()
    sink = MemorySink()
    runner = ProbeRunner(
        Scheduler(StartNowCadence()), CheckerRegistry({"tcp": gate}), sink, zone="bkk", prober_id="p1",
        concurrency=10, clock=OffsetClock(), max_per_host=2,
    )  # fmt: skip
    for i in range(6):
        runner.upsert(make_monitor(f"busy{i}", check={"type": "tcp", "host": "10.0.0.1", "port": 80}))
    for i in range(2):
        runner.upsert(make_monitor(f"other{i}", check={"type": "tcp", "host": "10.0.0.2", "port": 80}))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    assert gate.by_host == {"10.0.0.1": 2, "10.0.0.2": 2}
    assert runner.waiting_for_host == 4
    gate.release.set()
    await sink.wait_for(8)
    assert gate.peak_by_host == {"10.0.0.1": 2, "10.0.0.2": 2}
    assert runner.waiting_for_host == 0
    await _stop(runner, task)


async def test_a_run_waiting_for_its_host_is_dropped_when_the_monitor_moves_away(
    make_monitor: MonitorFactory,
) -> None:
    """A monitor handed to another prober while its run waits for the host is not checked here."""
    gate = GateChecker()
    sink = MemorySink()
    scheduler = Scheduler(StartNowCadence())
    runner = ProbeRunner(
        scheduler, CheckerRegistry({"tcp": gate}), sink, zone="bkk", prober_id="p1", concurrency=10,
        clock=OffsetClock(), max_per_host=1,
    )  # fmt: skip
    runner.upsert(make_monitor("first"))
    runner.upsert(make_monitor("moved"))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    assert (gate.running, runner.waiting_for_host) == (1, 1)  # "first" was due first: it runs
    runner.remove("moved")
    gate.release.set()
    await sink.wait_for(1)
    await asyncio.sleep(0.1)
    assert [r.monitor_id for r in sink.results] == ["first"]
    assert gate.started == 1
    assert "moved" not in scheduler
    assert runner.waiting_for_host == 0
    await _stop(runner, task)


async def test_stop_waits_for_checks_in_flight(make_monitor: MonitorFactory) -> None:
    gate = GateChecker()
    sink = MemorySink()
    runner = _runner(CheckerRegistry({"tcp": gate}), sink)
    runner.upsert(make_monitor())
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.05)
    runner.stop()
    await asyncio.sleep(0.05)
    assert not task.done()
    gate.release.set()
    await asyncio.wait_for(task, 2.0)
    assert [r.monitor_id for r in sink.results] == ["web"]


async def test_cancelling_run_cancels_checks_and_rearms_their_monitors(make_monitor: MonitorFactory) -> None:
    gate = GateChecker()
    sink = MemorySink()
    scheduler = Scheduler(StartNowCadence())
    runner = ProbeRunner(
        scheduler, CheckerRegistry({"tcp": gate}), sink, zone="bkk", prober_id="p1", clock=OffsetClock()
    )
    runner.upsert(make_monitor())
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.05)
    assert scheduler.is_running("web")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not scheduler.is_running("web")
    assert scheduler.due_at("web") is not None
    assert sink.results == []


async def test_broken_sink_does_not_stop_the_runner(make_monitor: MonitorFactory, base_url: str) -> None:
    class FlakySink(MemorySink):
        async def submit(self, result: CheckResult) -> None:
            if not self.results and not getattr(self, "failed", False):
                self.failed = True
                raise ConnectionError("sink down")
            await super().submit(result)

    sink = FlakySink()
    registry = CheckerRegistry.builtin()
    runner = _runner(registry, sink)
    runner.upsert(make_monitor(check={"type": "http", "url": f"{base_url}/ok"}, interval=0.2, timeout=0.2))
    task = asyncio.create_task(runner.run())
    await sink.wait_for(1)
    await _stop(runner, task)
    await registry.aclose()
    assert runner.checks_errored == 1
    assert runner.checks_completed >= 1


def test_invalid_zone_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="zone"):
        ProbeRunner(
            Scheduler(StartNowCadence()), CheckerRegistry({}), MemorySink(), zone="Bad Zone!", prober_id="p"
        )


async def test_run_cannot_be_started_twice(make_monitor: MonitorFactory) -> None:
    runner = _runner(CheckerRegistry({}), MemorySink())
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        await runner.run()
    await _stop(runner, task)


async def test_stop_before_run_starts_makes_run_return_at_once(make_monitor: MonitorFactory) -> None:
    gate = GateChecker()
    runner = _runner(CheckerRegistry({"tcp": gate}), MemorySink())
    runner.upsert(make_monitor())
    runner.stop()
    await asyncio.wait_for(runner.run(), 1.0)
    assert gate.started == 0
