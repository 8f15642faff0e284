"""The correlator process: results in, incidents (MongoDB) and incident events (JetStream) out.

For every result, in this order, so a crash at any point loses nothing and repeats nothing:
1. decide the next monitor state (pure);
2. save the monitor state document, carrying any new incident events as ``pending`` — one atomic
   single-document write, the commit point;
3. for each pending event: write its incident snapshot (by ``_id``) and publish it (deterministic
   ``Nats-Msg-Id``: a repeat is dropped by the stream), then clear ``pending``;
4. acknowledge the result.
A crash after 2 is finished on restart (``recover``) or on the monitor's next result; a crash
before 2 is repaired by redelivery. A result older than the newest one applied from its prober is
ignored, so redelivery never counts a result twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import structlog
from faststream.nats import JStream, NatsBroker
from prometheus_client import Counter, Gauge

from fao.correlator.incidents import attach_monitor, make_event, open_incident, resolve_incident
from fao.correlator.state_machine import MonitorState, Transition, decide, is_settled
from fao.correlator.store import INDEXES, CorrelatorStore, StoredState
from fao.runtime.consume import subscribe
from fao.runtime.inventory import MonitorCatalog
from fao.runtime.service import Runtime, ServiceApp, new_broker
from fao.runtime.settings import ServiceSettings
from fao.schemas import CheckResult, IncidentEvent, IncidentEventType, Monitor
from fao.schemas import subjects as s

log = structlog.get_logger()

SERVICE = "correlator"
TRANSITIONS = Counter("fao_correlator_transitions_total", "Confirmed monitor transitions", ["kind"])
MONITORS = Gauge(
    "fao_correlator_monitors", "Monitors by state (unknown, up, suspect, down, recovering)", ["status"]
)
RESULTS = Counter("fao_correlator_results_total", "Results folded into monitor state", ["outcome"])
EVENT_TYPES: tuple[IncidentEventType, ...] = ("opened", "noted", "resolved")
DOWN: tuple[str, ...] = ("down", "recovering")


class CorrelatorSettings(ServiceSettings):
    """Only the common settings so far; a class of its own so additions have a home."""


class Correlator:
    """Holds every monitor's state in memory (loaded at start, persisted as described in
    ``apply``), applies results, and groups a system's failing monitors into one incident."""

    def __init__(self, broker: NatsBroker, store: CorrelatorStore, catalog: MonitorCatalog) -> None:
        self._broker = broker
        self._store = store
        self._catalog = catalog
        self._states: dict[str, StoredState] = {}
        # Monitors whose *stored* state is settled (up, no failure in the window): further
        # successes need not be written, see ``apply``.
        self._settled: set[str] = set()
        self._lock = asyncio.Lock()

    async def recover(self) -> None:
        """At start-up: load every monitor's state, and finish transitions a crashed instance
        committed but did not publish."""
        async with self._lock:
            for stored in await self._store.all_states():
                monitor_id = stored.state.monitor_id
                if stored.pending:
                    stored = await self._complete(stored)
                elif is_settled(stored.state):
                    self._settled.add(monitor_id)
                self._remember(stored)

    def _remember(self, stored: StoredState) -> None:
        """Keep ``stored`` as the monitor's current state and count it in the status gauge."""
        previous = self._states.get(stored.state.monitor_id)
        if previous is None or previous.state.status != stored.state.status:
            if previous is not None:
                MONITORS.labels(previous.state.status).dec()
            MONITORS.labels(stored.state.status).inc()
        self._states[stored.state.monitor_id] = stored

    def _stored(self, monitor: Monitor) -> StoredState:
        stored = self._states.get(monitor.id) or StoredState(MonitorState(monitor.id), monitor.system)
        return stored if stored.system_id == monitor.system else replace(stored, system_id=monitor.system)

    def _open_in_system(self, system_id: str, incident_id: str | None, exclude: str) -> list[StoredState]:
        """Other monitors of ``system_id`` that are down in an open incident (``incident_id`` if given)."""
        return [
            st
            for st in self._states.values()
            if st.system_id == system_id
            and st.state.monitor_id != exclude
            and st.open_incident_id is not None
            and st.state.status in DOWN
            and (incident_id is None or st.open_incident_id == incident_id)
        ]

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

    async def _complete(self, stored: StoredState) -> StoredState:
        """Write each pending event's incident and publish the event; both are safe to repeat."""
        for event in stored.pending:
            await self._store.save_incident(event.incident)
            await self.publish(event)
        done = replace(stored, pending=())
        await self._save(done)
        return done

    async def _save(self, stored: StoredState) -> None:
        await self._store.save_state(stored)
        monitor_id = stored.state.monitor_id
        if is_settled(stored.state) and not stored.pending:
            self._settled.add(monitor_id)
        else:
            self._settled.discard(monitor_id)

    async def _events(
        self, stored: StoredState, transition: Transition, monitor: Monitor, zone: str
    ) -> tuple[list[IncidentEvent], str | None]:
        """The events of one transition and the incident the monitor is part of afterwards."""
        if transition.kind == "down":
            for sibling in self._open_in_system(monitor.system, None, monitor.id):
                assert sibling.open_incident_id is not None
                current = await self._store.get_incident(sibling.open_incident_id)
                if current is not None and current.status != "resolved":
                    joined = attach_monitor(current, monitor, zone)
                    return [make_event("noted", joined, transition.since)], joined.id
            system = await self._store.get_system(monitor.system)
            incident = open_incident(transition, monitor, system, zone)
            return [make_event("opened", incident, incident.started_at)], incident.id
        open_id = stored.open_incident_id
        if open_id is None or self._open_in_system(monitor.system, open_id, monitor.id):
            return [], None  # other monitors of the system are still down: the incident stays open
        current = await self._store.get_incident(open_id)
        if current is None or current.status == "resolved":
            log.error("recovery_without_open_incident", monitor=monitor.id, incident=open_id)
            return [], None
        resolved = resolve_incident(current, transition)
        assert resolved.resolved_at is not None
        return [make_event("resolved", resolved, resolved.resolved_at)], None

    async def apply(self, result: CheckResult) -> None:
        """Fold one result in. The state document (with any new events as ``pending``) is the
        commit point: a crash after it is finished by ``_complete`` on the next load or start.

        A success on a monitor whose stored state is already settled (up, no failure in the
        window) is applied in memory only: after a crash the stored state is settled too, and the
        only results it has not seen are successes, so replaying them changes nothing that
        matters. Every failure and every transition is written. This removes the database write
        from the common case (a healthy monitor)."""
        monitor = self._catalog.monitors.get(result.monitor_id)
        if monitor is None:
            log.warning("result_for_unknown_monitor", monitor=result.monitor_id)
            RESULTS.labels("unknown_monitor").inc()
            return
        async with self._lock:
            stored = self._stored(monitor)
            if stored.pending:  # an earlier attempt committed a transition but could not publish it
                stored = await self._complete(stored)
                self._remember(stored)
            decision = decide(stored.state, result, monitor.confirm, monitor.recover_after)
            if not decision.applied:
                RESULTS.labels("duplicate").inc()
                return
            nxt = replace(stored, state=decision.state)
            if decision.transition is None and is_settled(nxt.state) and result.monitor_id in self._settled:
                self._remember(nxt)
                RESULTS.labels("applied_in_memory").inc()
                return
            if decision.transition is not None:
                TRANSITIONS.labels(decision.transition.kind).inc()
                events, incident_id = await self._events(stored, decision.transition, monitor, result.zone)
                nxt = replace(nxt, open_incident_id=incident_id, pending=tuple(events))
            await self._save(nxt)
            self._remember(nxt)
            if nxt.pending:
                self._remember(await self._complete(nxt))
            RESULTS.labels("applied").inc()


def build(settings: CorrelatorSettings | None = None) -> ServiceApp:
    """Wire the subscribers and publishers; nothing connects until ``serve``."""
    settings = settings or CorrelatorSettings()
    broker = new_broker(settings)
    ready: dict[str, Correlator] = {}

    async def apply(result: CheckResult) -> None:
        await ready["correlator"].apply(result)

    subscribe(
        broker, SERVICE, subject=s.RESULTS_SUBJECTS, stream=s.RESULTS_STREAM,
        durable=s.CORRELATOR_RESULTS_CONSUMER, model=CheckResult, handler=apply,
        title="correlator/results",
        description="Check results from every prober; folded into per-monitor state.",
    )  # fmt: skip

    for event_type in EVENT_TYPES:
        broker.publisher(
            s.incident_subject(event_type),
            stream=JStream(s.INCIDENTS_STREAM, declare=False),
            schema=IncidentEvent,
            title=f"incidents/{event_type}",
            description=f"Public: an incident was {event_type}. Nats-Msg-Id = event_id.",
        )

    catalogs: list[MonitorCatalog] = []

    async def on_start(rt: Runtime) -> None:
        catalog = MonitorCatalog(rt.js)
        await catalog.start()
        catalogs.append(catalog)
        correlator = Correlator(broker, CorrelatorStore(rt.db), catalog)
        await correlator.recover()
        ready["correlator"] = correlator

    async def on_stop(_: Runtime) -> None:
        for catalog in catalogs:
            await catalog.stop()

    return ServiceApp(SERVICE, settings, broker, indexes=INDEXES, on_start=on_start, on_stop=on_stop)
