"""Requests to change an incident (acknowledge, resolve, note, open by hand) and their outcome."""

from __future__ import annotations

from typing import Final, Literal
from uuid import UUID, uuid5

from pydantic import Field, model_validator

from fao.schemas.base import BusModel, Identifier, UtcDatetime

CommandAction = Literal["ack", "resolve", "note", "open_manual"]
CommandSource = Literal["line", "api", "cli"]

COMMAND_NAMESPACE: Final = UUID("9b7f3a52-1d0e-4c3b-8f61-2a4c5e6d7f80")


def command_event_id(command_id: UUID) -> UUID:
    """The ``event_id`` of the incident event an accepted command produces: whoever sent the
    command can wait for exactly that event."""
    return uuid5(COMMAND_NAMESPACE, str(command_id))


class Command(BusModel):
    """One operator action; ``command_id`` makes a repeated delivery harmless."""

    schema_version: Literal[1] = 1
    command_id: UUID
    action: CommandAction
    actor: str = Field(min_length=1, max_length=200)
    source: CommandSource
    at: UtcDatetime
    incident_id: str | None = None
    system_id: Identifier | None = None
    text: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _target(self) -> Command:
        if self.action == "open_manual":
            if not self.text:
                raise ValueError("open_manual needs the report text")
        elif self.incident_id is None:
            raise ValueError(f"{self.action} needs an incident_id")
        return self


class CommandRejected(BusModel):
    """A command the correlator could not apply (unknown incident, already resolved...), with why.

    Published on ``fao.command-outcomes.v1.rejected`` so the sender (gateway, CLI) can tell the
    person; an accepted command shows up as an incident event instead."""

    schema_version: Literal[1] = 1
    command_id: UUID
    action: CommandAction
    actor: str
    source: CommandSource
    incident_id: str | None = None
    at: UtcDatetime
    reason: str
