"""Acknowledge / Resolve from a problem message's buttons → a command to the correlator.

Who tapped must be a known person (config ``people``, by LINE user id) in the team that owns the
incident (``fao.gateway.membership``); otherwise, and when LINE gives no user id (users who have
not consented), the person gets a polite Thai reply and nothing changes. An incident already
resolved (or, for Acknowledge, already acknowledged) is answered from MongoDB at once, without a
command. Otherwise the command goes to ``FAO_COMMANDS`` (actor: the person's name), an audit
entry is written (``fao.gateway.line_audit``: actor the person's id, ``incident.ack`` /
``incident.resolve``, the status before → the status asked for, outcome ``queued``: the
correlator's answer reaches the group, not the log) and the webhook is answered; the group then
sees the notifier's short "acknowledged by …" / "fixed" message, and a refusal by the correlator
is answered by ``fao.gateway.rejections``.
"""

from __future__ import annotations

from typing import Final

import structlog

from fao.gateway import line_audit
from fao.gateway.commands import CommandSink, command_id, new_command
from fao.gateway.events import WebhookEvent
from fao.gateway.line_api import FollowUp, LineApi
from fao.gateway.membership import display_actor, may_act, owning_teams
from fao.gateway.postback import IncidentAction
from fao.gateway.rejections import RejectionWatch
from fao.gateway.replies import Replies
from fao.gateway.store import INCIDENTS, GatewayStore
from fao.runtime import audit
from fao.schemas import PLATFORM_SYSTEM

log = structlog.get_logger()

# The status each action asks for (the audit entry's "after").
ASKED: Final = {"ack": "acknowledged", "resolve": "resolved"}


class IncidentActions:
    def __init__(
        self,
        store: GatewayStore,
        commands: CommandSink,
        line: LineApi,
        replies: Replies,
        rejections: RejectionWatch | None,
    ) -> None:
        self._store = store
        self._commands = commands
        self._line = line
        self._replies = replies
        self._rejections = rejections

    def _reply(self, event: WebhookEvent, key: str, **values: object) -> list[FollowUp]:
        token = event.reply_token
        if token is None:
            return []
        text = self._replies.text(key, **values)
        return [lambda: self._line.reply(token, text)]

    async def on_action(self, event: WebhookEvent, action: IncidentAction) -> list[FollowUp]:
        verb = self._replies.action(action.action)
        user_id = event.source.user_id if event.source is not None else None
        if user_id is None:
            log.info("incident_action_refused", reason="no user id", incident=action.incident_id)
            return self._reply(event, "no_user_id", action=verb)
        incident = await self._store.incident(action.incident_id)
        if incident is None:
            return self._reply(event, "unknown_incident", incident=action.incident_id)
        system = (
            None if incident.system_id == PLATFORM_SYSTEM else await self._store.system(incident.system_id)
        )
        teams = await self._store.teams() if incident.system_id == PLATFORM_SYSTEM else []
        person = await self._store.person_by_line_user(user_id)
        if person is None or not may_act(person, owning_teams(incident, system, teams)):
            log.info(
                "incident_action_refused", reason="not a member of the owning team", user=user_id,
                person=person.id if person else None, incident=incident.id,
            )  # fmt: skip
            return self._reply(event, "not_member", action=verb)
        if incident.status == "resolved":
            return self._reply(
                event, "already_resolved", actor=display_actor(incident.resolved_by, self._replies)
            )
        if action.action == "ack" and incident.status == "acknowledged":
            return self._reply(
                event, "already_acknowledged", actor=display_actor(incident.acknowledged_by, self._replies)
            )
        command = new_command(
            cid=command_id("postback", event.event_id),
            action=action.action,
            actor=person.name,
            at=event.at,
            incident_id=incident.id,
        )
        await self._commands.send(command)
        log.info(
            "command_sent", action=command.action, incident=incident.id, person=person.id,
            command_id=str(command.command_id),
        )  # fmt: skip
        await line_audit.record(
            self._store.db, at=event.at, actor=person.id, action=f"incident.{command.action}",
            changes=[audit.Change(
                INCIDENTS, incident.id, "change", {"status": incident.status}, {"status": ASKED[action.action]}
            )],
            incident_id=incident.id, command_id=str(command.command_id), outcome="queued",
        )  # fmt: skip
        if self._rejections is not None and event.reply_token is not None:
            self._rejections.expect(command.command_id, event.reply_token, incident.id)
        return []
