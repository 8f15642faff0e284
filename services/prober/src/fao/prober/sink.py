"""Where results go: the ``ResultSink`` seam, and ``BatchingSink`` which publishes them in batches.

Publishing one bus message per check would cost more CPU than the check itself (a JetStream publish
and its ack ≈90–140 µs of CPU per result), so results are grouped into ``ResultBatch`` messages by a
``Batcher`` (``batches.py``: per subject, closed by count, bytes or ``max_delay``) and each closed
batch is handed to an async ``publish(batch)`` (the prober's JetStream publisher).

Publishing runs in rounds from one background task: each round publishes, concurrently, the oldest
waiting batch of every subject, so the batches of one subject — and with them each monitor's
results — reach the stream in order. A failed publish is logged and retried, the same message with
the same ``Nats-Msg-Id`` (a publish that timed out but was stored is then a duplicate the stream
drops), with capped exponential back-off; nothing is lost while the bus is down. Waiting results are
bounded by ``max_buffered``: beyond it the *oldest* batches are dropped (fresh results matter more
to an alerting system), counted in ``dropped`` and logged.

A result whose message would be over the results stream's size limit is dropped at ``submit`` with
an error log and counted in ``oversized``: the stream would refuse it, and a batch must never be
held up by a result that can never be published.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from fao.prober.batches import Batch, Batcher
from fao.schemas import CheckResult

log = structlog.get_logger()

PublishFn = Callable[[Batch], Awaitable[None]]


class ResultSink(Protocol):
    async def submit(self, result: CheckResult) -> None:
        """Accept one result. Must return quickly: the runner awaits it on the hot path."""
        ...


class BatchingSink:
    """Batches results (``Batcher``) and publishes the batches from one background task.

    The task starts on the first ``submit`` (or ``start()``); ``aclose()`` publishes what is left.
    """

    def __init__(
        self,
        batcher: Batcher,
        publish: PublishFn,
        *,
        max_buffered: int = 100_000,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        if max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        self._batcher = batcher
        self._publish = publish
        self._max_buffered = max_buffered
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._queue: list[Batch] = []  # closed batches, oldest first
        self._queued = 0  # results in them
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        """Results discarded because more than ``max_buffered`` were waiting (or left at close)."""
        self.flushed = 0
        """Results in batches the stream accepted."""
        self.flush_failures = 0
        """Batch publishes that failed (each is retried)."""
        self.oversized = 0
        """Results dropped at ``submit``: their message would be over the results stream's limit."""

    @property
    def pending(self) -> int:
        """Results waiting: in open batches and in closed ones not yet published."""
        return self._batcher.pending + self._queued

    def start(self) -> None:
        """Start the background publisher (idempotent; ``submit`` calls it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._publish_loop(), name="fao-batching-sink"
            )

    async def submit(self, result: CheckResult) -> None:
        if self._closing:
            raise RuntimeError("BatchingSink is closed")
        first = self._batcher.pending == 0
        closed = self._batcher.add(result, asyncio.get_running_loop().time())
        if closed is None:
            self.oversized += 1
            log.error(
                "result_too_large", monitor=result.monitor_id, limit=self._batcher.max_bytes,
                oversized_total=self.oversized, detail_start=result.detail[:100],
            )  # fmt: skip
            return
        if self._task is None:
            self.start()
        if closed:
            self._enqueue(closed)
            self._wake.set()
        elif first:
            self._wake.set()  # the publisher learns when the new open batches are due

    def _enqueue(self, batches: list[Batch]) -> None:
        self._queue.extend(batches)
        self._queued += sum(b.count for b in batches)
        overflow = self.pending - self._max_buffered
        if overflow <= 0:
            return
        dropped = 0
        while self._queue and dropped < overflow:
            batch = self._queue.pop(0)
            dropped += batch.count
        self._queued -= dropped
        self.dropped += dropped
        log.warning("results_dropped", count=dropped, dropped_total=self.dropped, cap=self._max_buffered)

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop the publisher and publish what is waiting, trying for at most ``grace`` seconds.

        Results still waiting after that are counted in ``dropped`` and logged.
        """
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._enqueue(self._batcher.close_all())
        try:
            async with asyncio.timeout(grace):
                while self._queue:
                    if not await self._publish_round():
                        await asyncio.sleep(self._retry_initial)
        except TimeoutError:
            left = self._queued
            self.dropped += left
            self._queue.clear()
            self._queued = 0
            log.error("results_dropped_at_close", count=left, dropped_total=self.dropped)

    async def _publish_loop(self) -> None:
        backoff = self._retry_initial
        loop = asyncio.get_running_loop()
        # ``_closing`` ends the loop even if a cancellation is swallowed by Python 3.11's wait_for.
        while not self._closing:
            self._wake.clear()
            now = loop.time()
            due = self._batcher.take_due(now)
            if due:
                self._enqueue(due)
            if not self._queue:
                due_at = self._batcher.due_at()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(None if due_at is None else max(0.0, due_at - now)):
                        await self._wake.wait()
                continue
            if await self._publish_round():
                backoff = self._retry_initial
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max)

    async def _publish_round(self) -> bool:
        """Publish the oldest waiting batch of every subject, concurrently; whether all were
        stored. Never raises (except cancellation); a batch leaves the queue only once stored."""
        heads: dict[str, Batch] = {}
        for batch in self._queue:
            heads.setdefault(batch.subject, batch)
        outcomes = await asyncio.gather(*(self._publish(b) for b in heads.values()), return_exceptions=True)
        stored: set[str] = set()
        failed = 0
        for batch, outcome in zip(heads.values(), outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # cancellation: the batches stay queued
                failed += 1
                log.error(
                    "result_flush_failed", subject=batch.subject, batch=batch.msg_id, results=batch.count,
                    pending=self.pending, error=f"{type(outcome).__name__}: {outcome}",
                )  # fmt: skip
            else:
                stored.add(batch.msg_id)
                self.flushed += batch.count
        if stored:
            self._queue = [b for b in self._queue if b.msg_id not in stored]
            self._queued = sum(b.count for b in self._queue)
        self.flush_failures += failed
        return failed == 0
