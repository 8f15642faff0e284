"""A small simulator around the pure incident policy: the service's bookkeeping, an injected clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fao.correlator.graph import SystemGraph
from fao.correlator.monitor_state import MonitorState
from fao.correlator.policy import Incidents, Outcome, World, on_command, on_result, on_tick
from fao.schemas import (
    CheckResult,
    Command,
    ErrorKind,
    Incident,
    IncidentEvent,
    MaintenanceWindow,
    Monitor,
    System,
)

T0 = datetime(2026, 10, 5, 3, 0, tzinfo=UTC)


def system(system_id: str, *, depends_on: Iterable[str] = (), team: str = "apps") -> System:
    return System(id=system_id, name=system_id, team=team, depends_on=list(depends_on))


def monitor(monitor_id: str, system_id: str, **kw: Any) -> Monitor:
    spec: dict[str, Any] = {
        "id": monitor_id,
        "system": system_id,
        "check": {"type": "tcp", "host": "127.0.0.1", "port": 9},
        "interval": 5,
        "timeout": 1,
        "recheck_interval": 1,
        "confirm": {"failures": 2, "of": 3},
        "quiet_period": 30,
    }
    spec.update(kw)
    return Monitor.model_validate(spec)


def would_send(event: IncidentEvent) -> bool:
    """The notifier's rule: a problem while not muted, an unmute, and the end of an alerted one."""
    incident = event.incident
    if event.type == "opened":
        return incident.muted is None
    if event.type == "unmuted":
        return True
    if event.type in ("resolved", "acknowledged"):
        return incident.alerted
    return False


@dataclass
class Sim:
    systems: list[System]
    monitors: list[Monitor]
    windows: list[MaintenanceWindow] = field(default_factory=list)
    now: datetime = T0
    states: dict[str, MonitorState] = field(default_factory=dict)
    incidents: Incidents = field(default_factory=Incidents)
    events: list[IncidentEvent] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    watch_silence: bool = False  # most tests stop sending results while time passes
    evidence_at: datetime | None = None  # set: the correlator is behind (working through a backlog)
    zone_decisions: bool = True  # False: a shard's correlator (the platform role decides zones)

    def world(self) -> World:
        by_system: dict[str, list[str]] = {}
        for m in self.monitors:
            by_system.setdefault(m.system, []).append(m.id)
        return World(
            monitors={m.id: m for m in self.monitors},
            states=self.states,
            incidents=self.incidents,
            graph=SystemGraph.build(self.systems),
            by_system=by_system,
            windows=self.windows,
            started_at=T0,
            first_seen={m.id: T0 for m in self.monitors},
            evidence_at=self.evidence_at,
            zone_decisions=self.zone_decisions,
        )

    def _apply(self, outcome: Outcome) -> Outcome:
        self.states.update(outcome.states)
        for incident in outcome.incidents.values():
            self.incidents.put(incident)
        self.events.extend(outcome.events)
        self.outcomes.append(outcome)
        return outcome

    def result(
        self,
        monitor_id: str,
        ok: bool,
        *,
        zone: str = "default",
        prober: str = "p1",
        at: datetime | None = None,
    ) -> Outcome:
        m = next(m for m in self.monitors if m.id == monitor_id)
        r = CheckResult(
            monitor_id=monitor_id,
            system_id=m.system,
            zone=zone,
            prober_id=prober,
            started_at=at or self.now,
            ok=ok,
            latency_ms=1.0,
            error_kind=ErrorKind.NONE if ok else ErrorKind.TIMEOUT,
            detail="" if ok else "timeout",
        )
        return self._apply(on_result(self.world(), r, self.now))

    def step(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def tick(self) -> Outcome:
        systems = {st.system_id for st in self.states.values() if st.problem}
        systems.update(i.system_id for i in self.incidents.open() if i.kind in ("outage", "flapping"))
        zones = sorted({z for m in self.monitors for z in m.zones}) if self.watch_silence else []
        return self._apply(on_tick(self.world(), self.now, systems, zones))

    def command(self, command: Command) -> Outcome:
        target = self.incidents.by_id.get(command.incident_id) if command.incident_id else None
        return self._apply(on_command(self.world(), command, self.now, target))

    def fail(self, monitor_id: str, times: int = 2, every: float = 1.0, **kw: Any) -> None:
        for _ in range(times):
            self.result(monitor_id, False, **kw)
            self.step(every)

    def ok(self, monitor_id: str, times: int = 1, every: float = 1.0, **kw: Any) -> None:
        for _ in range(times):
            self.result(monitor_id, True, **kw)
            self.step(every)

    def run_ticks(self, seconds: float) -> None:
        for _ in range(int(seconds)):
            self.step(1)
            self.tick()

    # -- reading -------------------------------------------------------------------------------
    def sent(self) -> list[tuple[str, str, str]]:
        """(event type, system, kind) of every event the notifier would send."""
        return [(e.type, e.incident.system_id, e.incident.kind) for e in self.events if would_send(e)]

    def types(self, system_id: str | None = None) -> list[str]:
        return [e.type for e in self.events if system_id is None or e.incident.system_id == system_id]

    def open_incident(self, system_id: str) -> Incident | None:
        incident_id = self.incidents.open_by_key.get(f"system:{system_id}")
        return self.incidents.by_id.get(incident_id) if incident_id else None

    def incident_of(self, system_id: str) -> Incident:
        found = [i for i in self.incidents.by_id.values() if i.system_id == system_id]
        assert len(found) == 1, found
        return found[0]
