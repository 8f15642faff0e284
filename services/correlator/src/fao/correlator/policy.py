"""The incident policy: from monitor states to incidents and their events. Pure: no I/O, no clock.

Three entry points, each a function of explicit inputs (``World``: monitors, their states, the
open and recently resolved incidents, the system graph, maintenance windows) and ``now``, each
returning an ``Outcome`` (the states and incidents that changed, the events to publish):
``on_result`` (a check result), ``on_tick`` (time passing: holds, quiet periods, windows,
silent probers) and ``on_command`` (a person's acknowledge, resolve, note or report).

The rules, one message per real problem:

- **One incident per system problem.** A monitor is a *problem* when a quorum of its zones confirm
  it down, or when it flaps. The system's first problem opens its incident; further problem
  monitors join it (``noted``).
- **Quiet period before resolving.** The incident resolves when every monitor in it has been clear
  for the monitor's quiet period (``resolved_at`` = when they cleared); a failure within it
  continues the same incident (``reopened``), and an incident that reopens twice becomes
  ``flapping``. A failure still being confirmed when the quiet period ends holds the incident
  open until the next result says which it is. So a flapping system gives one message when it breaks and one when it is stable.
- **Flapping** (``flapping.py``): a monitor whose results keep changing is a problem even if no
  single failure ever confirms; the incident's kind becomes ``flapping`` ("ไม่เสถียร").
- **Dependencies.** When a system fails while an ancestor (``depends_on``, transitively) has an
  open incident, it joins the topmost such incident as a muted child (``suppressed``; the parent
  lists it in ``dependants``). While an ancestor is not known to be fine (no successful result
  newer than the child's first failure, or a failure among its last ``CLEAN_RUN`` results: a
  parent flapping between its checks), the child is *held* — no incident yet — for at most the
  ancestor's confirmation time. When the parent resolves, clear children resolve silently; a child
  still failing after its own confirmation time past the parent's recovery is ``unmuted`` (its own
  message); a child only flapping (up now) waits ``FLAP_HISTORY`` of its checks — its flap history
  may still hold the parent's changes — and resolves silently if it settles.
- **Maintenance.** A system (or an ancestor) inside a window opens its incident muted; the time
  inside windows is recorded on the incident; still failing when the window ends → ``unmuted``.
- **Zones.** A monitor failing in fewer zones than its quorum is not an outage: each such zone has
  one low-severity ``zone`` incident for the platform team. A zone whose probers stop reporting is
  one ``prober_silent`` incident.
- **Commands** acknowledge, resolve, note or open (manual) incidents; an illegal one is rejected
  with a reason, never raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from fao.correlator.graph import SystemGraph
from fao.correlator.monitor_state import MonitorState, combine, prune_applied, stale_after
from fao.correlator.state_machine import FLAP_HISTORY, Sample, ZoneState, confirm
from fao.schemas import (
    PLATFORM_SYSTEM,
    PROBER_SKIPS,
    CheckResult,
    Command,
    CommandRejected,
    ErrorKind,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentKind,
    MaintenanceWindow,
    Monitor,
    TimeSpan,
    command_event_id,
    occurrence_at,
)
from fao.schemas.events import MAX_SCREENSHOTS

NAMESPACE: Final = UUID("3f1c1f7e-52a4-4c1e-9f57-6a0e8f0c7a11")
FUTURE_TOLERANCE: Final = timedelta(seconds=60)  # results dated later than now + this are refused
ZONE_QUIET: Final = timedelta(seconds=30)  # a zone problem resolves after this long clear
REOPENS_TO_FLAPPING: Final = 2
AUTO: Final = "fao:auto"
# Minor incidents of one monitor that is up: slower than its max_latency, certificate close to expiry.
MONITOR_WARNINGS: Final = frozenset({"slow", "expiring"})


def incident_key(incident: Incident) -> str | None:
    """The one open incident allowed per key: per system (outage/flapping), per zone, per slow monitor."""
    if incident.kind in ("outage", "flapping"):
        return f"system:{incident.system_id}"
    if incident.kind == "zone":
        return f"zone:{incident.zones[0]}"
    if incident.kind == "prober_silent":
        return f"silent:{incident.zones[0]}"
    if incident.kind in MONITOR_WARNINGS:
        return f"{incident.kind}:{incident.monitor_ids[0]}"
    return None


def make_incident_id(kind: str, key: str, since: datetime) -> str:
    return "inc-" + uuid5(NAMESPACE, f"{kind}|{key}|{since.isoformat()}").hex[:20]


class Incidents:
    """Open incidents plus recently resolved ones (children look up their resolved parent), with
    the per-key index. Owned by the service; the policy only reads it."""

    def __init__(self, incidents: Iterable[Incident] = ()) -> None:
        self.by_id: dict[str, Incident] = {}
        self.open_by_key: dict[str, str] = {}
        for incident in incidents:
            self.put(incident)

    def put(self, incident: Incident) -> None:
        self.by_id[incident.id] = incident
        key = incident_key(incident)
        if key is None:
            return
        if incident.status == "resolved":
            if self.open_by_key.get(key) == incident.id:
                del self.open_by_key[key]
        else:
            self.open_by_key[key] = incident.id

    def forget_resolved_before(self, horizon: datetime) -> None:
        for incident_id in [
            i.id
            for i in self.by_id.values()
            if i.status == "resolved" and i.resolved_at is not None and i.resolved_at < horizon
        ]:
            del self.by_id[incident_id]

    def open(self) -> list[Incident]:
        return [i for i in self.by_id.values() if i.status != "resolved"]


@dataclass(frozen=True)
class World:
    """Everything the policy decides from. Read-only for the policy."""

    monitors: Mapping[str, Monitor]
    states: Mapping[str, MonitorState]
    incidents: Incidents
    graph: SystemGraph
    by_system: Mapping[str, Sequence[str]]  # monitor ids of each system
    windows: Sequence[MaintenanceWindow] = ()
    started_at: datetime | None = None  # when this correlator started (silence needs a baseline)
    first_seen: Mapping[str, datetime] = field(default_factory=dict)  # monitor id → added at
    # How far the results seen so far reach, when the correlator is behind (a backlog after a
    # restart or a failover); None when it is live. Waits for evidence — holds, quiet periods,
    # grace after a parent's recovery — are measured on this clock, so working through a backlog
    # never ends a wait whose evidence is still in the backlog.
    evidence_at: datetime | None = None
    # Zone problems and silent probers are decided here (one correlator decides everything) or,
    # when False, by the platform role from every shard's ``ZoneView``s (``on_zone_views``).
    zone_decisions: bool = True


class ZoneView(BaseModel):
    """What one shard's owner sees of a zone now (``zone_views``): the monitors failing only from
    it, with when they began to, and those with no result from it for too long."""

    model_config = ConfigDict(frozen=True)

    down: dict[str, datetime] = Field(default_factory=dict)
    stale: tuple[str, ...] = ()

    def merged(self, other: ZoneView) -> ZoneView:
        return ZoneView(down={**self.down, **other.down}, stale=tuple(sorted({*self.stale, *other.stale})))


@dataclass
class Outcome:
    """What changed; the service commits it (states, incidents, events) and publishes the events."""

    states: dict[str, MonitorState] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    events: list[IncidentEvent] = field(default_factory=list)
    rejections: list[CommandRejected] = field(default_factory=list)
    ignored: str | None = None  # why a result was not applied (duplicate, unknown_monitor...)
    command_id: UUID | None = None  # the command this outcome applies (recorded: applied once)

    @property
    def empty(self) -> bool:
        return not (self.states or self.incidents or self.events or self.rejections or self.command_id)


JOINED_NAMED: Final = 20
"""A join's text names at most this many monitors (the event's ``joined`` lists them all)."""


def with_screenshots(screenshots: Sequence[str], states: Iterable[MonitorState]) -> list[str]:
    """``screenshots`` and then the screenshots of ``states`` (their newest failure's) not in it
    yet, by monitor; the newest ``MAX_SCREENSHOTS`` when there are more."""
    added = [st.screenshot for st in sorted(states, key=lambda st: st.monitor_id) if st.screenshot]
    merged = list(dict.fromkeys([*screenshots, *added]))
    return merged[-MAX_SCREENSHOTS:]


def zone_title(zone: str, monitors: Sequence[str]) -> str:
    """The title of a zone problem: how many monitors fail only from the zone now."""
    return f"zone {zone}: {len(monitors)} monitor(s) fail only from this zone"


def silent_title(zone: str, monitors: Sequence[str]) -> str:
    """The title of silent probers: how many monitors have no results from the zone now."""
    return f"zone {zone}: no results for {len(monitors)} monitor(s): probers silent"


def joined_text(joined: Sequence[str]) -> str:
    """The text of a ``noted`` event for monitors joining an incident."""
    named = ", ".join(joined[:JOINED_NAMED])
    more = len(joined) - JOINED_NAMED
    return f"monitors joined: {named}" + (f" and {more} more" if more > 0 else "")


@dataclass
class _Pending:
    type: IncidentEventType
    incident_id: str
    key: str = ""
    actor: str | None = None
    text: str = ""
    event_id: UUID | None = None
    joined: tuple[str, ...] = ()


class _Decision:
    """One decision: reads the world through an overlay of what it changed so far."""

    def __init__(self, world: World, now: datetime) -> None:
        self.w = world
        self.now = now
        self.seen = min(now, world.evidence_at) if world.evidence_at is not None else now
        self.states: dict[str, MonitorState] = {}
        self.incidents: dict[str, Incident] = {}
        self.index: dict[str, str | None] = {}
        self.pending: list[_Pending] = []
        self.reopened: set[str] = set()

    # -- reading through the overlay ---------------------------------------------------------
    def state(self, monitor_id: str) -> MonitorState | None:
        return self.states.get(monitor_id) or self.w.states.get(monitor_id)

    def incident(self, incident_id: str | None) -> Incident | None:
        if incident_id is None:
            return None
        return self.incidents.get(incident_id) or self.w.incidents.by_id.get(incident_id)

    def open_for(self, key: str) -> Incident | None:
        incident_id = self.index[key] if key in self.index else self.w.incidents.open_by_key.get(key)
        incident = self.incident(incident_id)
        return incident if incident is not None and incident.status != "resolved" else None

    def system_states(self, system_id: str) -> list[MonitorState]:
        return [st for m in self.w.by_system.get(system_id, ()) if (st := self.state(m)) is not None]

    # -- writing -------------------------------------------------------------------------------
    def put(self, incident: Incident) -> Incident:
        """Record a change; putting an incident back unchanged records nothing."""
        if incident.id not in self.incidents and self.w.incidents.by_id.get(incident.id) == incident:
            return incident
        self.incidents[incident.id] = incident
        key = incident_key(incident)
        if key is not None:
            self.index[key] = None if incident.status == "resolved" else incident.id
        return incident

    def emit(
        self,
        type_: IncidentEventType,
        incident: Incident,
        key: str = "",
        actor: str | None = None,
        text: str = "",
    ) -> None:
        self.put(incident)
        self.pending.append(_Pending(type_, incident.id, key, actor, text))

    def outcome(self) -> Outcome:
        """Events carry the incident as it is at the end of the decision (a parent's ``opened``
        lists the dependants that joined in the same decision)."""
        events = []
        for p in self.pending:
            incident = self.incident(p.incident_id)
            assert incident is not None  # emit() put it
            event_id = p.event_id or uuid5(
                NAMESPACE, f"{incident.id}|{p.type}|{p.key}|{self.now.isoformat()}"
            )
            events.append(
                IncidentEvent(
                    event_id=event_id,
                    type=p.type,
                    at=self.now,
                    incident=incident,
                    actor=p.actor,
                    text=p.text,
                    joined=list(p.joined),
                )
            )
        return Outcome(states=self.states, incidents=self.incidents, events=events)

    # -- maintenance ---------------------------------------------------------------------------
    def maintenance(self, system_id: str) -> TimeSpan | None:
        """The window occurrence covering the system or one of its ancestors now, if any."""
        if not self.w.windows:
            return None
        for sid in (system_id, *self.w.graph.ancestors(system_id)):
            system = self.w.graph.systems.get(sid)
            team = system.team if system else None
            tags = sorted(
                {
                    t
                    for m in self.w.by_system.get(sid, ())
                    if (mon := self.w.monitors.get(m))
                    for t in mon.tags
                }
            )
            for window in self.w.windows:
                if window.matches(sid, team, tags) and (span := occurrence_at(window, self.now)):
                    return span
        return None

    def track_maintenance(self, incident: Incident) -> Incident:
        spans = list(incident.maintenance)
        open_span = bool(spans) and spans[-1].end is None
        span = self.maintenance(incident.system_id)
        if span is not None and not open_span:
            spans.append(TimeSpan(start=max(incident.started_at, span.start)))
        elif span is None and open_span:
            spans[-1] = TimeSpan(start=spans[-1].start, end=self.now)
        else:
            return incident
        return incident.model_copy(update={"maintenance": spans})

    # -- systems -------------------------------------------------------------------------------
    def root_cause(self, system_id: str) -> Incident | None:
        """The topmost open incident among the system's ancestors."""
        for ancestor in self.w.graph.ancestors(system_id):
            incident = self.open_for(f"system:{ancestor}")
            if incident is None:
                continue
            seen = {incident.id}
            while (parent := self.incident(incident.parent_incident_id)) is not None and (
                parent.status != "resolved" and parent.id not in seen
            ):
                seen.add(parent.id)
                incident = parent
            return incident
        return None

    def hold_until(self, system_id: str, since: datetime) -> datetime | None:
        """Until when the system's alert waits for evidence about its ancestors (None: no wait)."""
        deadline: datetime | None = None
        for ancestor in self.w.graph.ancestors(system_id):
            for monitor_id in self.w.by_system.get(ancestor, ()):
                monitor = self.w.monitors.get(monitor_id)
                state = self.state(monitor_id)
                if monitor is None or not monitor.enabled or (state is not None and state.fine_after(since)):
                    continue
                bound = since + timedelta(seconds=monitor.confirm_time)
                deadline = bound if deadline is None else max(deadline, bound)
        return deadline if deadline is not None and self.seen < deadline else None

    def reconcile_system(self, system_id: str) -> None:
        states = self.system_states(system_id)
        problems = [st for st in states if st.problem]
        incident = self.open_for(f"system:{system_id}")
        if incident is None:
            if problems:
                self.open_system(system_id, problems)
            return
        self.update_system(incident, states, problems)

    def attach(self, incident: Incident, root: Incident) -> Incident:
        """Make ``incident`` a muted child of ``root``; the root lists its system."""
        child = incident.model_copy(update={"parent_incident_id": root.id, "muted": "dependency"})
        if incident.system_id not in root.dependants:
            self.put(root.model_copy(update={"dependants": sorted({*root.dependants, incident.system_id})}))
        return child

    def open_system(self, system_id: str, problems: list[MonitorState]) -> None:
        since = min(st.problem_since or self.now for st in problems)
        system = self.w.graph.systems.get(system_id)
        first = min(problems, key=lambda st: (st.problem_since or self.now, st.monitor_id))
        monitor = self.w.monitors.get(first.monitor_id)
        what = (monitor.name if monitor and monitor.name else None) or first.monitor_id
        flapping = any(st.flapping for st in problems)
        incident = Incident(
            id=make_incident_id("system", system_id, since),
            system_id=system_id,
            monitor_ids=sorted(st.monitor_id for st in problems),
            severity=system.severity if system else "major",
            status="open",
            title=(f"{what}: {first.cause}" if first.cause else what)[:300],
            cause=first.cause,
            started_at=since,
            zones=sorted({z for st in problems for z, zs in st.zones.items() if not zs.settled}),
            kind="flapping" if flapping else "outage",
            screenshots=with_screenshots([], problems),
        )
        root = self.root_cause(system_id)
        if root is not None:
            self.emit("suppressed", self.attach(incident, root))
            return
        window = self.maintenance(system_id)
        if window is not None:
            muted = incident.model_copy(
                update={"muted": "maintenance", "maintenance": [TimeSpan(start=max(since, window.start))]}
            )
            self.emit("opened", muted)
            return
        if self.hold_until(system_id, since) is not None:
            return  # held: on_tick or the ancestor's next result decides
        self.emit("opened", incident.model_copy(update={"alerted": True}))

    def update_system(
        self, incident: Incident, states: list[MonitorState], problems: list[MonitorState]
    ) -> None:
        changed = self.track_maintenance(incident)
        joined = sorted({st.monitor_id for st in problems} - set(changed.monitor_ids))
        if joined:
            shots = with_screenshots(changed.screenshots, [st for st in problems if st.monitor_id in joined])
            changed = changed.model_copy(
                update={"monitor_ids": sorted({*changed.monitor_ids, *joined}), "screenshots": shots}
            )
            self.emit("noted", changed, key=",".join(joined), text=joined_text(joined))
            self.pending[-1].joined = tuple(joined)
        if incident.id in self.reopened:
            changed = changed.model_copy(
                update={
                    "reopened": changed.reopened + 1,
                    "screenshots": with_screenshots(changed.screenshots, problems),
                }
            )
            self.emit("reopened", changed)
        flapping = any(st.flapping for st in problems) or changed.reopened >= REOPENS_TO_FLAPPING
        if flapping and changed.kind == "outage":
            changed = changed.model_copy(update={"kind": "flapping"})
            self.emit("flapping", changed)

        if changed.muted == "maintenance" and self.maintenance(changed.system_id) is None and problems:
            root = self.root_cause(changed.system_id)
            if root is not None:
                self.emit("suppressed", self.attach(changed, root))
            else:
                changed = changed.model_copy(update={"muted": None, "alerted": True})
                self.emit("unmuted", changed, text="maintenance_ended")
            return
        if changed.muted == "dependency":
            parent = self.incident(changed.parent_incident_id)
            if parent is not None and parent.status != "resolved":
                self.put(changed)
                return
            if problems:
                recovered = parent.resolved_at if parent is not None and parent.resolved_at else self.now
                if self.seen >= recovered + timedelta(seconds=self.unmute_grace(problems)):
                    changed = changed.model_copy(update={"muted": None, "alerted": True})
                    self.emit("unmuted", changed, text="parent_resolved")
                else:
                    self.put(changed)
                return
            self.resolve(changed, self.clear_time(changed, states) or self.now)
            return
        if problems:
            if changed is not incident:
                self.put(changed)
            return
        cleared = self.clear_time(changed, states)
        quiet = max(
            (m.effective_quiet_period for mid in changed.monitor_ids if (m := self.w.monitors.get(mid))),
            default=0.0,
        )
        if self.being_confirmed(changed, states):
            if changed is not incident:
                self.put(changed)
            return
        if cleared is None or self.seen - cleared >= timedelta(seconds=quiet):
            gone = [m for m in changed.monitor_ids if m not in self.w.monitors]
            note = "monitors removed from the configuration: " + ", ".join(gone) if gone else ""
            self.resolve(changed, cleared or self.now, text=note)
        elif changed is not incident:
            self.put(changed)

    def unmute_grace(self, problems: list[MonitorState]) -> float:
        """How long after its parent's recovery a dependant still failing is its own problem:
        its confirmation time when a monitor is down; when they are only flapping (up now), the
        time their flap history takes to forget the parent's changes (``FLAP_HISTORY`` checks) —
        until then their flapping may be the parent's, and they resolve silently if it settles."""
        down = [st for st in problems if st.status == "down"]
        return max(
            (
                m.confirm_time if down else FLAP_HISTORY * m.interval
                for st in (down or problems)
                if (m := self.w.monitors.get(st.monitor_id))
            ),
            default=0.0,
        )

    def being_confirmed(self, incident: Incident, states: list[MonitorState]) -> bool:
        """A monitor of ``incident`` has a failure not yet confirmed nor disproved (a fresh zone
        ``suspect``): the quiet period cannot end on it — the next result says whether the problem
        goes on (the same incident, reopened) or the monitor is up."""
        for st in states:
            monitor = self.w.monitors.get(st.monitor_id)
            if monitor is None or st.monitor_id not in incident.monitor_ids:
                continue
            fresh_from = self.seen - stale_after(monitor)
            if any(
                z.status == "suspect" and z.last_at and z.last_at >= fresh_from for z in st.zones.values()
            ):
                return True
        return False

    def clear_time(self, incident: Incident, states: list[MonitorState]) -> datetime | None:
        times = [
            st.clear_since
            for st in states
            if st.monitor_id in incident.monitor_ids and st.clear_since is not None
        ]
        return max(times) if times else None

    def resolve(
        self, incident: Incident, at: datetime, by: str = AUTO, actor: str | None = None, text: str = ""
    ) -> None:
        at = max(at, incident.started_at)
        spans = list(incident.maintenance)
        if spans and spans[-1].end is None:
            spans[-1] = TimeSpan(start=spans[-1].start, end=max(at, spans[-1].start))
        resolved = incident.model_copy(
            update={"status": "resolved", "resolved_at": at, "resolved_by": by, "maintenance": spans}
        )
        self.emit("resolved", resolved, actor=actor, text=text)

    # -- zones ---------------------------------------------------------------------------------
    def zone_only_down(self, monitor_id: str, zone: str) -> bool:
        monitor = self.w.monitors.get(monitor_id)
        state = self.state(monitor_id)
        if monitor is None or state is None or len(monitor.zones) < 2 or state.status == "down":
            return False
        zone_state = state.zones.get(zone)
        if zone_state is None or zone_state.status not in ("down", "recovering"):
            return False
        # Only with fresh evidence that the others see it up: every other zone that reported since
        # this zone's first failure succeeded, and at least one did. Zones usually check at
        # different moments, so a real outage reaches one zone first: that is not a zone problem.
        since = zone_state.down_since or zone_state.last_at
        recent = [
            z
            for name, z in state.zones.items()
            if name != zone
            and name in monitor.zones
            and z.last_at is not None
            and since is not None
            and z.last_at > since
        ]
        return bool(recent) and all(z.window and z.window[-1].ok for z in recent)

    def zone_down(self, zone: str, members: Iterable[str]) -> dict[str, datetime]:
        """The monitors of ``members`` failing only from ``zone``, with when they began to."""
        down: dict[str, datetime] = {}
        for m in sorted(set(members)):
            if self.zone_only_down(m, zone):
                st = self.state(m)
                zs = st.zones.get(zone) if st is not None else None
                down[m] = (zs.down_since if zs is not None else None) or self.now
        return down

    def reconcile_zone(self, zone: str, candidates: Iterable[str]) -> None:
        incident = self.open_for(f"zone:{zone}")
        down = self.zone_down(zone, {*candidates, *(incident.monitor_ids if incident else ())})
        cleared: datetime | None = None
        if incident is not None and not down:
            oks = [
                zs.ok_since or self.now
                for m in incident.monitor_ids
                if (st := self.state(m)) is not None and (zs := st.zones.get(zone)) is not None
            ]
            cleared = max(oks, default=self.now)
        self.zone_incident(zone, down, cleared)

    def zone_incident(self, zone: str, down: Mapping[str, datetime], cleared: datetime | None) -> None:
        """Open, grow or resolve the zone's incident: ``down`` are the monitors failing only from it
        now (with since when), ``cleared`` when the last of the incident's monitors stopped."""
        incident = self.open_for(f"zone:{zone}")
        if incident is None:
            if down:
                since = min(down.values())
                opened = Incident(
                    id=make_incident_id("zone", zone, since),
                    system_id=PLATFORM_SYSTEM,
                    monitor_ids=sorted(down),
                    severity="minor",
                    status="open",
                    title=zone_title(zone, sorted(down)),
                    started_at=since,
                    zones=[zone],
                    kind="zone",
                    alerted=True,
                )
                self.emit("opened", opened)
            return
        joined = sorted(set(down) - set(incident.monitor_ids))
        if joined:
            grown = sorted({*incident.monitor_ids, *joined})
            self.emit(
                "noted",
                incident.model_copy(update={"monitor_ids": grown, "title": zone_title(zone, grown)}),
                key=",".join(joined),
                text=joined_text(joined),
            )
            self.pending[-1].joined = tuple(joined)
            return
        if down or cleared is None:
            return
        if self.seen - cleared >= ZONE_QUIET:
            self.resolve(incident, cleared)

    def reconcile_silence(self, zone: str) -> None:
        """One incident while any monitor of ``zone`` has had no result from it for too long."""
        self.silence_incident(zone, self.stale_monitors(zone))

    def stale_monitors(self, zone: str) -> list[str]:
        """The monitors of ``zone`` with no result from it for too long."""
        stale: list[str] = []
        for monitor_id, monitor in self.w.monitors.items():
            if not monitor.enabled or zone not in monitor.zones or monitor.check.type in PROBER_SKIPS:
                continue  # push monitors have no prober to fall silent: missed_heartbeats watches them
            times = [t for t in (self.w.started_at, self.w.first_seen.get(monitor_id)) if t is not None]
            baseline = max(times) if times else self.now
            state = self.state(monitor_id)
            zone_state = state.zones.get(zone) if state else None
            last = zone_state.last_at if zone_state and zone_state.last_at else baseline
            if self.now - max(last, baseline) > stale_after(monitor):
                stale.append(monitor_id)
        return stale

    def silence_incident(self, zone: str, stale: Sequence[str]) -> None:
        incident = self.open_for(f"silent:{zone}")
        if incident is None and stale:
            self.emit(
                "opened",
                Incident(
                    id=make_incident_id("silent", zone, self.now),
                    system_id=PLATFORM_SYSTEM,
                    monitor_ids=sorted(stale),
                    severity="major",
                    status="open",
                    title=silent_title(zone, stale),
                    started_at=self.now,
                    zones=[zone],
                    kind="prober_silent",
                    alerted=True,
                ),
            )
        elif incident is not None and not stale:
            self.resolve(incident, self.now)
        elif incident is not None and set(stale) != set(incident.monitor_ids):
            self.put(
                incident.model_copy(update={"monitor_ids": sorted(stale), "title": silent_title(zone, stale)})
            )

    # -- slow, not down ------------------------------------------------------------------------
    def reconcile_warning(
        self, kind: IncidentKind, monitor: Monitor, active: bool, title: str = "", cause: str = ""
    ) -> None:
        """One minor incident of ``kind`` per monitor while ``active`` (``slow``: X of the last Y
        successful checks slower than ``max_latency.max_ms``; ``expiring``: a TLS certificate with
        fewer than ``warn_days`` left), resolved when it no longer is. Not an outage: the system
        stays up in reports; muted inside maintenance windows."""
        incident = self.open_for(f"{kind}:{monitor.id}")
        if incident is None and active:
            opened = Incident(
                id=make_incident_id(kind, monitor.id, self.now),
                system_id=monitor.system,
                monitor_ids=[monitor.id],
                severity="minor",
                status="open",
                title=f"{monitor.name or monitor.id}: {title}"[:300],
                cause=cause,
                started_at=self.now,
                zones=list(monitor.zones),
                kind=kind,
            )
            window = self.maintenance(monitor.system)
            if window is not None:
                self.emit("opened", opened.model_copy(update={"muted": "maintenance"}))
            else:
                self.emit("opened", opened.model_copy(update={"alerted": True}))
        elif incident is not None and not active:
            self.resolve(incident, self.now)

    # -- driving -------------------------------------------------------------------------------
    def reconcile_systems(self, system_ids: Iterable[str]) -> None:
        for system_id in sorted(set(system_ids), key=lambda s: (self.w.graph.depth(s), s)):
            self.reconcile_system(system_id)

    def needs_attention(self, system_id: str) -> bool:
        return self.open_for(f"system:{system_id}") is not None or any(
            st.problem for st in self.system_states(system_id)
        )


def on_result(world: World, result: CheckResult, now: datetime) -> Outcome:
    """Fold one check result in and decide what it changes."""
    monitor = world.monitors.get(result.monitor_id)
    if monitor is None:
        return Outcome(ignored="unknown_monitor")
    if result.zone not in monitor.zones:
        return Outcome(ignored="zone_not_listed")
    if result.started_at > now + FUTURE_TOLERANCE:
        return Outcome(ignored="from_the_future")
    before = world.states.get(monitor.id) or MonitorState(monitor_id=monitor.id, system_id=monitor.system)
    source = f"{result.zone}/{result.prober_id}"
    last = before.applied.get(source)
    if last is not None and result.started_at <= last:
        return Outcome(ignored="duplicate")
    sample = Sample(
        ok=result.ok,
        at=result.started_at,
        detail="" if result.ok else result.detail or str(result.error_kind),
    )
    zone_before = before.zones.get(result.zone, ZoneState())
    zone_after = confirm(zone_before, sample, monitor.confirm, monitor.recover_after)
    after = before.model_copy(
        update={
            "system_id": monitor.system,
            "zones": {**before.zones, result.zone: zone_after},
            "applied": prune_applied({**before.applied, source: result.started_at}, result.started_at),
        }
    )
    after = combine(after, monitor, result.started_at)
    shot = result.observations.screenshot if result.observations else None
    if not result.ok and shot is not None:
        after = after.model_copy(update={"screenshot": shot})
    elif after.status == "up" and after.screenshot is not None:
        after = after.model_copy(update={"screenshot": None})
    rule = getattr(monitor.check, "max_latency", None)
    if rule is not None and result.ok:
        window = (*after.slow_window, result.latency_ms > rule.max_ms)[-rule.of :]
        after = after.model_copy(update={"slow_window": window, "slow": sum(window) >= rule.slow})
    days_left = result.observations.cert_days_left if result.observations else None
    warn_days = getattr(monitor.check, "warn_days", None)
    if warn_days is not None and result.ok and days_left is not None:
        after = after.model_copy(update={"expiring": days_left < warn_days})

    decision = _Decision(world, now)
    decision.states[monitor.id] = after
    if after.slow != before.slow and rule is not None:
        slow = sum(after.slow_window)
        decision.reconcile_warning(
            "slow",
            monitor,
            after.slow,
            f"slower than {rule.max_ms:g} ms",
            f"{slow} of the last {len(after.slow_window)} checks slower than {rule.max_ms:g} ms"
            f" (latest {result.latency_ms:.0f} ms)",
        )
    if after.expiring != before.expiring and warn_days is not None and days_left is not None:
        expires = result.observations.cert_expires_at if result.observations else None
        when = f" on {expires:%Y-%m-%d}" if expires is not None else ""
        decision.reconcile_warning(
            "expiring",
            monitor,
            after.expiring,
            f"certificate expires in {days_left:.0f} days",
            f"the TLS certificate expires{when} ({days_left:.1f} days left, warning below {warn_days:g})",
        )
    system_id = monitor.system
    if after.problem and not before.problem:
        incident = decision.open_for(f"system:{system_id}")
        if incident is not None and not any(
            st.problem for st in decision.system_states(system_id) if st.monitor_id != monitor.id
        ):
            decision.reopened.add(incident.id)
    if after.problem or before.problem or decision.open_for(f"system:{system_id}") is not None:
        decision.reconcile_system(system_id)
    descendants = [d for d in world.graph.descendants(system_id) if decision.needs_attention(d)]
    decision.reconcile_systems(descendants)
    if world.zone_decisions and (
        len(monitor.zones) > 1 or decision.open_for(f"zone:{result.zone}") is not None
    ):
        for zone in monitor.zones:  # a result from one zone can be the evidence about another
            zone_state = after.zones.get(zone)
            failing = zone_state is not None and zone_state.status in ("down", "recovering")
            if failing or decision.open_for(f"zone:{zone}") is not None:
                decision.reconcile_zone(zone, [monitor.id])
    return decision.outcome()


HEARTBEAT_WATCH: Final = "heartbeat-watch"
"""The ``prober_id`` of the failures ``missed_heartbeats`` writes for push monitors."""


def missed_heartbeats(world: World, now: datetime) -> list[CheckResult]:
    """Push monitors whose heartbeat is late: one failed result per interval missed.

    A push monitor (``check.type == "push"``) gets its successes from the gateway (one per
    ``POST /push/<token>``). When nothing came for ``interval + grace`` after the newest heartbeat
    (or after this correlator started, or the monitor was added, whichever is later: memory of the
    last heartbeat does not survive a restart), the n-th missed interval is one failed result dated
    ``last + grace + n × interval`` from the source ``<zone>/heartbeat-watch``. Feed each to
    ``on_result``: the monitor's usual X-of-Y confirmation decides when it is down, the duplicate
    guard makes each miss count once, and a heartbeat that arrives late is a newer success that
    starts its recovery.
    """
    late: list[CheckResult] = []
    for monitor in world.monitors.values():
        check = monitor.check
        if check.type != "push" or not monitor.enabled:
            continue
        zone = monitor.zones[0]
        state = world.states.get(monitor.id)
        baselines = [t for t in (world.started_at, world.first_seen.get(monitor.id)) if t is not None]
        heartbeats = [
            at
            for source, at in (state.applied.items() if state else ())
            if source != f"{zone}/{HEARTBEAT_WATCH}"
        ]
        last = max(heartbeats + baselines, default=None)
        if last is None:
            continue
        interval = timedelta(seconds=monitor.interval)
        first_miss = last + interval + timedelta(seconds=check.grace)
        if now < first_miss:
            continue
        written = state.applied.get(f"{zone}/{HEARTBEAT_WATCH}") if state else None
        missed = int((now - first_miss) / interval)
        at = first_miss + missed * interval
        if written is not None and written >= at:
            continue
        silent_for = (at - last).total_seconds()
        late.append(
            CheckResult(
                monitor_id=monitor.id,
                system_id=monitor.system,
                zone=zone,
                prober_id=HEARTBEAT_WATCH,
                started_at=at,
                ok=False,
                latency_ms=0.0,
                error_kind=ErrorKind.TIMEOUT,
                detail=f"no heartbeat for {silent_for:.0f}s (expected every {monitor.interval:g}s + {check.grace:g}s grace)",
            )
        )
    return late


def on_tick(world: World, now: datetime, systems: Iterable[str], zones: Iterable[str]) -> Outcome:
    """Time passed: re-decide ``systems`` (those with a problem or an open incident: holds,
    quiet periods, maintenance windows, grace after a parent's recovery), zone problems, and
    silent probers of ``zones``."""
    decision = _Decision(world, now)
    decision.reconcile_systems(systems)
    for incident in world.incidents.open() if world.zone_decisions else ():
        if incident.kind == "zone":
            decision.reconcile_zone(incident.zones[0], ())
    for zone in zones:
        decision.reconcile_silence(zone)
    for incident in world.incidents.open():
        if incident.kind in MONITOR_WARNINGS and incident.monitor_ids[0] not in world.monitors:
            decision.resolve(incident, now, text="monitor removed from the configuration")
    return decision.outcome()


def zone_views(world: World, now: datetime, zones: Iterable[str]) -> dict[str, ZoneView]:
    """What this correlator's monitors say of each of ``zones``, for the platform role."""
    decision = _Decision(world, now)
    return {
        zone: ZoneView(
            down=decision.zone_down(zone, (m for m, mon in world.monitors.items() if zone in mon.zones)),
            stale=tuple(sorted(decision.stale_monitors(zone))),
        )
        for zone in zones
    }


def on_zone_views(
    world: World, now: datetime, views: Mapping[str, ZoneView], cleared: Mapping[str, datetime]
) -> Outcome:
    """The platform role's tick: zone problems and silent probers from every shard's views merged
    (``views``; a zone with an open incident and no view counts as clear), ``cleared``: since when
    the platform has seen a zone's incident monitors all clear."""
    decision = _Decision(world, now)
    open_zones = {i.zones[0] for i in world.incidents.open() if i.kind in ("zone", "prober_silent")}
    for zone in sorted({*views, *open_zones}):
        view = views.get(zone, ZoneView())
        decision.zone_incident(zone, view.down, cleared.get(zone))
        decision.silence_incident(zone, view.stale)
    return decision.outcome()


def _reject(command: Command, now: datetime, reason: str) -> Outcome:
    return Outcome(
        rejections=[
            CommandRejected(
                command_id=command.command_id,
                action=command.action,
                actor=command.actor,
                source=command.source,
                incident_id=command.incident_id,
                at=now,
                reason=reason,
            )
        ]
    )


def on_command(world: World, command: Command, now: datetime, target: Incident | None) -> Outcome:
    """Apply a person's command to ``target`` (the incident it names, looked up by the service,
    open or not). Never raises: an illegal command is an ``Outcome`` with a rejection."""
    decision = _Decision(world, now)
    at = min(command.at, now)
    actor = f"{command.source}:{command.actor}"
    event_id = command_event_id(command.command_id)

    def emit(type_: IncidentEventType, incident: Incident, text: str = "") -> Outcome:
        decision.emit(type_, incident, actor=actor, text=text)
        decision.pending[-1].event_id = event_id
        return decision.outcome()

    if command.action == "open_manual":
        system_id = command.system_id or PLATFORM_SYSTEM
        if command.system_id is not None and command.system_id not in world.graph.systems:
            return _reject(command, now, f"unknown system {command.system_id!r}")
        current = decision.open_for(f"system:{system_id}") if command.system_id else None
        if current is not None:
            return emit("noted", current, command.text)
        incident = Incident(
            id="man-" + uuid5(NAMESPACE, str(command.command_id)).hex[:20],
            system_id=system_id,
            severity="major",
            status="open",
            title=" ".join(command.text.split())[:300],
            cause=command.text,
            started_at=at,
            kind="manual",
            alerted=True,
        )
        return emit("opened", incident, command.text)
    if target is None:
        return _reject(command, now, f"unknown incident {command.incident_id!r}")
    incident = decision.incident(target.id) or target
    if command.action == "note":
        return emit("noted", incident, command.text)
    if incident.status == "resolved":
        return _reject(command, now, f"incident {incident.id} is already resolved")
    if command.action == "ack":
        if incident.status == "acknowledged":
            return _reject(command, now, f"already acknowledged by {incident.acknowledged_by}")
        acked = incident.model_copy(
            update={
                "status": "acknowledged",
                "acknowledged_at": max(at, incident.started_at),
                "acknowledged_by": actor,
            }
        )
        return emit("acknowledged", acked, command.text)
    # resolve by hand: monitors still failing are silenced until they recover, so the same
    # problem does not open a new incident the moment after; the dependants suppressed under it
    # are part of the same problem and are closed with it (silently: they were never told)
    children = [i for i in world.incidents.open() if i.parent_incident_id == incident.id]
    for closing in (incident, *children):
        for monitor_id in closing.monitor_ids:
            state = decision.state(monitor_id)
            if state is not None and state.problem:
                decision.states[monitor_id] = state.model_copy(update={"silenced": True})
    decision.resolve(incident, at, by=actor, actor=actor, text=command.text)
    decision.pending[-1].event_id = event_id
    for child in children:
        decision.resolve(child, at, by=actor, actor=actor, text="resolved with its cause")
    return decision.outcome()
