"""The public incident stream: ``Incident`` snapshots wrapped in versioned ``IncidentEvent``s.

Subscribers outside Fao rely on these shapes (docs/asyncapi.yaml). Add fields only as optional;
anything else bumps ``schema_version``. Read tolerantly (``BusModel``): unknown fields are ignored.
"""

from __future__ import annotations

from typing import Final, Literal
from uuid import UUID

from pydantic import Field

from fao.schemas.base import BusModel, Identifier, UtcDatetime

Severity = Literal["critical", "major", "minor"]
IncidentStatus = Literal["open", "acknowledged", "resolved"]
IncidentEventType = Literal[
    "opened",
    "acknowledged",
    "escalated",
    "resolved",
    "reopened",
    "noted",
    "suppressed",
    "flapping",
    "unmuted",
]
# outage: confirmed down; flapping: keeps changing state ("ไม่เสถียร"); zone: one zone's path fails
# while the others see the system up; prober_silent: a zone's probers stopped reporting;
# manual: opened by a person (LINE Official Account, API, CLI); slow: up, but slower than its
# monitor's max_latency in X of the last Y checks; expiring: up, but its TLS certificate has fewer
# than warn_days left (both added in 1.2; minor, not outages).
IncidentKind = Literal["outage", "flapping", "zone", "prober_silent", "manual", "slow", "expiring"]
# Why an open incident has not been sent to its team: its cause is an ancestor system's incident
# (``dependency``) or it happened inside a maintenance window (``maintenance``).
MuteReason = Literal["dependency", "maintenance"]

# Zone and prober problems belong to the platform that runs Fao, not to a ministry system; their
# incidents carry this system id and are routed to the teams marked ``platform: true``.
PLATFORM_SYSTEM: Final = "fao-platform"
# The most screenshots an incident keeps (the newest of each monitor that joined it).
MAX_SCREENSHOTS: Final = 20


class TimeSpan(BusModel):
    """``[start, end)``; ``end`` is None while it lasts."""

    start: UtcDatetime
    end: UtcDatetime | None = None


class Incident(BusModel):
    """A confirmed problem of one system, from its first failing check to its recovery."""

    schema_version: Literal[1] = 1
    id: str
    system_id: Identifier
    monitor_ids: list[Identifier] = Field(default_factory=list)
    severity: Severity = "major"
    status: IncidentStatus
    title: str
    cause: str = ""
    started_at: UtcDatetime
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by: str | None = None
    resolved_at: UtcDatetime | None = None
    resolved_by: str | None = None
    zones: list[Identifier] = Field(default_factory=list)
    parent_incident_id: str | None = None
    # Added in 1.1 (optional, compatible):
    kind: IncidentKind = "outage"
    muted: MuteReason | None = None
    alerted: bool = False  # the owning team was told; its resolution is then told too
    dependants: list[Identifier] = Field(default_factory=list)  # systems suppressed under this one
    maintenance: list[TimeSpan] = Field(default_factory=list)  # parts inside maintenance windows
    reopened: int = 0  # times it failed again before its recovery was confirmed
    # Added in 1.4 (optional, compatible): screenshots of its monitors' failing browser checks,
    # object names in the ``fao-screenshots`` object store (``subjects.screenshot_name``).
    screenshots: list[str] = Field(default_factory=list, max_length=MAX_SCREENSHOTS)


class IncidentEvent(BusModel):
    """Something happened to an incident. ``event_id`` is deterministic, so re-publishing dedupes."""

    schema_version: Literal[1] = 1
    event_id: UUID
    type: IncidentEventType
    at: UtcDatetime
    incident: Incident
    # Added in 1.1 (optional, compatible): who caused it (a person for commands, else "fao") and
    # free text (a note, the reason of an unmute).
    actor: str | None = None
    text: str = ""
    # Added in 1.3 (optional, compatible): on a ``noted`` event, the monitors that joined the
    # incident with it (what changed, beside the whole incident as it is now).
    joined: list[str] = Field(default_factory=list)
