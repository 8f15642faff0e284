"""The runner's wake-up slack: runs due a few milliseconds apart start together, never early and at
most ``WAKE_SLACK`` late (one wake-up for several checks of a prober paced at hundreds a second)."""

from __future__ import annotations

import asyncio
import time

from fao.prober.checks import CheckerRegistry, Outcome
from fao.prober.runner import WAKE_SLACK, ProbeRunner
from fao.prober.scheduler import Scheduler
from fao.schemas import CheckResult, Monitor, TcpCheck


class FixedCadence:
    """Each monitor's grid point is given; no jitter."""

    def __init__(self, phases: dict[str, float]) -> None:
        self._phases = phases

    def phase(self, monitor_id: str, interval: float) -> float:
        return self._phases[monitor_id]

    def jitter(self, monitor_id: str, interval: float, slot: float, bound: float) -> float:
        return 0.0


class StartTimes:
    """A TCP-type checker that records when each check starts and answers at once."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    async def run(self, spec: TcpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the Checker signature
        self.started[f"{spec.host}"] = time.monotonic()
        return Outcome.success(0.1)

    async def aclose(self) -> None:
        return None


class Results:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.all_in = asyncio.Event()

    async def submit(self, result: CheckResult) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all_in.set()


async def test_runs_due_milliseconds_apart_start_in_one_wake_up_never_early() -> None:
    now = time.monotonic()
    due = {"a": now + 0.2, "b": now + 0.203, "c": now + 0.206}
    checker, results = StartTimes(), Results(len(due))
    runner = ProbeRunner(
        Scheduler(FixedCadence(due)), CheckerRegistry({"tcp": checker}), results,
        zone="dc1", prober_id="p1", concurrency=10,
    )  # fmt: skip
    for monitor_id in due:
        runner.upsert(
            Monitor.model_validate(
                {
                    "id": monitor_id,
                    "system": "portal",
                    "interval": 60,
                    "timeout": 5,
                    "check": {"type": "tcp", "host": monitor_id, "port": 9},
                }
            )
        )
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(3):
            await results.all_in.wait()
    finally:
        runner.stop()
        await task
    for monitor_id, at in checker.started.items():
        assert at >= due[monitor_id]
    first, last = min(checker.started.values()), max(checker.started.values())
    assert last - first < 0.004  # together: without the slack they would start 6 ms apart
    assert first <= due["a"] + WAKE_SLACK + 0.1  # late by the slack (and this machine's load), no more
