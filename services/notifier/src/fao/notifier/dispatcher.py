"""One incident event through routing, rendering and recording; the delivery machinery around it.

``Notifier.handle`` is the event handler, and it returns quickly: for an event that
``render.should_send`` says is worth a message (a problem starts or is told now, a told problem
ends or is acknowledged; every other event is acknowledged and logged ``event_not_sent``):

1. resolve the route (system → team → LINE groups; ``fao-platform`` → every platform team's
   groups); nowhere to go → log ``no_route``, record an ``unroutable`` delivery, done;
2. render the message once;
3. record one ``pending`` delivery per group, with the message (an insert with a unique ``_id``:
   a redelivered event records nothing new), and wake those groups' workers;
4. a problem message arms the incident's escalation timer (``escalation.Escalator``; its own loop
   fires the due steps); any ``acknowledged``/``resolved`` event cancels it first, and a
   ``resolved`` one also tells the incident's Official Account reporters (``oa_reports``).

The event is then acknowledged: it is durable as deliveries. Sending them, in order per incident
and group, with retries per group, is ``workers.DeliveryWorkers``' job; ``watch.DeliveryWatch``
tells when they are stuck or failing. ``Notifier.start`` reads every undelivered delivery first (a
crash may have left some), and a *supervisor* task then, every second, refreshes the gauges and the
failing period and, every ``sweep_interval``, reads them again and wakes their groups' workers;
it also sends the quarterly owner review when a round is due (``review.OwnerReview``).

Shutdown (``drain``) refuses new events (they are nak'ed and redelivered), stops the supervisor
and lets the workers finish the tries in flight, so the LINE client can be closed without cutting
a request in half: ``serve`` runs the stop hook while the broker still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import structlog
from prometheus_client import Counter
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.broken import BrokenTargets
from fao.notifier.channels.line import LinePush
from fao.notifier.channels.registry import ChannelRegistry, line_channel
from fao.notifier.claims import ClaimStore
from fao.notifier.deliveries import LINE, Delivery, DeliveryStore
from fao.notifier.digest import StormDigests, StormPolicy
from fao.notifier.errors import DeliveryError
from fao.notifier.escalation import Escalator
from fao.notifier.line_channel import Sender
from fao.notifier.oa_reports import ReportFollowUp
from fao.notifier.outbox import Outbox
from fao.notifier.quota import QuotaWatch
from fao.notifier.render import Catalogue, render_event, should_send
from fao.notifier.review import OwnerReview, ReviewSchedule
from fao.notifier.routing import RouteResolver
from fao.notifier.targets import incident_summary
from fao.notifier.watch import DeliveryWatch, Figures
from fao.notifier.workers import DELIVERIES, DeliveryWorkers
from fao.runtime.store import Document
from fao.schemas import IncidentEvent

log = structlog.get_logger()

Clock = Callable[[], datetime]

EVENTS: Final = Counter("fao_notifier_events_total", "Incident events handled", ["type", "outcome"])
# How often the supervisor refreshes the gauges and checks the failing period.
TICK: Final = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """Handles incident events and runs their deliveries; see the module docstring."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        sender: Sender | None,
        catalogue: Catalogue,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        failing_after: float = 300.0,
        sweep_interval: float = 30.0,
        give_up_after: float = 23 * 3600.0,
        clock: Clock = utc_now,
        jitter: Callable[[], float] = random.random,
        storm: StormPolicy | None = None,
        quota: QuotaWatch | None = None,
        channels: ChannelRegistry | None = None,
        review: ReviewSchedule | None = None,
    ) -> None:
        # ``channels``: every configured channel (the service passes the registry built from its
        # settings); None: LINE through ``sender`` (the outbox without one) and nothing else.
        self.channels = channels or ChannelRegistry({LINE: line_channel(db, sender, clock)})
        self._routes = RouteResolver(db, configured=self.channels.names)
        self._deliveries = DeliveryStore(db)
        outbox = Outbox(db)
        self._catalogue = catalogue
        self._clock = clock
        self._sweep_interval = sweep_interval
        self.watch = DeliveryWatch(
            db, routes=self._routes, outbox=outbox, catalogue=catalogue, failing_after=failing_after
        )
        self.workers = DeliveryWorkers(
            deliveries=self._deliveries,
            channels=self.channels,
            claims=ClaimStore(db),
            broken=BrokenTargets(db, notify=self.watch.target_broken),
            watch=self.watch,
            clock=clock,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            give_up_after=give_up_after,
            jitter=jitter,
        )
        self._reports = ReportFollowUp(
            db, deliveries=self._deliveries, catalogue=catalogue, recorded=self._recorded
        )
        # Storm digests (off by default here: the service passes the settings' policy) and the
        # LINE quota watch (None without a LINE token).
        self.quota = quota
        self.digests = StormDigests(
            db,
            self._deliveries,
            catalogue,
            storm or StormPolicy(budget=None),
            digest_only=quota.digest_only if quota is not None else None,
            costs=quota,
        )
        # Escalation steps go through the same storm digests: a storm of unacknowledged incidents
        # reaches a team lead as a few messages and a digest, not one push per incident.
        self.escalations = Escalator(
            db,
            routes=self._routes,
            deliveries=self._deliveries,
            catalogue=catalogue,
            recorded=self._recorded,
            clock=clock,
            reload_interval=sweep_interval,
            digests=self.digests,
        )
        # The quarterly owner review (None: not sent by this notifier).
        self.review = (
            None
            if review is None
            else OwnerReview(
                db, deliveries=self._deliveries, catalogue=catalogue, schedule=review, recorded=self._recorded
            )
        )
        self._supervisor: asyncio.Task[None] | None = None
        self._last_sweep: float | None = None
        self._closing = False

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Continue what an earlier process left (undelivered deliveries, a failing period), then
        start the supervisor."""
        await self.channels.start()
        await self.watch.load()
        await self.sweep()
        if self.quota is not None:
            await self.quota.load()
            self.quota.start()
        await self.digests.load(self._clock())
        await self.flush_digests()
        await self.watch.tick(self._clock())
        if self.review is not None:
            await self.review.tick(self._clock())
        self._supervisor = asyncio.create_task(self._supervise(), name="notifier-supervisor")
        await self.escalations.start()

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109  # a bound on shutdown, not a cancel scope
        """Refuse new events, stop the supervisor, let the tries in flight finish (≤ ``timeout`` s)."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self.quota is not None:
            await self.quota.stop()
        await self.escalations.stop()
        await self.workers.drain(timeout)
        await self.channels.stop()

    def healthy(self) -> bool:
        """The delivery machinery runs: the supervisor is alive and its last sweep of the
        deliveries succeeded recently (LINE failing does not count: that is in the figures)."""
        if self._supervisor is None or self._supervisor.done() or self._last_sweep is None:
            return False
        age = asyncio.get_running_loop().time() - self._last_sweep
        return age <= max(3 * self._sweep_interval, 3 * TICK + 10.0) and self.escalations.healthy()

    def figures(self) -> Figures:
        return self.watch.figures(self._clock())

    async def sweep(self) -> None:
        """Read every undelivered delivery (the gauges' truth) and wake its group's worker."""
        self.watch.sweep_started()
        try:
            undelivered = await self._deliveries.undelivered()
        except BaseException:
            self.watch.sweep_done(None)
            raise
        self.watch.sweep_done(undelivered)
        self._last_sweep = asyncio.get_running_loop().time()
        for target in dict.fromkeys(d.target for d in undelivered):
            self.workers.wake(target)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_interval
        while True:
            await asyncio.sleep(TICK)
            try:
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_interval
                    await self.sweep()
                await self.flush_digests()
                await self.watch.tick(self._clock())
                if self.review is not None:
                    await self.review.tick(self._clock())
            except Exception as exc:  # the database failed: the next tick tries again
                log.error("delivery_supervisor_failed", error=f"{type(exc).__name__}: {exc}")

    async def flush_digests(self) -> None:
        """Record the digest of every storm window that has ended, and send it."""
        for delivery in await self.digests.flush_due(self._clock()):
            self._recorded(delivery)

    def _recorded(self, delivery: Delivery) -> None:
        """A delivery recorded outside the event's own ones (escalation, report follow-up): count
        it as undelivered and wake its target's worker."""
        self.watch.recorded(delivery)
        self.workers.wake(delivery.target)

    # -- events ---------------------------------------------------------------------------------

    async def handle(self, event: IncidentEvent) -> None:
        """Record the event's deliveries (raise to have the event redelivered)."""
        if self._closing:
            raise DeliveryError("the notifier is stopping; the event will be redelivered", permanent=False)
        await self.escalations.observe(event)
        if event.type == "resolved":
            await self._reports.resolved(event, self._clock())
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
        summary = incident_summary(incident)
        # LINE's monthly limit reached: LINE is not tried, so a digest item would only delay the
        # message's fallback until the digest is due; record it as itself, to fall back at once.
        line = self.channels.get(LINE)
        no_line = isinstance(line, LinePush) and line.exhausted(self._clock())
        for plan in route.plans:
            target, extra = plan.target, {**plan.fields(), "incident": summary}
            if target.channel == LINE and not no_line:
                storm = next((t.storm for t in route.teams if t.id == plan.team), None)
                delivery, fresh = await self.digests.record(
                    event, target.address, message, self._clock(), system=route.system, storm=storm, **extra
                )
            else:
                delivery, fresh = await self._deliveries.record(
                    event, target.address, message, self._clock(), target.channel, **extra
                )
            if not delivery.final:
                self.watch.recorded(delivery)
            DELIVERIES.labels(target.channel, "recorded" if fresh else "duplicate").inc()
        bound.info(
            "deliveries_recorded", targets=[f"{p.target.channel}:{p.target.address}" for p in route.plans]
        )
        for plan in route.plans:
            self.workers.wake(plan.target.address)
        if kind == "problem":
            await self.escalations.arm(event, route)
        EVENTS.labels(event.type, "recorded").inc()
