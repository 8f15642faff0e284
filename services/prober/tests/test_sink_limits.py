"""BatchingSink drops a result too large for the results stream instead of holding its batch up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fao.prober.sink import BatchingSink
from fao.runtime.bus import KIB, headers_size
from fao.schemas import CheckResult

_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


def _result(n: int, detail: str = "") -> CheckResult:
    return CheckResult(
        monitor_id=f"m{n}", system_id="portal", zone="default", prober_id="p1",
        started_at=_EPOCH + timedelta(seconds=n), ok=not detail, latency_ms=1.0,
    ).model_copy(update={"detail": detail})  # fmt: skip  # model_copy skips the 500-character cap


async def test_an_oversized_result_is_dropped_counted_and_the_batch_goes_out() -> None:
    batches: list[list[str]] = []
    flushed = asyncio.Event()

    async def flush(batch: list[CheckResult]) -> None:
        batches.append([r.monitor_id for r in batch])
        flushed.set()

    sink = BatchingSink(flush, max_size=2, max_delay=10.0)
    await sink.submit(_result(1))
    await sink.submit(_result(2, detail="x" * (64 * KIB)))  # a pathological detail
    assert (sink.oversized, sink.pending) == (1, 1)
    await sink.submit(_result(3))
    await asyncio.wait_for(flushed.wait(), 1.0)
    assert batches == [["m1", "m3"]]
    await sink.aclose()
    assert (sink.oversized, sink.dropped, sink.flushed) == (1, 0, 2)


async def test_the_limit_counts_body_and_header() -> None:
    async def flush(_: list[CheckResult]) -> None:
        return

    result = _result(1, detail="x" * 500)
    size = len(result.model_dump_json().encode()) + headers_size({"Nats-Msg-Id": result.msg_id})
    exact = BatchingSink(flush, max_message_bytes=size)
    await exact.submit(result)
    assert (exact.oversized, exact.pending) == (0, 1)
    tight = BatchingSink(flush, max_message_bytes=size - 1)
    await tight.submit(result)
    assert (tight.oversized, tight.pending) == (1, 0)
    await exact.aclose()
    await tight.aclose()
