"""Commands the gateway sends the correlator, with ids that make a replay harmless.

A command's id is a uuid5 of what caused it (the webhook event id of a postback, the report id of
an Official Account report), so the same LINE event can never make two commands: the stream drops
a second publish with the same ``Nats-Msg-Id`` (24 h) and the correlator applies a command id once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Protocol
from uuid import UUID, uuid5

from nats.js import JetStreamContext

from fao.schemas import Command, CommandAction
from fao.schemas import subjects as s

GATEWAY_NAMESPACE: Final = UUID("5d3e0c8a-7f41-4b7e-9a2c-61f0d4b8e913")
# Crockford's base32 (no I, L, O, U): references people read out on the phone.
REFERENCE_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_DIGITS: Final = 8


def command_id(kind: str, key: str) -> UUID:
    """``kind``: ``postback`` (key: webhook event id) or ``report`` (key: report id)."""
    return uuid5(GATEWAY_NAMESPACE, f"{kind}|{key}")


def reference(command: UUID) -> str:
    """The report's reference for people: ``FAO-`` + 8 characters of the command id (40 bits)."""
    value = command.int >> (128 - 5 * REFERENCE_DIGITS)
    digits = [REFERENCE_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(REFERENCE_DIGITS))]
    return "FAO-" + "".join(digits)


def new_command(
    *,
    cid: UUID,
    action: CommandAction,
    actor: str,
    at: datetime,
    incident_id: str | None = None,
    system_id: str | None = None,
    text: str = "",
) -> Command:
    return Command(
        command_id=cid,
        action=action,
        actor=actor[:200],
        source="line",
        at=at,
        incident_id=incident_id,
        system_id=system_id,
        text=text[:2000],
    )


class CommandSink(Protocol):
    async def send(self, command: Command) -> None: ...


class StreamCommands:
    """Publishes to ``FAO_COMMANDS`` (``fao.commands.v1.<action>``) and waits for the stream's ack."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def send(self, command: Command) -> None:
        await self._js.publish(
            s.command_subject(command.action),
            command.model_dump_json().encode(),
            stream=s.COMMANDS_STREAM,
            headers={"Nats-Msg-Id": str(command.command_id)},
            timeout=2.0,
        )
