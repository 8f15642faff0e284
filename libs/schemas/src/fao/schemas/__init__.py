"""Fao's public contracts: config models, bus messages and the names of streams and subjects.

Every model here is frozen, forbids unknown fields and carries a ``schema_version``. Changing one
is a versioned, documented change (docs/contracts.md).
"""

from fao.schemas.checks import CheckSpec, HttpCheck, TcpCheck
from fao.schemas.commands import Command, CommandAction, CommandSource
from fao.schemas.config import ConfirmPolicy, Monitor, System, Team
from fao.schemas.events import Incident, IncidentEvent, IncidentEventType, IncidentStatus, Severity
from fao.schemas.results import Attempt, CheckResult, ErrorKind

__all__ = [
    "Attempt",
    "CheckResult",
    "CheckSpec",
    "Command",
    "CommandAction",
    "CommandSource",
    "ConfirmPolicy",
    "ErrorKind",
    "HttpCheck",
    "Incident",
    "IncidentEvent",
    "IncidentEventType",
    "IncidentStatus",
    "Monitor",
    "Severity",
    "System",
    "TcpCheck",
    "Team",
]
