"""Commands from the API and the dashboard, and the correlator's answer to each.

A command goes to ``FAO_COMMANDS`` (``fao.gateway.commands.StreamCommands``) with a fresh id; the
gateway then waits a little (``FAO_WEB_COMMAND_WAIT``) for the answer, as ``fao incidents ack``
does: *accepted* when the incident event the command produced is in ``incident_timeline`` (its
id is ``command_event_id(command_id)``, written by the correlator with the command's effect),
*rejected* when the correlator's ``CommandRejected`` for that id arrives on
``fao.command-outcomes.v1.rejected``. Neither within the wait: *queued* (the command stays in the
stream and is applied when the correlator gets to it; the API answers 202 with its id).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from uuid import UUID, uuid4

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from fao.gateway.commands import CommandSink
from fao.runtime.store import Document
from fao.schemas import Command, CommandAction, CommandRejected, command_event_id
from fao.schemas import subjects as s

log = structlog.get_logger()

TIMELINE: Final = "incident_timeline"
POLL: Final = 0.05


@dataclass(frozen=True)
class CommandOutcome:
    command_id: UUID
    state: Literal["applied", "rejected", "queued"]
    reason: str = ""


def api_command(
    action: CommandAction,
    actor: str,
    incident_id: str,
    text: str,
    now: datetime,
    source: Literal["api"] = "api",
) -> Command:
    return Command(
        command_id=uuid4(), action=action, actor=actor[:200], source=source, at=now,
        incident_id=incident_id, text=text[:2000],
    )  # fmt: skip


class CommandOutcomes:
    """Sends commands and waits for their outcome (one subscription per replica)."""

    def __init__(self, db: AsyncDatabase[Document], sink: CommandSink) -> None:
        self._db = db
        self._sink = sink
        self._waiting: dict[UUID, asyncio.Future[CommandRejected]] = {}
        self._subscription: Subscription | None = None

    async def start(self, nc: Client) -> None:
        self._subscription = await nc.subscribe(s.command_rejected_subject(), cb=self._on_rejection)

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):  # a closed connection has nothing left to stop
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_rejection(self, msg: Msg) -> None:
        try:
            rejection = CommandRejected.model_validate_json(msg.data)
        except ValidationError:
            return
        waiter = self._waiting.get(rejection.command_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(rejection)

    async def send(self, command: Command, wait: float) -> CommandOutcome:
        """Publish ``command`` (raises when NATS does not take it) and wait up to ``wait`` seconds."""
        waiter: asyncio.Future[CommandRejected] = asyncio.get_running_loop().create_future()
        self._waiting[command.command_id] = waiter
        try:
            await self._sink.send(command)
            event_id = str(command_event_id(command.command_id))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while True:
                if waiter.done():
                    return CommandOutcome(command.command_id, "rejected", waiter.result().reason)
                if await self._db[TIMELINE].find_one({"_id": event_id}, {"_id": 1}) is not None:
                    return CommandOutcome(command.command_id, "applied")
                left = deadline - loop.time()
                if left <= 0:
                    return CommandOutcome(command.command_id, "queued")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), min(POLL, left))
        finally:
            self._waiting.pop(command.command_id, None)
            waiter.cancel()
