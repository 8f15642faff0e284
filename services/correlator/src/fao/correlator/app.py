"""The correlator process: results and commands in, incidents (MongoDB) and events (JetStream) out.

The service only loads, calls the pure policy (``policy.py``), commits, publishes:

1. finish any decision committed but not yet applied (``store.py``: the journal);
2. ask the policy (``on_result``, ``on_command``, or ``on_tick`` once a second);
3. commit its ``Outcome``: a change of one monitor state alone is one document write; anything
   more is one journal document first (the commit point), then the documents, then the events
   (deterministic ``Nats-Msg-Id``), then the journal entry is deleted;
4. acknowledge the message.

A message on the results stream holds one result (probers before batching) or a ``ResultBatch``;
its results are applied one by one, in order, through the same path (``apply_all``), and the
message is acknowledged after the last; messages already waiting behind it are applied with it
and committed as one group (``apply_group``, up to ``FAO_RESULTS_GROUP``). A batch redelivered after a failure or a crash goes through
again: each result already applied is recognised by its monitor's newest-result mark per zone and
prober (``MonitorState.applied``, written with every state write) and ignored, so nothing counts
twice; results whose effect was only in memory when the process died are applied again, which is
what a lost single result could never be.

A result that changes nothing a decision depends on (``MonitorState.essential``: statuses per zone
and overall, flapping, when the problem began or cleared) is applied in memory only — the common
case, a healthy monitor staying healthy or a down one staying down. After a crash the stored
state has every decision-relevant fact; what is lost is detail (the newest samples, the flap
history, the last-result times), so a pending X-of-Y confirmation may count up to X-1 failures
again. Every change of status, every incident change and every event is written before the ack.

Several correlators share the work (``fao.correlator.roles``): each ``Correlator`` decides one
*shard* — the systems of results partitions closed under dependencies — or the platform role
(zone problems, silent probers), as its ``Scope`` says; a shard is decided by one instance at a
time (KV leases) and moves to another within about one lease TTL when its instance dies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog
from faststream.nats import JStream, NatsBroker
from prometheus_client import Counter, Gauge
from pydantic import Field

from fao.correlator.graph import SystemGraph
from fao.correlator.monitor_state import MonitorState
from fao.correlator.policy import (
    Incidents,
    Outcome,
    World,
    ZoneView,
    joined_text,
    missed_heartbeats,
    on_command,
    on_result,
    on_tick,
    on_zone_views,
    zone_views,
)
from fao.correlator.roles import Roles
from fao.correlator.scope import Scope
from fao.correlator.store import INDEXES, CorrelatorStore, JournalEntry
from fao.runtime.bus import MessageTooLarge, check_size
from fao.runtime.consume import Rejected
from fao.runtime.inventory import MaintenanceCatalog, MonitorCatalog
from fao.runtime.service import Runtime, ServiceApp, new_broker
from fao.runtime.settings import ServiceSettings
from fao.schemas import (
    CheckResult,
    Command,
    CommandRejected,
    IncidentEvent,
    IncidentEventType,
    Monitor,
    System,
)
from fao.schemas import subjects as s
from fao.schemas.subjects import result_partition

log = structlog.get_logger()

SERVICE = "correlator"
EVENTS = Counter("fao_correlator_events_total", "Incident events published", ["type"])
MONITORS = Gauge("fao_correlator_monitors", "Monitors by state (unknown, up, down)", ["status"])
RESULTS = Counter("fao_correlator_results_total", "Results by outcome", ["outcome"])
COMMANDS = Counter("fao_correlator_commands_total", "Commands by outcome", ["action", "outcome"])
EVENT_TYPES: tuple[IncidentEventType, ...] = (
    "opened", "acknowledged", "resolved", "reopened", "noted", "suppressed", "flapping", "unmuted",
)  # fmt: skip
TICK = 1.0
SYSTEMS_REFRESH = 10.0
DRIFT_CHECK = 60.0
DRIFT_SPACING = 50.0
DRIFT = Gauge(
    "fao_correlator_inventory_drift",
    "Monitors whose definition in the KV bucket (what probers run) differs from MongoDB (what fao apply wrote)",
)
KEEP_RESOLVED = timedelta(hours=2)
# Results that finished longer ago than this when handled mean the correlator is working through
# a backlog: waits for evidence then run on the results' clock (``World.evidence_at``).
LIVE_LAG = timedelta(seconds=5)
IMPLAUSIBLE = {
    "unknown_monitor": "no monitor {r.monitor_id!r} in the catalog",
    "zone_not_listed": "monitor {r.monitor_id!r} is not checked from zone {r.zone!r}",
    "from_the_future": "started_at {r.started_at:%Y-%m-%dT%H:%M:%SZ} is in the future",
}
# An event whose snapshot would not fit its stream lists at most this many dependants/monitors.
MAX_LISTED = 2000
# At most this many result messages are committed together by default (``results_group``).
RESULTS_GROUP = 32

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CorrelatorSettings(ServiceSettings):
    """The common settings, and how many result messages are committed together at most."""

    # Result messages already waiting behind the one pulled are applied with it and committed
    # together (``Correlator.apply_group``), up to this many. A storm's messages then cost one
    # commit per group instead of one each: 10,000 monitors failing at once (bench/correlator_storm.py)
    # settle in the time of a few FerretDB commits. 1 turns grouping off.
    results_group: int = Field(default=RESULTS_GROUP, ge=1, le=256)


class Correlator:
    """Holds the states of its scope's monitors and their open incidents in memory (loaded at start)."""

    def __init__(
        self,
        broker: NatsBroker,
        store: CorrelatorStore,
        catalog: MonitorCatalog,
        windows: MaintenanceCatalog | None = None,
        clock: Clock = utc_now,
        scope: Scope | None = None,
        zone_views: Callable[[], dict[str, ZoneView]] | None = None,
        systems: Callable[[], list[System]] | None = None,
    ) -> None:
        self.scope = scope or Scope()
        self._systems_source = systems
        # The platform role (not whole): every shard's zone views merged (``on_zone_views``).
        self._zone_views = zone_views
        self._zone_clear: dict[str, datetime] = {}
        self._views_written: dict[str, ZoneView] | None = None
        self._monitors: dict[str, Monitor] = {}
        self._broker = broker
        self._store = store
        self._catalog = catalog
        self._windows = windows
        self._clock = clock
        self.states: dict[str, MonitorState] = {}
        self.incidents = Incidents()
        self._graph = SystemGraph.build([])
        self._systems: list[System] = []
        self._by_system: dict[str, list[str]] = {}
        self._zones: list[str] = []
        self._monitors_dirty = True  # the catalog changed since the indexes were built
        self._first_seen: dict[str, datetime] = {}
        self._stored: dict[str, tuple[object, ...]] = {}  # monitor → essential facts of its stored state
        # What applying one message decided, committed together before it is acknowledged (and
        # before any other decision is committed): see ``apply_all``. The monitors whose state
        # changed (their state in memory is what gets written) and the incidents, events.
        self._touched: set[str] = set()
        self._group = Outcome()
        self._unfinished: list[JournalEntry] = []
        self._lock = asyncio.Lock()
        self.started_at = clock()
        self._evidence: datetime | None = None  # newest result's end; None until one is seen
        self._drifted: list[str] = []
        self._behind = False
        self._stalled = False  # the store failed since the last tick that worked (see ``tick``)

    @property
    def store(self) -> CorrelatorStore:
        return self._store

    # -- loading ---------------------------------------------------------------------------------
    async def recover(self) -> None:
        """At start-up: load states, open incidents and systems; finish committed decisions."""
        async with self._lock:
            for state in await self._store.all_states():
                if not self.scope.owns(state.system_id):
                    continue
                self._remember(state)
                self._stored[state.monitor_id] = state.essential()
            for incident in await self._store.open_incidents():
                if self.scope.owns(incident.system_id):
                    self.incidents.put(incident)
            for incident in list(self.incidents.open()):
                parent_id = incident.parent_incident_id
                if parent_id and parent_id not in self.incidents.by_id:
                    parent = await self._store.get_incident(parent_id)
                    if parent is not None:
                        self.incidents.put(parent)
            await self.refresh_systems()
            # Until live results arrive, waits run on the clock of the newest result stored: a
            # standby taking over must not end holds whose evidence is still queued.
            seen = [st.last_at for st in self.states.values() if st.last_at is not None]
            if seen:
                self._evidence = max(seen)
                self._behind = self._clock() - self._evidence > LIVE_LAG
            self._unfinished = [e for e in await self._store.journal() if self.scope.owns_entry(e)]
            await self._finish()

    async def check_drift(self) -> list[str]:
        """Monitors whose KV definition (followed live) and MongoDB copy disagree — someone wrote
        the bucket or the collection by hand. Logged and on /metrics; ``fao apply --check`` lists
        them and ``fao apply <dir>`` repairs them."""
        applied = await self._store.applied_monitors()
        running = self._catalog.monitors
        drifted = sorted(m for m in {*applied, *running} if applied.get(m) != running.get(m))
        DRIFT.set(len(drifted))
        if drifted != self._drifted:
            if drifted:
                log.warning("inventory_drift", monitors=drifted[:20], count=len(drifted))
            else:
                log.info("inventory_drift_gone")
        self._drifted = drifted
        return drifted

    async def refresh_systems(self) -> None:
        """The systems (their dependencies) from the store — or, when several correlators of one
        process share them (``fao.correlator.roles``), from the reading they share."""
        source = self._systems_source
        systems = source() if source is not None else await self._store.systems()
        if systems != self._systems:
            self._systems = systems
            self._graph = SystemGraph.build(systems)

    def monitors_changed(self, _monitor_id: str = "", _monitor: Monitor | None = None) -> None:
        """The catalog's listener: rebuild the per-system index before the next decision."""
        self._monitors_dirty = True

    def _refresh_monitors(self) -> None:
        if not self._monitors_dirty:
            return
        self._monitors_dirty = False
        scope = self.scope
        monitors = {m: mon for m, mon in self._catalog.monitors.items() if scope.owns(mon.system)}
        self._monitors = monitors
        now = self._clock()
        for monitor_id in monitors:
            self._first_seen.setdefault(monitor_id, now)
        by_system: dict[str, list[str]] = {}
        for monitor in monitors.values():
            by_system.setdefault(monitor.system, []).append(monitor.id)
        self._by_system = by_system
        self._zones = sorted({z for m in monitors.values() if m.enabled for z in m.zones})

    def world(self) -> World:
        self._refresh_monitors()
        return World(
            monitors=self._monitors,
            states=self.states,
            incidents=self.incidents,
            graph=self._graph,
            by_system=self._by_system,
            windows=list(self._windows.windows.values()) if self._windows else [],
            started_at=self.started_at,
            first_seen=self._first_seen,
            evidence_at=self._evidence if self._behind else None,
            zone_decisions=self.scope.whole,
        )

    def _remember(self, state: MonitorState) -> None:
        previous = self.states.get(state.monitor_id)
        if previous is None or previous.status != state.status:
            if previous is not None:
                MONITORS.labels(previous.status).dec()
            MONITORS.labels(state.status).inc()
        self.states[state.monitor_id] = state

    # -- the three inputs ------------------------------------------------------------------------
    def _saw(self, result: CheckResult, now: datetime) -> None:
        finished = result.started_at + timedelta(milliseconds=result.latency_ms)
        if finished <= now and (self._evidence is None or finished > self._evidence):
            self._evidence = finished
        self._behind = self._evidence is not None and now - self._evidence > LIVE_LAG

    async def apply_all(self, results: list[CheckResult]) -> None:
        """Apply the results of one message (``apply_group`` of one); raises ``Rejected`` when
        some were implausible (the message is dead-lettered with the reasons)."""
        [reason] = await self.apply_group([results])
        if reason is not None:
            raise Rejected(reason)

    async def apply_group(self, messages: list[list[CheckResult]]) -> list[str | None]:
        """Apply the results of several messages (each a list, in stream order), each result
        through ``apply``, and return per message ``None`` or why some of its results were
        rejected (implausible: the message is then dead-lettered with the reasons; its other
        results still count).

        Group commit: the decisions of the group take effect in memory at once (so the next
        result sees them) and are committed together before the messages are acknowledged — one
        journal entry for all of them, or a plain write of the changed states when no incident
        or event is involved — and before any other decision (a command, a tick), so the order
        of commits is still the order of decisions. A crash before that commit loses only
        decisions whose results are redelivered (no message of the group was acknowledged); a
        failed commit is tried again before anything else is decided."""
        verdicts: list[str | None] = []
        try:
            for results in messages:
                reasons: list[str] = []
                for result in results:
                    try:
                        await self.apply(result, defer=True)
                    except Rejected as exc:
                        reasons.append(exc.reason)
                verdicts.append(_verdict(len(results), reasons))
        finally:
            async with self._lock:
                try:
                    await self._flush()
                except Exception:
                    self._stalled = True
                    raise
        return verdicts

    async def apply(self, result: CheckResult, *, defer: bool = False) -> None:
        async with self._lock:
            if not defer:
                await self._flush()
            await self._finish()
            now = self._clock()
            self._saw(result, now)
            monitor = self._catalog.monitors.get(result.monitor_id)
            if monitor is not None and not self.scope.owns(monitor.system):
                RESULTS.labels("other_partition").inc()
                raise Rejected(
                    f"monitor {result.monitor_id!r} belongs to system {monitor.system!r}, results partition"
                    f" {result_partition(monitor.system)}: published on another partition's subject"
                )
            outcome = on_result(self.world(), result, now)
            if outcome.ignored is not None:
                RESULTS.labels(outcome.ignored).inc()
                if outcome.ignored in IMPLAUSIBLE:
                    # dead-lettered with the reason, so a forged or misrouted result is visible
                    # and can never hide the real ones
                    raise Rejected(IMPLAUSIBLE[outcome.ignored].format(r=result))
                return
            state = outcome.states[result.monitor_id]
            in_memory_only = (
                len(outcome.states) == 1
                and not (outcome.incidents or outcome.events)
                and self._stored.get(result.monitor_id) == state.essential()
            )
            if in_memory_only:
                self._remember(state)
                # back to what is stored: nothing of it to write for this message
                self._touched.discard(result.monitor_id)
                RESULTS.labels("applied_in_memory").inc()
                return
            if defer:
                self._stage(outcome)
            else:
                await self._commit(outcome)
            RESULTS.labels("applied").inc()

    async def command(self, command: Command) -> None:
        async with self._lock:
            await self._flush()
            await self._finish()
            if await self._store.command_applied(command.command_id):
                COMMANDS.labels(command.action, "duplicate").inc()
                return
            target = None
            if command.incident_id is not None:
                target = self.incidents.by_id.get(command.incident_id) or await self._store.get_incident(
                    command.incident_id
                )
            outcome = on_command(self.world(), command, self._clock(), target)
            outcome.command_id = command.command_id
            await self._commit(outcome)
            COMMANDS.labels(command.action, "rejected" if outcome.rejections else "applied").inc()

    async def tick(self) -> None:
        """Decide what time passing changes (``on_tick``). After the store failed (a tick or a
        message's commit raised), results may be waiting to be applied: silence and missed push
        heartbeats are then judged from the first tick that works, as after a start — not from
        results the correlator could not apply (a MongoDB outage of a few minutes gave a false
        "probers silent" and its resolution at once)."""
        try:
            await self._tick()
        except Exception:
            self._stalled = True
            raise
        self._stalled = False

    async def _tick(self) -> None:
        async with self._lock:
            await self._flush()
            await self._finish()
            now = self._clock()
            if self._stalled:
                self.started_at = now  # the baseline of silence (``World.started_at``)
            self.incidents.forget_resolved_before(now - KEEP_RESOLVED)
            for late in missed_heartbeats(self.world(), now):  # push monitors: a miss is a failure
                missed = on_result(self.world(), late, now)
                if missed.ignored is None:
                    await self._commit(missed)
            world = self.world()
            monitors = self._monitors
            systems = {
                st.system_id for st in self.states.values() if st.problem and st.monitor_id in monitors
            }
            systems.update(i.system_id for i in self.incidents.open() if i.kind in ("outage", "flapping"))
            outcome = on_tick(world, now, systems, self._zones if self.scope.whole else ())
            if not outcome.empty:
                await self._commit(outcome)
            if self._zone_views is not None:
                await self._decide_zones(now)

    def views(self) -> dict[str, ZoneView] | None:
        """What a shard (not whole, not platform) has to tell the platform role of its zones now,
        when it changed since it was last taken (None: nothing new)."""
        if self.scope.platform:
            return None
        views = zone_views(self.world(), self._clock(), self._zones)
        if views == self._views_written:
            return None
        self._views_written = views
        return views

    def views_unsent(self) -> None:
        """The views taken could not be written: take them again next time."""
        self._views_written = None

    async def _decide_zones(self, now: datetime) -> None:
        """The platform role: zone problems and silent probers from the shards' views."""
        assert self._zone_views is not None
        views = self._zone_views()
        for zone in [*self._zone_clear]:
            if views.get(zone, ZoneView()).down:
                del self._zone_clear[zone]
        for incident in self.incidents.open():
            if incident.kind == "zone" and not views.get(incident.zones[0], ZoneView()).down:
                self._zone_clear.setdefault(incident.zones[0], now)
        outcome = on_zone_views(self.world(), now, views, self._zone_clear)
        if not outcome.empty:
            await self._commit(outcome)

    # -- committing ------------------------------------------------------------------------------
    def _stage(self, outcome: Outcome) -> None:
        """Take ``outcome`` into memory now and into the message's group commit (``_flush``)."""
        group = self._group
        for state in outcome.states.values():
            if outcome.incidents or outcome.events:
                self._stored.pop(state.monitor_id, None)  # part of a decision: written with it
            self._remember(state)
            self._touched.add(state.monitor_id)
        for incident in outcome.incidents.values():
            self.incidents.put(incident)
            group.incidents[incident.id] = incident
        for event in outcome.events:
            _add_coalesced(group.events, event)
        group.rejections.extend(outcome.rejections)

    async def _flush(self) -> None:
        """Commit the group of the message being applied (see ``apply_all``): the changed states
        alone with one bulk write, anything more as one journal entry. On failure the group stays
        and the error propagates (the message is retried; the next flush tries again first)."""
        group = self._group
        if not self._touched and group.empty:
            return
        states = [self.states[m] for m in sorted(self._touched) if m in self.states]
        if group.empty:
            await self._store.save_states(states)
            self._touched.clear()
            for state in states:
                self._after_write(state)
            return
        group.states = {state.monitor_id: state for state in states}
        entry = JournalEntry.of(group)
        await self._store.append(entry)  # the commit point
        self._touched.clear()
        self._group = Outcome()
        self._unfinished.append(entry)
        await self._finish()

    async def _commit(self, outcome: Outcome) -> None:
        await self._flush()
        if len(outcome.states) == 1 and not (
            outcome.incidents or outcome.events or outcome.rejections or outcome.command_id
        ):
            [state] = outcome.states.values()
            await self._store.save_state(state)
            self._after_write(state)
            return
        entry = JournalEntry.of(outcome)
        await self._store.append(entry)  # the commit point
        for state in entry.states:
            self._stored.pop(state.monitor_id, None)
            self._remember(state)
        for incident in entry.incidents:
            self.incidents.put(incident)
        self._unfinished.append(entry)
        await self._finish()

    def _after_write(self, state: MonitorState) -> None:
        self._remember(state)
        self._stored[state.monitor_id] = state.essential()

    async def _finish(self) -> None:
        """Apply and publish committed decisions, oldest first; raises (the message is retried)
        if the store or the bus is unavailable, leaving the rest for the next attempt."""
        while self._unfinished:
            entry = self._unfinished[0]
            # Memory follows the journal: after a restart the loaded documents may predate it (no
            # decision is taken while an entry is unfinished, so at run time this changes nothing).
            for state in entry.states:
                self._remember(state)
            for incident in entry.incidents:
                self.incidents.put(incident)
            await self._store.write(entry)
            for event in entry.events:
                await self._publish_event(event)
            for rejection in entry.rejections:
                await self._publish_rejection(rejection)
            await self._store.done(entry)
            for state in entry.states:
                if self.states.get(state.monitor_id) == state:
                    self._after_write(state)
            self._unfinished.pop(0)

    def _fit(self, event: IncidentEvent) -> IncidentEvent:
        """The event as published: its snapshot's lists shortened if the whole would not fit the
        stream (a parent with tens of thousands of dependants); never a publish that fails forever."""
        subject, headers = s.incident_subject(event.type), {"Nats-Msg-Id": str(event.event_id)}
        try:
            check_size(subject, event.model_dump_json().encode(), headers=headers)
            return event
        except MessageTooLarge as exc:
            incident = event.incident
            short = incident.model_copy(
                update={
                    "dependants": incident.dependants[:MAX_LISTED],
                    "monitor_ids": incident.monitor_ids[:MAX_LISTED],
                }
            )
            log.error("incident_event_shortened", incident=incident.id, size=exc.size, limit=exc.limit)
            return event.model_copy(update={"incident": short, "joined": event.joined[:MAX_LISTED]})

    async def _publish_event(self, event: IncidentEvent) -> None:
        event = self._fit(event)
        await self._broker.publish(
            event,
            s.incident_subject(event.type),
            stream=s.INCIDENTS_STREAM,
            headers={"Nats-Msg-Id": str(event.event_id)},
            timeout=5.0,
        )
        EVENTS.labels(event.type).inc()
        log.info(
            "incident_event",
            type=event.type,
            incident=event.incident.id,
            system=event.incident.system_id,
            kind=event.incident.kind,
            muted=event.incident.muted,
        )

    async def _publish_rejection(self, rejection: CommandRejected) -> None:
        await self._broker.publish(
            rejection,
            s.command_rejected_subject(),
            stream=s.COMMANDS_STREAM,
            headers={"Nats-Msg-Id": f"rejected-{rejection.command_id}"},
            timeout=5.0,
        )
        log.info("command_rejected", command=str(rejection.command_id), reason=rejection.reason)

    # -- time ------------------------------------------------------------------------------------
    async def run_ticks(
        self, stop: asyncio.Event, after: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Tick once a second (and refresh systems every few seconds) until ``stop``; ``after``
        each tick (a shard's zone views)."""
        last_refresh = asyncio.get_running_loop().time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK)
            if stop.is_set():
                return
            try:
                loop_now = asyncio.get_running_loop().time()
                if loop_now - last_refresh >= SYSTEMS_REFRESH:
                    await self.refresh_systems()
                    last_refresh = loop_now
                await self.tick()
                if after is not None:
                    await after()
            except Exception as exc:  # store or bus down: the next tick tries again
                log.warning("tick_failed", error=f"{type(exc).__name__}: {exc}")

    async def run_drift_checks(self, stop: asyncio.Event) -> None:
        """``check_drift`` until ``stop``, in a task of its own: it reads every monitor document,
        which FerretDB takes seconds for at 10,000 monitors (6.5–7.7 s, measured) — ticks, and
        the holds and quiet periods they end, must not wait for it. Spaced by ``drift_pause``."""
        pause = DRIFT_CHECK
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            if stop.is_set():
                return
            started = asyncio.get_running_loop().time()
            try:
                await self.check_drift()
            except Exception as exc:  # store down: the next check tries again
                log.warning("drift_check_failed", error=f"{type(exc).__name__}: {exc}")
            pause = drift_pause(asyncio.get_running_loop().time() - started)


def drift_pause(took: float) -> float:
    """Seconds until the next drift check after one that took ``took`` seconds: every
    ``DRIFT_CHECK`` seconds, spaced further when a check is slow so that checking takes at most
    one part in ``DRIFT_SPACING`` of the store's time."""
    return max(DRIFT_CHECK, DRIFT_SPACING * took)


def _verdict(count: int, reasons: list[str]) -> str | None:
    """Why a message of ``count`` results is rejected (None: it is not)."""
    if not reasons:
        return None
    if count == 1:
        return reasons[0]
    return f"{len(reasons)} of {count} results rejected: " + "; ".join(reasons[:5])


def _add_coalesced(events: list[IncidentEvent], event: IncidentEvent) -> None:
    """Append ``event``; monitors joining an incident whose latest event in ``events`` is also a
    join make one event (the first one's id and time, the incident as it is now, every monitor that
    joined): a system whose monitors fail together is one ``noted``, not one per monitor."""
    if event.type == "noted" and event.joined:
        incident_id = event.incident.id
        for index in range(len(events) - 1, -1, -1):
            earlier = events[index]
            if earlier.incident.id != incident_id:
                continue
            if earlier.type == "noted" and earlier.joined:
                joined = [*earlier.joined, *(m for m in event.joined if m not in earlier.joined)]
                events[index] = earlier.model_copy(
                    update={"incident": event.incident, "joined": joined, "text": joined_text(joined)}
                )
                return
            break
    events.append(event)


def build(settings: CorrelatorSettings | None = None) -> ServiceApp:
    """Wire the publishers; nothing connects until ``serve``. The consumers are started by the
    roles this instance takes (``fao.correlator.roles``)."""
    settings = settings or CorrelatorSettings()
    broker = new_broker(settings)
    for event_type in EVENT_TYPES:
        broker.publisher(
            s.incident_subject(event_type),
            stream=JStream(s.INCIDENTS_STREAM, declare=False),
            schema=IncidentEvent,
            title=f"incidents/{event_type}",
            description=f"Public: an incident was {event_type}. Nats-Msg-Id = event_id.",
        )

    parts: dict[str, MonitorCatalog | MaintenanceCatalog] = {}
    running: list[Roles] = []
    correlators: list[Correlator] = []

    def monitor_changed(monitor_id: str, monitor: Monitor | None) -> None:
        for correlator in correlators:
            correlator.monitors_changed(monitor_id, monitor)

    async def on_start(rt: Runtime) -> None:
        catalog = MonitorCatalog(rt.js, listener=monitor_changed)
        await catalog.start()
        parts["monitors"] = catalog
        windows = MaintenanceCatalog(rt.js)
        await windows.start()
        parts["windows"] = windows

        def make(
            store: CorrelatorStore, scope: Scope, zone_views: Callable[[], dict[str, ZoneView]] | None
        ) -> Correlator:
            correlator = Correlator(
                broker,
                store,
                catalog,
                windows,
                scope=scope,
                zone_views=zone_views,
                systems=lambda: roles.systems,
            )
            correlators[:] = [c for c in correlators if c.scope != scope] + [correlator]
            return correlator

        roles = Roles(rt, settings, make)
        await roles.start()
        running.append(roles)

    async def on_stop(_: Runtime) -> None:
        for roles in running:
            await roles.stop()
        for part in parts.values():
            await part.stop()

    return ServiceApp(SERVICE, settings, broker, indexes=INDEXES, on_start=on_start, on_stop=on_stop)
