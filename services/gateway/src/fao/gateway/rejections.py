"""Telling a person in LINE that the correlator refused their command, without making LINE wait.

The webhook answers as soon as the command is in the stream. The correlator usually applies it
(the group then sees the notifier's "acknowledged by …" / "fixed" message); when it refuses one
(somebody acknowledged a moment earlier, the incident resolved meanwhile) it publishes a
``CommandRejected`` on ``fao.command-outcomes.v1.rejected``. Every gateway replica listens there
(a core subscription); the one that received the postback keeps its reply token for
``rejection_reply_window`` seconds (a token lasts about a minute) and, if the rejection arrives
in time, answers the person with the incident's current state ("already acknowledged by X"),
read from MongoDB. Best effort by design: a replica that restarts in between forgets the token,
and the person still sees the group's update message.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from uuid import UUID

import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from fao.gateway.line_api import LineApi
from fao.gateway.membership import display_actor
from fao.gateway.replies import Replies
from fao.gateway.store import GatewayStore
from fao.schemas import CommandRejected
from fao.schemas import subjects as s

log = structlog.get_logger()


@dataclass(frozen=True)
class _Waiting:
    reply_token: str
    incident_id: str | None
    deadline: float


class RejectionWatch:
    def __init__(self, store: GatewayStore, line: LineApi, replies: Replies, window: float) -> None:
        self._store = store
        self._line = line
        self._replies = replies
        self._window = window
        self._waiting: dict[UUID, _Waiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None

    async def start(self, nc: NatsClient) -> None:
        self._subscription = await nc.subscribe(s.command_rejected_subject(), cb=self._on_message)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        for task in list(self._tasks):
            task.cancel()

    def expect(self, command_id: UUID, reply_token: str, incident_id: str | None) -> None:
        """Keep ``reply_token`` for the answer to ``command_id`` (forgotten after the window)."""
        now = time.monotonic()
        for cid in [cid for cid, w in self._waiting.items() if w.deadline <= now]:
            del self._waiting[cid]
        self._waiting[command_id] = _Waiting(reply_token, incident_id, now + self._window)

    async def _on_message(self, msg: Msg) -> None:
        try:
            rejection = CommandRejected.model_validate_json(msg.data)
        except ValidationError:
            return
        waiting = self._waiting.pop(rejection.command_id, None)
        if waiting is None or waiting.deadline <= time.monotonic():
            return
        task = asyncio.create_task(self._answer(rejection, waiting))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, rejection: CommandRejected, waiting: _Waiting) -> None:
        log.info("command_rejected", command_id=str(rejection.command_id), reason=rejection.reason)
        try:
            text = await self._text(rejection, waiting.incident_id)
        except Exception as exc:  # MongoDB away: the reason alone is still worth telling
            log.warning("rejection_lookup_failed", error=f"{type(exc).__name__}: {exc}")
            text = self._replies.text("rejected", reason=rejection.reason)
        await self._line.reply(waiting.reply_token, text)

    async def _text(self, rejection: CommandRejected, incident_id: str | None) -> str:
        incident = await self._store.incident(incident_id) if incident_id else None
        if incident is not None and incident.status == "resolved":
            return self._replies.text(
                "already_resolved", actor=display_actor(incident.resolved_by, self._replies)
            )
        if incident is not None and incident.status == "acknowledged" and rejection.action == "ack":
            return self._replies.text(
                "already_acknowledged", actor=display_actor(incident.acknowledged_by, self._replies)
            )
        return self._replies.text("rejected", reason=rejection.reason)
