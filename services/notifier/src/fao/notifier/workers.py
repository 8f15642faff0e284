"""Sending recorded deliveries: one worker task per LINE group, each with its own retries.

A worker exists while its group has undelivered deliveries (``wake`` starts it; it ends when the
group has nothing left to try). One *pass* reads the group's undelivered deliveries, and for each
incident among them (oldest first) reads that incident's deliveries to the group (its *lane*) and
applies ``deliveries.plan_lane``: supersede what must never be sent, then try the one delivery that
may go now, once:

- ``pending`` → ``claimed`` is written before the first try (claim before send), then the message
  is pushed with the delivery's fixed ``X-Line-Retry-Key`` (LINE answers 409 to a repeat, counted
  as sent) or, without a LINE token, put in the outbox;
- a transient failure (429, 5xx, 408, timeout, connection error) schedules the delivery's next try
  after an exponential, jittered backoff (``backoff_delay``, at most ``backoff_max``); its lane
  waits, the group's other lanes and every other group go on;
- a permanent failure (any other 4xx) is final (``failed_permanent``), and so is a delivery still
  failing ``give_up_after`` seconds after its first try (LINE forgets a retry key after 24 h).

A group's pushes are sequential, so one slow or failing group never holds back another group; a
slow group only delays its own messages. Which deliveries exist is always read from the database,
so a worker started after a crash (by the sweep) continues exactly where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import datetime
from typing import Final, Literal

import structlog
from prometheus_client import Counter

from fao.notifier.deliveries import LINE, Delivery, DeliveryStore, plan_lane
from fao.notifier.errors import DeliveryError
from fao.notifier.line_channel import Sender
from fao.notifier.outbox import OUTBOX, Outbox
from fao.notifier.watch import DeliveryWatch

log = structlog.get_logger()

Clock = Callable[[], datetime]
Outcome = Literal["done", "retry", "skip"]

DELIVERIES: Final = Counter(
    "fao_notifier_deliveries_total",
    "Delivery outcomes: recorded, duplicate (recorded before), sent, already_accepted (LINE 409), "
    "retried (a try failed, another follows), superseded, gave_up, failed_permanent, outbox, unroutable",
    ["channel", "outcome"],
)
# A pass that failed on the database is tried again after this long.
STORE_RETRY_DELAY: Final = 2.0


def backoff_delay(failed_attempt: int, base: float, jitter: float, cap: float = float("inf")) -> float:
    """Seconds before the next try: ``base * 2**(n-1)`` after failed try n, scaled by 0.5 + jitter,
    at most ``cap``.

    ``jitter`` is a number in [0, 1), so the delay lies in [0.5, 1.5) times the exponential step
    and deliveries that failed together do not retry together.
    """
    step = base * 2 ** min(max(0, failed_attempt - 1), 60)
    return float(min(cap, step * (0.5 + jitter)))


class DeliveryWorkers:
    """The per-group worker tasks (see the module docstring)."""

    def __init__(
        self,
        *,
        deliveries: DeliveryStore,
        outbox: Outbox,
        sender: Sender | None,
        watch: DeliveryWatch,
        clock: Clock,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        give_up_after: float = 23 * 3600.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = deliveries
        self._outbox = outbox
        self._sender = sender
        self._watch = watch
        self._clock = clock
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._give_up_after = give_up_after
        self._jitter = jitter
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._retry_at: dict[str, float] = {}  # delivery id → loop time of its next try
        self._failures: dict[str, int] = {}  # delivery id → failed tries in a row, in this process
        self._closing = False

    def wake(self, target: str) -> None:
        """Make ``target``'s worker look at its deliveries now (starting it if needed)."""
        if self._closing:
            return
        self._wakes.setdefault(target, asyncio.Event()).set()
        task = self._tasks.get(target)
        if task is None or task.done():
            self._tasks[target] = asyncio.create_task(self._run(target), name=f"deliver:{target}")

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109  # a bound on shutdown, not a cancel scope
        """Start no new try; let tries in flight finish (at most ``timeout`` s), then stop."""
        self._closing = True
        for wake in self._wakes.values():
            wake.set()
        tasks = [task for task in self._tasks.values() if not task.done()]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            log.warning("drain_timeout", groups=len(late))
            await asyncio.wait(late)

    async def _run(self, target: str) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wakes[target]
        while not self._closing:
            wake.clear()
            try:
                due = await self._pass(target)
            except Exception as exc:  # the database failed: try again soon, never die quietly
                log.error("delivery_pass_failed", target=target, error=f"{type(exc).__name__}: {exc}")
                due = loop.time() + STORE_RETRY_DELAY
            if due is None:
                if not wake.is_set():
                    return  # nothing to try: a later wake starts a new worker
                continue
            delay = due - loop.time()
            if delay > 0 and not wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)

    async def _pass(self, target: str) -> float | None:
        """Try every lane of ``target`` once; when to pass again (loop time), or None: nothing to try."""
        loop = asyncio.get_running_loop()
        undelivered = await self._store.undelivered(target)
        next_due: float | None = None
        progressed = False
        for incident_id in dict.fromkeys(d.incident_id for d in undelivered):
            if self._closing:
                return None
            plan = plan_lane(await self._store.lane(incident_id, target))
            for delivery, reason in plan.supersede:
                await self._supersede(delivery, reason)
                progressed = True
            head = plan.send
            if head is None:
                continue
            due = self._retry_at.get(head.id, 0.0)
            if due <= loop.time():
                outcome = await self._attempt(head)
                if outcome == "done":
                    progressed = True
                    continue
                if outcome == "skip":
                    continue
                due = self._retry_at[head.id]
            next_due = due if next_due is None else min(next_due, due)
        return loop.time() if progressed else next_due

    async def _supersede(self, delivery: Delivery, reason: str) -> None:
        await self._store.finish(delivery, "superseded", self._clock(), attempted=False, error=reason)
        self._forget(delivery)
        log.info(
            "delivery_superseded",
            claim=delivery.id,
            target=delivery.target,
            incident=delivery.incident_id,
            event_type=delivery.event_type,
            tried=delivery.tried,
            reason=reason,
        )
        DELIVERIES.labels(delivery.channel, "superseded").inc()

    def _forget(self, delivery: Delivery) -> None:
        self._retry_at.pop(delivery.id, None)
        self._failures.pop(delivery.id, None)
        self._watch.finished(delivery.id)

    async def _attempt(self, delivery: Delivery) -> Outcome:
        bound = log.bind(
            claim=delivery.id,
            target=delivery.target,
            incident=delivery.incident_id,
            event_type=delivery.event_type,
        )
        if delivery.message is None:
            # Claimed by an older notifier that kept no message: its event is still unacknowledged
            # and its redelivery fills the message in.
            bound.warning("delivery_waits_for_its_event")
            return "skip"
        now = self._clock()
        if delivery.status == "pending":
            delivery = await self._store.claim(delivery, now)
        elif delivery.first_attempt_at is not None and (
            (now - delivery.first_attempt_at).total_seconds() > self._give_up_after
        ):
            error = f"gave up after {delivery.attempts} tries since {delivery.first_attempt_at.isoformat()}"
            await self._store.finish(delivery, "failed_permanent", now, attempted=False, error=error)
            self._forget(delivery)
            bound.error("delivery_given_up", attempts=delivery.attempts, error=error)
            DELIVERIES.labels(delivery.channel, "gave_up").inc()
            return "done"
        elif delivery.id not in self._failures:
            # Tried before this process (a crash, a restart): same key, LINE answers 409 if it had it.
            bound.warning("delivery_resumed", attempts=delivery.attempts, retry_key=delivery.retry_key)
        if self._sender is None:
            await self._outbox.put(delivery, now)
            await self._store.finish(delivery, "outbox", self._clock(), attempted=False)
            self._forget(delivery)
            DELIVERIES.labels(OUTBOX, "outbox").inc()
            return "done"
        return await self._send(delivery, self._sender, bound)

    async def _send(
        self, delivery: Delivery, sender: Sender, bound: structlog.typing.FilteringBoundLogger
    ) -> Outcome:
        assert delivery.message is not None  # checked by _attempt
        try:
            receipt = await sender.send(delivery.target, [delivery.message], delivery.retry_key)
        except DeliveryError as exc:
            if exc.permanent:
                await self._store.finish(
                    delivery, "failed_permanent", self._clock(), error=exc.message, http_status=exc.status
                )
                self._forget(delivery)
                self._watch.answered(delivery.target)
                bound.error("delivery_failed_permanent", error=exc.message, http_status=exc.status)
                DELIVERIES.labels(delivery.channel, "failed_permanent").inc()
                return "done"
            now = self._clock()
            await self._store.record_attempt(delivery, now, error=exc.message)
            failures = self._failures[delivery.id] = self._failures.get(delivery.id, 0) + 1
            delay = backoff_delay(failures, self._backoff_base, self._jitter(), self._backoff_max)
            self._retry_at[delivery.id] = asyncio.get_running_loop().time() + delay
            self._watch.failed(delivery.target, now)
            bound.warning("delivery_retry", attempt=failures, delay_s=round(delay, 3), error=exc.message)
            DELIVERIES.labels(delivery.channel, "retried").inc()
            return "retry"
        await self._store.finish(
            delivery,
            "sent",
            self._clock(),
            line_request_id=receipt.request_id,
            sent_message_ids=list(receipt.sent_message_ids),
            already_accepted=receipt.already_accepted,
            accepted_request_id=receipt.accepted_request_id,
        )
        self._forget(delivery)
        self._watch.answered(delivery.target)
        outcome = "already_accepted" if receipt.already_accepted else "sent"
        bound.info("delivery_sent", outcome=outcome, line_request_id=receipt.request_id)
        DELIVERIES.labels(LINE, outcome).inc()
        return "done"
