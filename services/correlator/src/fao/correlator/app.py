"""The correlator process: results in, incidents (MongoDB) and incident events (JetStream) out.

For every result, in this order, so a crash at any point is repaired by redelivery:
1. decide the next monitor state (pure);
2. on a transition, write the incident (deterministic id: a repeat is a no-op);
3. publish the incident event (deterministic Nats-Msg-Id: a repeat is dropped by the stream);
4. save the monitor state; 5. acknowledge the result.
"""

from __future__ import annotations

import asyncio
import logging

import structlog
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from prometheus_client import Counter

from fao.correlator.incidents import make_event, open_incident, resolve_incident
from fao.correlator.state_machine import MonitorState, decide
from fao.correlator.store import INDEXES, CorrelatorStore
from fao.runtime.consume import process
from fao.runtime.inventory import MonitorCatalog
from fao.runtime.service import Runtime, ServiceApp
from fao.runtime.settings import ServiceSettings
from fao.schemas import CheckResult, Incident, IncidentEvent, IncidentEventType
from fao.schemas import subjects as s

log = structlog.get_logger()

SERVICE = "correlator"
TRANSITIONS = Counter("fao_correlator_transitions_total", "Confirmed monitor transitions", ["kind"])
RESULTS = Counter("fao_correlator_results_total", "Results folded into monitor state", ["outcome"])
EVENT_TYPES: tuple[IncidentEventType, ...] = ("opened", "resolved")


class CorrelatorSettings(ServiceSettings):
    results_batch: int = 64


class Correlator:
    """Holds per-monitor state (cached, persisted after each change) and applies results."""

    def __init__(self, broker: NatsBroker, store: CorrelatorStore, catalog: MonitorCatalog) -> None:
        self._broker = broker
        self._store = store
        self._catalog = catalog
        self._states: dict[str, tuple[MonitorState, str | None]] = {}
        self._lock = asyncio.Lock()

    async def _state(self, monitor_id: str) -> tuple[MonitorState, str | None]:
        cached = self._states.get(monitor_id)
        if cached is None:
            cached = await self._store.load_state(monitor_id) or (MonitorState(monitor_id), None)
            self._states[monitor_id] = cached
        return cached

    async def publish(self, event: IncidentEvent) -> None:
        await self._broker.publish(
            event,
            s.incident_subject(event.type),
            stream=s.INCIDENTS_STREAM,
            headers={"Nats-Msg-Id": str(event.event_id)},
            timeout=5.0,
        )
        log.info(
            "incident_event", type=event.type, incident=event.incident.id, system=event.incident.system_id
        )

    async def apply(self, result: CheckResult) -> None:
        monitor = self._catalog.monitors.get(result.monitor_id)
        if monitor is None:
            log.warning("result_for_unknown_monitor", monitor=result.monitor_id)
            RESULTS.labels("unknown_monitor").inc()
            return
        async with self._lock:
            state, open_id = await self._state(result.monitor_id)
            decision = decide(state, result, monitor.confirm, monitor.recover_after)
            if not decision.applied:
                RESULTS.labels("duplicate").inc()
                return
            transition = decision.transition
            if transition is not None and transition.kind == "down":
                system = await self._store.get_system(monitor.system)
                incident = await self._store.insert_incident(
                    open_incident(transition, monitor, system, result.zone)
                )
                await self.publish(make_event("opened", incident, incident.started_at))
                open_id = incident.id
            elif transition is not None and transition.kind == "up" and open_id is not None:
                current: Incident | None = await self._store.get_incident(open_id)
                if current is not None and current.status != "resolved":
                    current = resolve_incident(current, transition)
                    await self._store.save_incident(current)
                if current is not None:
                    assert current.resolved_at is not None
                    await self.publish(make_event("resolved", current, current.resolved_at))
                open_id = None
            if transition is not None:
                TRANSITIONS.labels(transition.kind).inc()
            await self._store.save_state(decision.state, open_id)
            self._states[result.monitor_id] = (decision.state, open_id)
            RESULTS.labels("applied").inc()


def build(settings: CorrelatorSettings | None = None) -> ServiceApp:
    """Wire the subscribers and publishers; nothing connects until ``serve``."""
    settings = settings or CorrelatorSettings()
    broker = NatsBroker(settings.nats_url, log_level=logging.WARNING)
    ready: dict[str, Correlator] = {}

    @broker.subscriber(
        s.RESULTS_SUBJECTS,
        stream=JStream(s.RESULTS_STREAM, declare=False),
        durable=s.CORRELATOR_RESULTS_CONSUMER,
        pull_sub=PullSub(batch_size=settings.results_batch, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
        title="correlator/results",
        description="Check results from every prober; folded into per-monitor state.",
    )
    async def on_result(msg: NatsMessage) -> None:
        await process(broker, SERVICE, msg, CheckResult, ready["correlator"].apply)

    for event_type in EVENT_TYPES:
        broker.publisher(
            s.incident_subject(event_type),
            stream=JStream(s.INCIDENTS_STREAM, declare=False),
            schema=IncidentEvent,
            title=f"incidents/{event_type}",
            description=f"Public: an incident was {event_type}. Nats-Msg-Id = event_id.",
        )

    async def on_start(rt: Runtime) -> None:
        catalog = MonitorCatalog(rt.js)
        await catalog.start()
        ready["correlator"] = Correlator(broker, CorrelatorStore(rt.db), catalog)

    return ServiceApp(SERVICE, settings, broker, indexes=INDEXES, on_start=on_start)
