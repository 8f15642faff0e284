"""BatchingSink: publishes batches when full or due, retries a failed batch as the same message,
keeps each subject's batches in order, never loses results silently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from fao.prober.batches import Batch, Batcher
from fao.prober.sink import BatchingSink
from fao.schemas import CheckResult
from fao.schemas.results import ResultBatch
from fao.schemas.subjects import result_partition

_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
# Monitor ids of one partition (one subject), so batch order is observable.
_IDS = [m for m in (f"m{i}" for i in range(5000)) if result_partition(m) == result_partition("m0")]


def _result(n: int) -> CheckResult:
    return CheckResult(
        monitor_id=_IDS[n], system_id="portal", zone="default", prober_id="p1",
        started_at=_EPOCH + timedelta(seconds=n), ok=True, latency_ms=1.0,
    )  # fmt: skip


def _sink(bus: _Bus, *, max_count: int = 256, max_delay: float = 0.05, **options: float) -> BatchingSink:
    batcher = Batcher(prober_id="p1", zone="default", boot=1, max_count=max_count, max_delay=max_delay)
    return BatchingSink(batcher, bus.publish, **options)  # type: ignore[arg-type]  # test helper


class _Bus:
    """A publish target that records messages (every attempt, and what was stored)."""

    def __init__(self, failures: int = 0) -> None:
        self.attempts: list[Batch] = []
        self.stored: list[Batch] = []
        self.failures = failures
        self.published = asyncio.Event()

    async def publish(self, batch: Batch) -> None:
        self.attempts.append(batch)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("bus down")
        self.stored.append(batch)
        self.published.set()

    @staticmethod
    async def wait_until(predicate: Callable[[], bool], within: float = 2.0) -> None:
        """Wait until ``predicate()`` holds (tested every few milliseconds); fail after ``within``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"not true within {within}s")

    @property
    def delivered(self) -> list[str]:
        return [r.monitor_id for b in self.stored for r in ResultBatch.model_validate_json(b.body).results]


async def test_full_batch_is_published_without_waiting_for_the_delay() -> None:
    bus = _Bus()
    sink = _sink(bus, max_count=3, max_delay=10.0)
    for n in range(3):
        await sink.submit(_result(n))
    await asyncio.wait_for(bus.published.wait(), 1.0)
    assert bus.delivered == _IDS[:3]
    assert sink.pending == 0
    await sink.aclose()


async def test_partial_batch_is_published_after_max_delay() -> None:
    bus = _Bus()
    sink = _sink(bus, max_count=100, max_delay=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sink.submit(_result(1))
    await asyncio.wait_for(bus.published.wait(), 1.0)
    assert loop.time() - started >= 0.045
    assert bus.delivered == [_IDS[1]]
    await sink.aclose()


async def test_a_failed_batch_is_retried_as_the_same_message_and_order_is_kept() -> None:
    """The retry carries the same Nats-Msg-Id and body (so a publish that timed out but was stored
    is dropped as a duplicate), and the batches after it wait: the subject's order is kept."""
    bus = _Bus(failures=2)
    sink = _sink(bus, max_count=2, max_delay=0.01, retry_initial=0.01)
    for n in range(5):
        await sink.submit(_result(n))
    await bus.wait_until(lambda: len(bus.delivered) == 5)
    assert bus.delivered == _IDS[:5]
    first = bus.attempts[0]
    assert bus.attempts[:3] == [first, first, first], "retried as the same message"
    assert [b.msg_id for b in bus.stored] == ["p1.1.1", "p1.1.2", "p1.1.3"]
    await sink.aclose()
    assert (sink.flush_failures, sink.dropped, sink.flushed) == (2, 0, 5)


async def test_results_over_max_buffered_drop_the_oldest_batches_counted() -> None:
    bus = _Bus(failures=1_000_000)
    sink = _sink(bus, max_count=2, max_delay=0.001, max_buffered=5, retry_initial=0.01)
    for n in range(8):
        await sink.submit(_result(n))
        await asyncio.sleep(0.002)
    assert sink.pending + sink.dropped == 8
    assert sink.pending <= 5
    bus.failures = 0
    await bus.wait_until(lambda: sink.pending == 0)
    assert bus.delivered == _IDS[8 - len(bus.delivered) : 8], "the newest survive, in order"
    assert sink.dropped == 8 - len(bus.delivered)
    await sink.aclose()


async def test_aclose_publishes_what_is_waiting() -> None:
    bus = _Bus()
    sink = _sink(bus, max_count=100, max_delay=0.2)
    for n in range(3):
        await sink.submit(_result(n))
    await sink.aclose()
    assert bus.delivered == _IDS[:3]
    with pytest.raises(RuntimeError, match="closed"):
        await sink.submit(_result(4))


async def test_results_left_when_close_gives_up_are_counted_as_dropped() -> None:
    bus = _Bus(failures=1_000_000)
    sink = _sink(bus, max_count=100, max_delay=0.2, retry_initial=0.01)
    await sink.submit(_result(1))
    await sink.aclose(grace=0.05)
    assert sink.dropped == 1
    assert sink.pending == 0


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_count"):
        Batcher(prober_id="p1", zone="default", boot=1, max_count=0)
    with pytest.raises(ValueError, match="max_buffered"):
        _sink(_Bus(), max_buffered=0)
