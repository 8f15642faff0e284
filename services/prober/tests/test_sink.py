"""BatchingSink: batches by size or delay, retries failed flushes, never loses results silently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from fao.prober.sink import BatchingSink
from fao.schemas import CheckResult

_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


def _result(n: int) -> CheckResult:
    return CheckResult(
        monitor_id=f"m{n}",
        system_id="portal",
        zone="default",
        prober_id="p1",
        started_at=_EPOCH + timedelta(seconds=n),
        ok=True,
        latency_ms=1.0,
    )


class _Bus:
    """A flush target that records batches and can be told to fail."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.failures = failures
        self.flushed = asyncio.Event()

    async def flush(self, batch: list[CheckResult]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("bus down")
        self.batches.append([r.monitor_id for r in batch])
        self.flushed.set()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 2.0) -> None:
        """Wait (re-testing after each successful flush) until ``predicate()`` holds."""
        async with asyncio.timeout(within):
            while not predicate():
                self.flushed.clear()
                await self.flushed.wait()

    @property
    def delivered(self) -> list[str]:
        return [m for batch in self.batches for m in batch]


async def test_full_batch_is_flushed_without_waiting_for_the_delay() -> None:
    bus = _Bus()
    sink = BatchingSink(bus.flush, max_size=3, max_delay=10.0)
    for n in range(3):
        await sink.submit(_result(n))
    await asyncio.wait_for(bus.flushed.wait(), 1.0)
    assert bus.batches == [["m0", "m1", "m2"]]
    assert sink.pending == 0
    await sink.aclose()


async def test_partial_batch_is_flushed_after_max_delay() -> None:
    bus = _Bus()
    sink = BatchingSink(bus.flush, max_size=100, max_delay=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sink.submit(_result(1))
    await asyncio.wait_for(bus.flushed.wait(), 1.0)
    assert loop.time() - started >= 0.045
    assert bus.batches == [["m1"]]
    await sink.aclose()


async def test_large_backlog_goes_out_in_batches_of_max_size() -> None:
    bus = _Bus()
    sink = BatchingSink(bus.flush, max_size=256, max_delay=0.05)
    for n in range(1000):
        await sink.submit(_result(n))
    await bus.wait_until(lambda: len(bus.delivered) == 1000)
    assert max(len(b) for b in bus.batches) == 256
    assert bus.delivered == [f"m{n}" for n in range(1000)]
    await sink.aclose()


async def test_failed_flush_is_retried_in_order_without_loss() -> None:
    bus = _Bus(failures=2)
    sink = BatchingSink(bus.flush, max_size=2, max_delay=0.01, retry_initial=0.01)
    for n in range(5):
        await sink.submit(_result(n))
    await bus.wait_until(lambda: len(bus.delivered) == 5)
    assert bus.delivered == ["m0", "m1", "m2", "m3", "m4"]
    assert sink.flush_failures == 2
    assert sink.dropped == 0
    await sink.aclose()


async def test_buffer_over_hard_cap_drops_and_counts_the_oldest() -> None:
    bus = _Bus(failures=1_000_000)
    sink = BatchingSink(bus.flush, max_size=2, max_delay=0.001, max_buffered=5, retry_initial=0.01)
    for n in range(8):
        await sink.submit(_result(n))
        await asyncio.sleep(0.002)
    assert sink.pending + sink.dropped == 8
    assert sink.pending <= 5
    bus.failures = 0
    await bus.wait_until(lambda: sink.pending == 0)
    assert bus.delivered == [f"m{n}" for n in range(8 - len(bus.delivered), 8)]
    assert sink.dropped == 8 - len(bus.delivered)
    await sink.aclose()


async def test_aclose_flushes_what_is_buffered() -> None:
    bus = _Bus()
    sink = BatchingSink(bus.flush, max_size=100, max_delay=60.0)
    for n in range(3):
        await sink.submit(_result(n))
    await sink.aclose()
    assert bus.delivered == ["m0", "m1", "m2"]
    with pytest.raises(RuntimeError, match="closed"):
        await sink.submit(_result(4))


async def test_results_left_when_close_gives_up_are_counted_as_dropped() -> None:
    bus = _Bus(failures=1_000_000)
    sink = BatchingSink(bus.flush, max_size=100, max_delay=60.0, retry_initial=0.01)
    await sink.submit(_result(1))
    await sink.aclose(grace=0.05)
    assert sink.dropped == 1
    assert sink.pending == 0


def test_invalid_sizes_are_rejected() -> None:
    async def flush(batch: list[CheckResult]) -> None:
        return None

    with pytest.raises(ValueError, match="max_size"):
        BatchingSink(flush, max_size=0)
    with pytest.raises(ValueError, match="max_size"):
        BatchingSink(flush, max_size=10, max_buffered=5)
