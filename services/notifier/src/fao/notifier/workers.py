"""Sending recorded deliveries: one worker task per target, each with its own retries and fallbacks.

A worker exists while its target (a LINE group, an e-mail address, a webhook URL) has undelivered
deliveries (``wake`` starts it; it ends when the target has nothing left to try). One *pass*
reads the target's undelivered deliveries, and for each incident among them (oldest first) reads
that incident's deliveries to the target (its *lane*) and applies ``deliveries.plan_lane``:
supersede what must never be sent, then try the one delivery that may go now, once, through its
channel (``fao.notifier.channels``):

- a target marked broken (``fao.notifier.broken``) is not tried: the delivery is final
  ``skipped_broken`` and goes to its fallbacks at once;
- ``pending`` → ``claimed`` is written before the first try (claim before send); a channel that
  is not idempotent (e-mail, webhook) also takes an exclusive claim of the attempt
  (``fao.notifier.claims``) and skips when another sender holds it; LINE pushes carry the
  delivery's fixed ``X-Line-Retry-Key`` (a repeat answers 409, counted as sent); without a LINE
  token the LINE channel is the outbox;
- a transient failure (429 rate limit, 5xx, 408, timeout, connection error) schedules the
  delivery's next try after an exponential, jittered backoff (``backoff_delay``, at most
  ``backoff_max``); its lane waits, the target's other lanes and every other target go on. Once
  it has failed ``fallback_after`` times (the team's ``ChannelPolicy``), its message is also
  recorded for the team's fallback targets, and the delivery itself goes on being retried until
  it is final: LINE may still take it (its retry key makes that once), so the group may get the
  message late besides the e-mail;
- a permanent failure (any other 4xx; a bad target also marks it broken) is final
  (``failed_permanent``) and goes to the fallbacks at once, and so is a delivery still failing
  ``give_up_after`` seconds after its first try (LINE forgets a retry key after 24 h);
- LINE's monthly limit (``MonthlyLimitError``) is final ``quota_exhausted`` and goes to the
  fallbacks at once; while it lasts LINE is not tried at all.

A fallback delivery is recorded with the claim id ``<event_id>:<channel>:<target>``
(``DeliveryStore.record_message``), so it is recorded once however many primary deliveries fail
(several groups of a team, a retry after a crash); it has no further fallbacks, records
``fallback_of`` (the delivery that failed) and ``fallback_reason`` (``failed_attempts``,
``permanent_error``, ``target_broken``, ``line_monthly_limit``, ``gave_up``), and the delivery
that failed records ``fell_back`` (the reason). A fallback target that got an incident's message
also gets the incident's later messages that went through on the primary channel
(``follows_fallback``: the e-mail that said "down" also says "back to normal"), in order: the
fallback target's lane is ordered like any other. A storm digest carries the plan of its latest
item (``fao.notifier.digest``), so it falls back as one digest. While LINE's monthly limit is
known to be reached the dispatcher records LINE messages as themselves, not as digest items, so
they fall back at once instead of when the digest is due.

A target's tries are sequential, so one slow or failing target never holds back another; a slow
target only delays its own messages. Which deliveries exist is always read from the database, so
a worker started after a crash (by the sweep) continues exactly where the last one stopped.
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

from fao.notifier.broken import BrokenTargets
from fao.notifier.channels.contract import Channel, Outgoing, Receipt
from fao.notifier.channels.registry import ChannelRegistry
from fao.notifier.claims import ClaimStore
from fao.notifier.deliveries import LINE, Delivery, DeliveryStore, claim_id, plan_lane
from fao.notifier.errors import DeliveryError, MonthlyLimitError
from fao.notifier.outbox import OUTBOX
from fao.notifier.targets import Target
from fao.notifier.watch import DeliveryWatch

log = structlog.get_logger()

Clock = Callable[[], datetime]
Outcome = Literal["done", "retry", "skip"]
Bound = structlog.typing.FilteringBoundLogger

DELIVERIES: Final = Counter(
    "fao_notifier_deliveries_total",
    "Delivery outcomes: recorded, duplicate (recorded before), sent, already_accepted (LINE 409), "
    "retried (a try failed, another follows), superseded, gave_up, failed_permanent, outbox, "
    "unroutable, skipped_broken, quota_exhausted, fallback (recorded for a fallback target), "
    "claimed_elsewhere (another sender holds the attempt)",
    ["channel", "outcome"],
)
# A pass that failed on the database is tried again after this long.
STORE_RETRY_DELAY: Final = 2.0
# Seconds before looking again at a delivery whose attempt another sender holds.
CLAIMED_ELSEWHERE_DELAY: Final = 5.0


def backoff_delay(failed_attempt: int, base: float, jitter: float, cap: float = float("inf")) -> float:
    """Seconds before the next try: ``base * 2**(n-1)`` after failed try n, scaled by 0.5 + jitter,
    at most ``cap``.

    ``jitter`` is a number in [0, 1), so the delay lies in [0.5, 1.5) times the exponential step
    and deliveries that failed together do not retry together.
    """
    step = base * 2 ** min(max(0, failed_attempt - 1), 60)
    return float(min(cap, step * (0.5 + jitter)))


def claim_stale_after(channel: Channel) -> float:
    """An attempt claimed longer ago than this, with no outcome, was abandoned (its sender died)."""
    return 2 * channel.timeout + 10.0


class DeliveryWorkers:
    """The per-target worker tasks (see the module docstring)."""

    def __init__(
        self,
        *,
        deliveries: DeliveryStore,
        channels: ChannelRegistry,
        claims: ClaimStore,
        broken: BrokenTargets,
        watch: DeliveryWatch,
        clock: Clock,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        give_up_after: float = 23 * 3600.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = deliveries
        self._channels = channels
        self._claims = claims
        self._broken = broken
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
        self._fell_back: set[str] = set()  # delivery ids whose fallbacks are recorded
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

    async def _final(
        self, delivery: Delivery, status: Literal["failed_permanent", "skipped_broken", "quota_exhausted"],
        outcome: str, reason: str, *, attempted: bool, **fields: object,
    ) -> Outcome:  # fmt: skip
        """Give ``delivery``'s message to the fallbacks, then make it final without a send (in
        this order: a crash in between leaves it undelivered, so it comes back and falls back)."""
        await self._fall_back(delivery, reason)
        await self._store.finish(delivery, status, self._clock(), attempted=attempted, **fields)
        self._forget(delivery)
        DELIVERIES.labels(delivery.channel, outcome).inc()
        return "done"

    async def _attempt(self, delivery: Delivery) -> Outcome:
        bound = log.bind(
            claim=delivery.id,
            channel=delivery.channel,
            target=delivery.target,
            incident=delivery.incident_id,
            event_type=delivery.event_type,
        )
        if delivery.message is None:
            # Claimed by an older notifier that kept no message: its event is still unacknowledged
            # and its redelivery fills the message in.
            bound.warning("delivery_waits_for_its_event")
            return "skip"
        channel = self._channels.get(delivery.channel)
        if channel is None:
            error = f"the {delivery.channel} channel is not configured in this notifier"
            bound.error("delivery_channel_not_configured")
            return await self._final(
                delivery,
                "failed_permanent",
                "failed_permanent",
                "permanent_error",
                attempted=False,
                error=error,
            )
        mark = await self._broken.check(delivery)
        if mark is not None:
            error = f"target broken since {mark.since.isoformat()}: {mark.error}"
            bound.warning("delivery_skipped_broken", since=mark.since.isoformat())
            return await self._final(
                delivery, "skipped_broken", "skipped_broken", "target_broken", attempted=False, error=error
            )
        now = self._clock()
        if delivery.status == "pending":
            delivery = await self._store.claim(delivery, now)
        elif delivery.first_attempt_at is not None and (
            (now - delivery.first_attempt_at).total_seconds() > self._give_up_after
        ):
            error = f"gave up after {delivery.attempts} tries since {delivery.first_attempt_at.isoformat()}"
            bound.error("delivery_given_up", attempts=delivery.attempts, error=error)
            return await self._final(
                delivery, "failed_permanent", "gave_up", "gave_up", attempted=False, error=error
            )
        elif delivery.id not in self._failures:
            # Tried before this process (a crash, a restart): same key, LINE answers 409 if it had it.
            bound.warning("delivery_resumed", attempts=delivery.attempts, retry_key=delivery.retry_key)
        attempt: int | None = None
        if not channel.idempotent:
            acquired = await self._claims.acquire(
                delivery.id, delivery.attempts, now, claim_stale_after(channel)
            )
            if acquired == "sent":  # another sender's attempt went through
                await self._store.finish(delivery, "sent", self._clock(), attempted=False)
                self._forget(delivery)
                bound.info("delivery_sent_elsewhere")
                return "done"
            if acquired == "busy":
                bound.info("delivery_claimed_elsewhere")
                DELIVERIES.labels(delivery.channel, "claimed_elsewhere").inc()
                self._retry_at[delivery.id] = asyncio.get_running_loop().time() + CLAIMED_ELSEWHERE_DELAY
                return "retry"
            attempt = acquired
        return await self._send(delivery, channel, attempt, bound)

    async def _send(self, delivery: Delivery, channel: Channel, attempt: int | None, bound: Bound) -> Outcome:
        assert delivery.message is not None  # checked by _attempt
        plan = delivery.plan
        outgoing = Outgoing(
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            incident_id=delivery.incident_id,
            at=delivery.at,
            message=delivery.message,
            incident=delivery.incident,
            options=plan.target.options if plan is not None else {},
        )
        try:
            receipt = await channel.send(delivery.target, outgoing, delivery.retry_key)
        except MonthlyLimitError as exc:
            if exc.fresh:
                self._watch.answered(delivery.target)
            bound.warning("delivery_quota_exhausted", until=exc.until.isoformat(), tried=exc.fresh)
            return await self._final(
                delivery, "quota_exhausted", "quota_exhausted", "line_monthly_limit",
                attempted=exc.fresh, error=exc.message, http_status=exc.status, quota_until=exc.until,
            )  # fmt: skip
        except DeliveryError as exc:
            if exc.permanent:
                if delivery.channel == LINE:
                    self._watch.answered(delivery.target)
                bound.error(
                    "delivery_failed_permanent",
                    error=exc.message,
                    http_status=exc.status,
                    target_error=exc.target,
                )
                if exc.target:
                    await self._broken.mark(delivery, exc.message, self._clock())
                return await self._final(
                    delivery, "failed_permanent", "failed_permanent", "permanent_error",
                    attempted=True, error=exc.message, http_status=exc.status, target_error=exc.target,
                )  # fmt: skip
            return await self._failed(delivery, attempt, exc, bound)
        if attempt is not None:
            await self._claims.sent(delivery.id, attempt, self._clock())
        await self._sent(delivery, channel, receipt, bound)
        return "done"

    async def _failed(
        self, delivery: Delivery, attempt: int | None, exc: DeliveryError, bound: Bound
    ) -> Outcome:
        """A transient failure: count it, schedule the next try, fall back after enough of them."""
        now = self._clock()
        if attempt is not None:
            await self._claims.failed(delivery.id, attempt, exc.message, now)
        await self._store.record_attempt(delivery, now, error=exc.message)
        failures = self._failures[delivery.id] = self._failures.get(delivery.id, 0) + 1
        delay = backoff_delay(failures, self._backoff_base, self._jitter(), self._backoff_max)
        self._retry_at[delivery.id] = asyncio.get_running_loop().time() + delay
        if delivery.channel == LINE:
            self._watch.failed(delivery.target, now)
        bound.warning("delivery_retry", attempt=failures, delay_s=round(delay, 3), error=exc.message)
        DELIVERIES.labels(delivery.channel, "retried").inc()
        plan = delivery.plan
        if plan is not None and delivery.attempts + 1 >= plan.fallback_after:
            await self._fall_back(delivery, "failed_attempts")
        return "retry"

    async def _sent(self, delivery: Delivery, channel: Channel, receipt: Receipt, bound: Bound) -> None:
        if channel.name == OUTBOX:
            await self._store.finish(delivery, "outbox", self._clock(), attempted=False)
            self._forget(delivery)
            DELIVERIES.labels(OUTBOX, "outbox").inc()
            return
        await self._follow_fallbacks(delivery)  # first: a crash before "sent" comes back here
        await self._store.finish(
            delivery,
            "sent",
            self._clock(),
            line_request_id=receipt.request_id if delivery.channel == LINE else None,
            request_id=receipt.request_id,
            sent_message_ids=list(receipt.sent_message_ids),
            already_accepted=receipt.already_accepted,
            accepted_request_id=receipt.accepted_request_id,
        )
        self._forget(delivery)
        if delivery.channel == LINE:
            self._watch.answered(delivery.target)
        await self._broken.sent(delivery.channel, delivery.target)
        outcome = "already_accepted" if receipt.already_accepted else "sent"
        bound.info("delivery_sent", outcome=outcome, request_id=receipt.request_id)
        DELIVERIES.labels(delivery.channel, outcome).inc()

    async def _follow_fallbacks(self, delivery: Delivery) -> None:
        """A fallback target that got an earlier message of this incident gets this one too (the
        e-mail that said "down" also says "acknowledged" and "back to normal")."""
        plan = delivery.plan
        if plan is None or not plan.fallbacks or delivery.id in self._fell_back:
            return
        followed = tuple(
            [t for t in plan.fallbacks if await self._store.lane(delivery.incident_id, t.address)]
        )
        if followed:
            await self._fall_back(delivery, "follows_fallback", followed)

    async def _fall_back(
        self, delivery: Delivery, reason: str, targets: tuple[Target, ...] | None = None
    ) -> None:
        """Record ``delivery``'s message for its plan's fallback targets (or ``targets`` of them),
        once each, and wake them."""
        plan = delivery.plan
        if plan is None or not plan.fallbacks or delivery.message is None or delivery.id in self._fell_back:
            return
        now = self._clock()
        targets = plan.fallbacks if targets is None else targets
        for target in targets:
            recorded, fresh = await self._store.record_message(
                claim_id(delivery.event_id, target.address, target.channel),
                event_id=delivery.event_id,
                incident_id=delivery.incident_id,
                event_type=delivery.event_type,
                target=target.address,
                message=delivery.message,
                at=delivery.at,
                now=now,
                channel=target.channel,
                **plan.fallback_plan(target).fields(),
                incident=dict(delivery.incident) if delivery.incident else None,
                fallback_of=delivery.id,
                fallback_reason=reason,
            )
            if fresh:
                self._watch.recorded(recorded)
                DELIVERIES.labels(target.channel, "fallback").inc()
            self.wake(target.address)
        await self._store.annotate(delivery, now, fell_back=reason)
        self._fell_back.add(delivery.id)
        log.warning(
            "delivery_fell_back",
            claim=delivery.id,
            channel=delivery.channel,
            target=delivery.target,
            incident=delivery.incident_id,
            reason=reason,
            fallbacks=[f"{t.channel}:{t.address}" for t in targets],
        )
