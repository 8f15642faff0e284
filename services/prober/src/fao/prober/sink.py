"""Where results go: the ``ResultSink`` seam, and ``BatchingSink`` which publishes them in batches.

Publishing one bus message per check would cost more CPU than the check itself, so results are
buffered and handed to an async ``flush(batch)`` callable (the lead's NATS publisher) when
``max_size`` results are waiting or the oldest has waited ``max_delay`` seconds.

A failing ``flush`` is logged and retried with capped exponential backoff; the batch goes back to the
head of the buffer, so results are delivered in order and none is lost while the bus is down. The
buffer is bounded by ``max_buffered``: beyond it the *oldest* results are dropped (fresh results
matter more to an alerting system), counted in ``dropped`` and logged. ``flush`` may therefore see a
result again after a failure it reported for a batch it had partly published; ``CheckResult.msg_id``
makes such a repeat harmless on the bus.

A result whose message (JSON body plus its ``Nats-Msg-Id`` header) would be over the results
stream's size limit (``fao.runtime.bus.check_size``) is dropped at ``submit`` with an error log and
counted in ``oversized``: the stream would refuse it, and a batch must never be held up by one
result that can never be published. Results are a few hundred bytes, so only a pathological
detail can get there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from fao.runtime.bus import MessageTooLarge, check_size, max_msg_size
from fao.schemas import CheckResult
from fao.schemas.subjects import result_subject

log = structlog.get_logger()

FlushFn = Callable[[list[CheckResult]], Awaitable[None]]


class ResultSink(Protocol):
    async def submit(self, result: CheckResult) -> None:
        """Accept one result. Must return quickly: the runner awaits it on the hot path."""
        ...


class BatchingSink:
    """Buffers results and flushes them in batches from one background task.

    The task starts on the first ``submit`` (or ``start()``); ``aclose()`` flushes what is left.
    """

    def __init__(
        self,
        flush: FlushFn,
        *,
        max_size: int = 256,
        max_delay: float = 0.05,
        max_buffered: int = 100_000,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
        max_message_bytes: int | None = None,
    ) -> None:
        if max_size < 1 or max_buffered < max_size:
            raise ValueError("need 1 <= max_size <= max_buffered")
        # Largest result message (body + headers); by default the results stream's limit.
        self._max_message_bytes = (
            max_msg_size(result_subject("m")) if max_message_bytes is None else max_message_bytes
        )
        self._flush = flush
        self._max_size = max_size
        self._max_delay = max_delay
        self._max_buffered = max_buffered
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._buffer: list[CheckResult] = []
        # Loop time the buffer last went from empty to non-empty: the oldest result's arrival, or
        # earlier when a flush left results behind (so those are flushed sooner, never later).
        self._first_at = 0.0
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        """Results discarded because the buffer was over ``max_buffered`` (or left at close)."""
        self.flushed = 0
        """Results handed to a ``flush`` call that succeeded."""
        self.flush_failures = 0
        """``flush`` calls that raised."""
        self.oversized = 0
        """Results dropped at ``submit``: their message would be over the results stream's limit."""

    @property
    def pending(self) -> int:
        """Results buffered and not yet flushed."""
        return len(self._buffer)

    def start(self) -> None:
        """Start the background flusher (idempotent; ``submit`` calls it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_loop(), name="fao-batching-sink")

    async def submit(self, result: CheckResult) -> None:
        if self._closing:
            raise RuntimeError("BatchingSink is closed")
        if not self._fits(result):
            return
        buffer = self._buffer
        buffer.append(result)
        size = len(buffer)
        if size == 1:
            if self._task is None:
                self.start()
            self._first_at = asyncio.get_running_loop().time()
            self._has_items.set()
        elif size >= self._max_size:
            if size > self._max_buffered:
                self._drop_oldest(size - self._max_buffered)
            self._full.set()

    def _fits(self, result: CheckResult) -> bool:
        """Whether ``result`` can be published; if not, log it and count it in ``oversized``."""
        subject = result_subject(result.monitor_id)
        body = result.model_dump_json().encode()  # what the prober publishes
        try:
            check_size(subject, body, self._max_message_bytes, headers={"Nats-Msg-Id": result.msg_id})
        except MessageTooLarge as exc:
            self.oversized += 1
            log.error(
                "result_too_large", monitor=result.monitor_id, size=exc.size, limit=exc.limit,
                oversized_total=self.oversized, detail_start=result.detail[:100],
            )  # fmt: skip
            return False
        return True

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop the flusher and flush what is buffered, trying for at most ``grace`` seconds.

        Results still buffered after that are counted in ``dropped`` and logged.
        """
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            async with asyncio.timeout(grace):
                while self._buffer:
                    if not await self._flush_once():
                        await asyncio.sleep(self._retry_initial)
        except TimeoutError:
            left = len(self._buffer)
            self.dropped += left
            self._buffer.clear()
            log.error("results_dropped_at_close", count=left, dropped_total=self.dropped)

    async def _flush_loop(self) -> None:
        backoff = self._retry_initial
        loop = asyncio.get_running_loop()
        # ``_closing`` ends the loop even if a cancellation is swallowed by Python 3.11's wait_for.
        while not self._closing:
            await self._has_items.wait()
            if not self._buffer:
                self._has_items.clear()
                continue
            if len(self._buffer) < self._max_size:
                delay = self._first_at + self._max_delay - loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._full.wait()
            if await self._flush_once():
                backoff = self._retry_initial
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max)

    async def _flush_once(self) -> bool:
        """Flush the head of the buffer; whether it succeeded. Never raises (except cancellation).

        The batch leaves the buffer while ``flush`` runs (so trimming cannot touch it) and goes back
        to the front if ``flush`` fails or is cancelled.
        """
        buffer = self._buffer
        batch = buffer[: self._max_size]
        del buffer[: len(batch)]
        try:
            await self._flush(batch)
        except Exception:  # the bus is down or slow: keep the batch, log, retry later
            self._put_back(batch)
            self.flush_failures += 1
            log.exception("result_flush_failed", batch=len(batch), pending=len(buffer))
            return False
        except BaseException:
            self._put_back(batch)
            raise
        self.flushed += len(batch)
        if not buffer:
            self._has_items.clear()
        if len(buffer) < self._max_size:
            self._full.clear()
        return True

    def _put_back(self, batch: list[CheckResult]) -> None:
        self._buffer[:0] = batch
        overflow = len(self._buffer) - self._max_buffered
        if overflow > 0:
            self._drop_oldest(overflow)

    def _drop_oldest(self, count: int) -> None:
        del self._buffer[:count]
        self.dropped += count
        if self.dropped == count or self.dropped % 1000 < count:
            log.warning("results_dropped", count=count, dropped_total=self.dropped, cap=self._max_buffered)
