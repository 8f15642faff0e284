"""The send rule (``render.should_send``) as a table: which incident events become a LINE message.

One message when a real problem starts (or is told late, after a mute), one when it ends, and a
short update when someone takes it on; nothing for anything the team was never told about.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from fao.notifier.render import MessageKind, should_send
from fao.schemas import Incident, IncidentEvent, IncidentEventType

STARTED = datetime(2026, 10, 5, 7, 3, tzinfo=UTC)


def event(event_type: IncidentEventType, text: str = "", **changes: Any) -> IncidentEvent:
    fields: dict[str, Any] = {
        "id": "inc-1",
        "system_id": "egov-portal",
        "status": "open",
        "title": "HTTP 503",
        "started_at": STARTED,
        **changes,
    }
    if event_type == "resolved":
        fields["status"] = "resolved"
        fields["resolved_at"] = STARTED + timedelta(minutes=5)
    return IncidentEvent(
        event_id=uuid.uuid4(),
        type=event_type,
        at=STARTED,
        incident=Incident.model_validate(fields),
        actor="fao",
        text=text,
    )


TOLD = {"alerted": True}
NOT_TOLD = {"alerted": False}

# (event type, incident fields, event text, the message expected)
TABLE: list[tuple[IncidentEventType, dict[str, Any], str, MessageKind | None]] = [
    # A problem starts: sent unless held back (maintenance, or a failing parent's incident).
    ("opened", {}, "", "problem"),
    ("opened", {"kind": "flapping"}, "", "problem"),
    ("opened", {"kind": "zone", "system_id": "fao-platform", "severity": "minor"}, "", "problem"),
    ("opened", {"kind": "prober_silent", "system_id": "fao-platform"}, "", "problem"),
    ("opened", {"kind": "manual"}, "เข้าเว็บไม่ได้", "problem"),
    ("opened", {"muted": "maintenance"}, "", None),
    ("opened", {"muted": "dependency", "parent_incident_id": "inc-0"}, "", None),
    ("opened", {"kind": "flapping", "muted": "maintenance"}, "", None),
    # Held back until now: the problem message, late, saying why.
    ("unmuted", TOLD, "maintenance_ended", "problem"),
    ("unmuted", TOLD, "parent_resolved", "problem"),
    ("unmuted", {**TOLD, "kind": "flapping"}, "parent_resolved", "problem"),
    # The end: only of a problem the team was told about.
    ("resolved", TOLD, "", "fixed"),
    ("resolved", {**TOLD, "kind": "flapping"}, "", "fixed"),
    ("resolved", {**TOLD, "resolved_by": "somchai"}, "", "fixed"),
    ("resolved", NOT_TOLD, "", None),
    ("resolved", {**NOT_TOLD, "muted": "dependency", "parent_incident_id": "inc-0"}, "", None),
    ("resolved", {**NOT_TOLD, "muted": "maintenance"}, "", None),
    # Someone took it on: a short update, only if the team knows the problem.
    ("acknowledged", {**TOLD, "status": "acknowledged", "acknowledged_by": "somchai"}, "", "acknowledged"),
    ("acknowledged", {**NOT_TOLD, "status": "acknowledged", "muted": "maintenance"}, "", None),
    # Everything else is bookkeeping: logged, never sent.
    ("noted", TOLD, "another monitor failed", None),
    ("suppressed", {"muted": "dependency", "parent_incident_id": "inc-0"}, "", None),
    ("flapping", TOLD, "", None),
    ("reopened", {**TOLD, "reopened": 1}, "", None),
    ("escalated", TOLD, "", None),
]


@pytest.mark.parametrize(
    ("event_type", "changes", "text", "expected"),
    TABLE,
    ids=[f"{t}-{'-'.join(f'{k}={v}' for k, v in c.items()) or 'plain'}" for t, c, _, _ in TABLE],
)
def test_send_rule(
    event_type: IncidentEventType, changes: dict[str, Any], text: str, expected: MessageKind | None
) -> None:
    assert should_send(event(event_type, text, **changes)) == expected


def test_the_table_covers_every_event_type() -> None:
    """A new event type in the contract must be decided here, not fall through unnoticed."""
    assert {row[0] for row in TABLE} == set(get_args(IncidentEventType))
