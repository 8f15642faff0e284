"""One incident event through routing, rendering, claims and sending: the notifier's core.

For an event that ``render.should_send`` says is worth a message (a problem starts or is told now,
a told problem ends or is acknowledged; every other event is acknowledged and logged
``event_not_sent``):

1. resolve the route (system → team → LINE groups; ``fao-platform`` → every platform team's
   groups); nowhere to go → log ``no_route``, record an ``unroutable`` delivery, done;
2. render the message once;
3. for each group: claim the delivery (insert; a final claim is skipped), then send it to LINE or,
   without a LINE token, put it in the outbox;
4. the retry loop lives here and only here: a transient ``DeliveryError`` is retried in-process
   with exponential, jittered backoff and the claim's fixed retry key, up to ``max_attempts``; if
   it still fails, ``handle`` raises and ``fao.runtime.consume.process`` naks the event so
   JetStream redelivers it later (the claim stays ``claimed``, the redelivery sends again with the
   same key, and LINE answers 409 if the earlier send had in fact arrived). A permanent error marks
   the delivery ``failed_permanent`` and the event is acknowledged.

Shutdown (``drain``) lets handlings in progress finish their current send, stops retrying
in-process and refuses new events (they are nak'ed and redelivered), so the LINE client can be
closed without cutting a request in half: ``serve`` runs the stop hook while the broker still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import structlog
from prometheus_client import Counter

from fao.notifier.deliveries import LINE, Claim, DeliveryStore
from fao.notifier.errors import DeliveryError
from fao.notifier.line_channel import Sender
from fao.notifier.outbox import OUTBOX, Outbox
from fao.notifier.render import Catalogue, RenderedMessage, render_event, should_send
from fao.notifier.routing import RouteResolver
from fao.schemas import IncidentEvent

log = structlog.get_logger()

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

DELIVERIES: Final = Counter(
    "fao_notifier_deliveries_total",
    "Delivery outcomes: sent, already_accepted (LINE 409), skipped (done before), retried, deferred "
    "(left for redelivery), failed_permanent, outbox, unroutable",
    ["channel", "outcome"],
)
EVENTS: Final = Counter("fao_notifier_events_total", "Incident events handled", ["type", "outcome"])


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff_delay(failed_attempt: int, base: float, jitter: float) -> float:
    """Seconds before the next try: ``base * 2**(n-1)`` after failed try n, scaled by 0.5 + jitter.

    ``jitter`` is a number in [0, 1), so the delay lies in [0.5, 1.5) times the exponential step
    and replicas that failed together do not retry together.
    """
    return float(base * 2 ** max(0, failed_attempt - 1) * (0.5 + jitter))


class Notifier:
    """Handles incident events; see the module docstring for the steps."""

    def __init__(
        self,
        *,
        routes: RouteResolver,
        deliveries: DeliveryStore,
        outbox: Outbox,
        sender: Sender | None,
        catalogue: Catalogue,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._routes = routes
        self._deliveries = deliveries
        self._outbox = outbox
        self._sender = sender
        self._catalogue = catalogue
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._closing = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109  # a bound on shutdown, not a cancel scope
        """Refuse new events and wait (at most ``timeout`` s) for the ones in progress."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self._in_flight:
            log.warning("drain_timeout", in_flight=self._in_flight)

    async def handle(self, event: IncidentEvent) -> None:
        """Deliver the event's message to every route target; raise to have it redelivered."""
        if self._closing:
            raise DeliveryError("the notifier is stopping; the event will be redelivered", permanent=False)
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._handle(event)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, event: IncidentEvent) -> None:
        incident = event.incident
        bound = log.bind(event_id=str(event.event_id), event_type=event.type, incident=incident.id)
        kind = should_send(event)
        if kind is None:
            bound.info("event_not_sent", kind=incident.kind, muted=incident.muted, alerted=incident.alerted)
            EVENTS.labels(event.type, "not_sent").inc()
            return
        bound = bound.bind(message=kind)
        route = await self._routes.resolve(incident.system_id)
        if not route.routable:
            bound.error("no_route", system=incident.system_id, problem=route.problem)
            await self._deliveries.record_unroutable(event, route.problem or "unroutable", self._clock())
            DELIVERIES.labels(LINE, "unroutable").inc()
            EVENTS.labels(event.type, "unroutable").inc()
            return
        message = render_event(event, route.system, self._catalogue, kind)
        deferred: list[str] = []
        for target in route.line_groups:
            try:
                await self._deliver(event, target, message)
            except DeliveryError as exc:
                deferred.append(f"{target}: {exc.message}")
        if deferred:
            EVENTS.labels(event.type, "deferred").inc()
            raise DeliveryError(
                f"{len(deferred)} of {len(route.line_groups)} deliveries left for redelivery: "
                + "; ".join(deferred),
                permanent=False,
            )
        EVENTS.labels(event.type, "done").inc()

    async def _deliver(self, event: IncidentEvent, target: str, message: RenderedMessage) -> None:
        claim = await self._deliveries.claim(event, target, self._clock())
        bound = log.bind(claim=claim.id, target=target, incident=claim.incident_id, event_type=event.type)
        if claim.done:
            bound.info("delivery_skipped", status=claim.status)
            DELIVERIES.labels(claim.channel, "skipped").inc()
            return
        if claim.taken_over:
            bound.warning("delivery_resumed", retry_key=claim.retry_key)
        if self._sender is None:
            await self._outbox.put(claim, message, self._clock())
            await self._deliveries.finish(claim, "outbox", self._clock(), attempted=False)
            DELIVERIES.labels(OUTBOX, "outbox").inc()
            return
        await self._send(claim, message, self._sender, bound)

    async def _send(
        self,
        claim: Claim,
        message: RenderedMessage,
        sender: Sender,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                receipt = await sender.send(claim.target, [message], claim.retry_key)
            except DeliveryError as exc:
                if exc.permanent:
                    await self._deliveries.finish(
                        claim, "failed_permanent", self._clock(), error=exc.message, http_status=exc.status
                    )
                    bound.error("delivery_failed_permanent", error=exc.message, http_status=exc.status)
                    DELIVERIES.labels(claim.channel, "failed_permanent").inc()
                    return
                await self._deliveries.record_attempt(claim, self._clock(), error=exc.message)
                if attempt == self._max_attempts or self._closing:
                    bound.warning("delivery_deferred", attempts=attempt, error=exc.message)
                    DELIVERIES.labels(claim.channel, "deferred").inc()
                    raise
                delay = backoff_delay(attempt, self._backoff_base, self._jitter())
                bound.warning("delivery_retry", attempt=attempt, delay_s=round(delay, 3), error=exc.message)
                DELIVERIES.labels(claim.channel, "retried").inc()
                await self._sleep(delay)
                continue
            await self._deliveries.finish(
                claim,
                "sent",
                self._clock(),
                line_request_id=receipt.request_id,
                sent_message_ids=list(receipt.sent_message_ids),
                already_accepted=receipt.already_accepted,
                accepted_request_id=receipt.accepted_request_id,
            )
            outcome = "already_accepted" if receipt.already_accepted else "sent"
            bound.info("delivery_sent", outcome=outcome, attempts=attempt, line_request_id=receipt.request_id)
            DELIVERIES.labels(claim.channel, outcome).inc()
            return
