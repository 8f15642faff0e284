"""From transitions to incidents and their public events. Pure: ids are derived, never random.

One incident per system problem: while a system has an open incident, a further monitor of it
that goes down is attached to that incident (event ``noted``, no new alert), and the incident is
resolved when the last of its monitors recovers.

Deterministic ids make every step safe to repeat after a crash: the same transition always yields
the same incident id (a second insert is a no-op) and the same event id (the incident stream's
duplicate window drops the second publish).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from fao.correlator.state_machine import Transition
from fao.schemas import Incident, IncidentEvent, IncidentEventType, Monitor, System

NAMESPACE = UUID("3f1c1f7e-52a4-4c1e-9f57-6a0e8f0c7a11")


def incident_id(monitor_id: str, since: datetime) -> str:
    return "inc-" + uuid5(NAMESPACE, f"{monitor_id}|{since.isoformat()}").hex[:20]


def event_id(incident: Incident, event_type: IncidentEventType, at: datetime) -> UUID:
    return uuid5(NAMESPACE, f"{incident.id}|{event_type}|{at.isoformat()}")


def make_event(event_type: IncidentEventType, incident: Incident, at: datetime) -> IncidentEvent:
    return IncidentEvent(
        event_id=event_id(incident, event_type, at), type=event_type, at=at, incident=incident
    )


def open_incident(transition: Transition, monitor: Monitor, system: System | None, zone: str) -> Incident:
    """The incident a confirmed ``down`` transition opens."""
    what = monitor.name or monitor.id
    title = f"{what}: {transition.cause}" if transition.cause else what
    return Incident(
        id=incident_id(monitor.id, transition.since),
        system_id=monitor.system,
        monitor_ids=[monitor.id],
        severity=system.severity if system else "major",
        status="open",
        title=title[:300],
        cause=transition.cause,
        started_at=transition.since,
        zones=[zone],
    )


def attach_monitor(incident: Incident, monitor: Monitor, zone: str) -> Incident:
    """Another monitor of the incident's system failed: same problem, same incident, no new alert."""
    return incident.model_copy(
        update={
            "monitor_ids": sorted({*incident.monitor_ids, monitor.id}),
            "zones": sorted({*incident.zones, zone}),
        }
    )


def resolve_incident(incident: Incident, transition: Transition) -> Incident:
    """The same incident, closed at the first success of the recovery."""
    return incident.model_copy(
        update={"status": "resolved", "resolved_at": transition.at, "resolved_by": "fao:auto"}
    )
