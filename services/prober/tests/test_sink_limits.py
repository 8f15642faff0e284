"""BatchingSink drops a result too large for the results stream instead of holding its batch up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fao.prober.batches import Batch, Batcher
from fao.prober.sink import BatchingSink
from fao.runtime.bus import KIB
from fao.schemas import CheckResult
from fao.schemas.results import ResultBatch

_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


def _result(n: int, detail: str = "") -> CheckResult:
    return CheckResult(
        monitor_id="web", system_id="portal", zone="default", prober_id="p1",
        started_at=_EPOCH + timedelta(seconds=n), ok=not detail, latency_ms=1.0,
    ).model_copy(update={"detail": detail})  # fmt: skip  # model_copy skips the 500-character cap


async def test_an_oversized_result_is_dropped_counted_and_the_batch_goes_out() -> None:
    stored: list[list[int]] = []
    published = asyncio.Event()

    async def publish(batch: Batch) -> None:
        results = ResultBatch.model_validate_json(batch.body).results
        stored.append([int((r.started_at - _EPOCH).total_seconds()) for r in results])
        published.set()

    sink = BatchingSink(Batcher(prober_id="p1", zone="default", boot=1, max_count=2, max_delay=10.0), publish)
    await sink.submit(_result(1))
    await sink.submit(_result(2, detail="x" * (64 * KIB)))  # a pathological detail
    assert (sink.oversized, sink.pending) == (1, 1)
    await sink.submit(_result(3))
    await asyncio.wait_for(published.wait(), 1.0)
    assert stored == [[1, 3]]
    await sink.aclose()
    assert (sink.oversized, sink.dropped, sink.flushed) == (1, 0, 2)
