"""The public incident stream: ``Incident`` snapshots wrapped in versioned ``IncidentEvent``s.

Subscribers outside Fao rely on these shapes (docs/asyncapi.yaml). Add fields only as optional;
anything else bumps ``schema_version``.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from fao.schemas.base import FaoModel, Identifier, UtcDatetime

Severity = Literal["critical", "major", "minor"]
IncidentStatus = Literal["open", "acknowledged", "resolved"]
IncidentEventType = Literal[
    "opened", "acknowledged", "escalated", "resolved", "reopened", "noted", "suppressed"
]


class Incident(FaoModel):
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


class IncidentEvent(FaoModel):
    """Something happened to an incident. ``event_id`` is deterministic, so re-publishing dedupes."""

    schema_version: Literal[1] = 1
    event_id: UUID
    type: IncidentEventType
    at: UtcDatetime
    incident: Incident
