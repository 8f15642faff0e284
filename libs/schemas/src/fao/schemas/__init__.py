"""Fao's public contracts: config models, bus messages and the names of streams and subjects.

Every model here is frozen, forbids unknown fields and carries a ``schema_version``. Changing one
is a versioned, documented change (docs/contracts.md).
"""

from fao.schemas.checks import CheckSpec, HttpCheck, TcpCheck
from fao.schemas.commands import Command, CommandAction, CommandRejected, CommandSource, command_event_id
from fao.schemas.config import ConfirmPolicy, Monitor, System, Team
from fao.schemas.events import (
    PLATFORM_SYSTEM,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentKind,
    IncidentStatus,
    MuteReason,
    Severity,
    TimeSpan,
)
from fao.schemas.maintenance import MaintenanceWindow, WeeklyRecurrence, occurrence_at
from fao.schemas.people import (
    ChannelName,
    ChannelPolicy,
    EscalationPolicy,
    EscalationStep,
    LineUserId,
    Person,
    WebhookTarget,
)
from fao.schemas.results import Attempt, CheckResult, ErrorKind

__all__ = [
    "PLATFORM_SYSTEM",
    "Attempt",
    "ChannelName",
    "ChannelPolicy",
    "CheckResult",
    "CheckSpec",
    "Command",
    "CommandAction",
    "CommandRejected",
    "CommandSource",
    "ConfirmPolicy",
    "ErrorKind",
    "EscalationPolicy",
    "EscalationStep",
    "HttpCheck",
    "Incident",
    "IncidentEvent",
    "IncidentEventType",
    "IncidentKind",
    "IncidentStatus",
    "LineUserId",
    "MaintenanceWindow",
    "Monitor",
    "MuteReason",
    "Person",
    "Severity",
    "System",
    "TcpCheck",
    "Team",
    "TimeSpan",
    "WebhookTarget",
    "WeeklyRecurrence",
    "command_event_id",
    "occurrence_at",
]
