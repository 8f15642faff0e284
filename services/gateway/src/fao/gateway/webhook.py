"""One verified webhook's events → their effects (commands, records) and the replies to send.

Every event is first *claimed*: its ``webhookEventId`` is inserted into ``line_webhook_events``
(unique ``_id``). A replay or a redelivery (``deliveryContext.isRedelivery``) of an event already
claimed does nothing at all; an event whose effect could not be made durable (MongoDB or NATS
away) is un-claimed and the error propagates (the webhook answers 503, so LINE may redeliver it).
What the event changes is made durable before ``handle`` returns; replies and LINE look-ups are
returned as follow-ups, sent after the webhook has been answered (LINE allows 2 s).

- ``join`` / ``leave`` (and ``memberJoined`` / ``memberLeft``, and any event from a group not
  recorded yet): ``line_groups``; the group's name and member count are looked up afterwards.
- ``postback`` ``action=ack|resolve``: a team member's command (``fao.gateway.incidents``).
- 1:1 ``message`` and report quick-reply picks: Official Account reports (``fao.gateway.reports``).
- ``postback`` ``action=review_ok|review_fix``: a team member's answer to the owner review
  (``fao.gateway.reviews``).
- ``mode: standby`` (another module is answering this chat): recorded, never acted on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from fao.gateway.events import Source, Webhook, WebhookEvent
from fao.gateway.incidents import IncidentActions
from fao.gateway.line_api import FollowUp, LineApi
from fao.gateway.postback import IncidentAction, ReviewAnswer, SystemPick, parse_postback
from fao.gateway.replies import load_replies
from fao.gateway.reports import Reports
from fao.gateway.reviews import OwnerReviews
from fao.gateway.store import GatewayStore

log = structlog.get_logger()

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookHandler:
    def __init__(
        self,
        store: GatewayStore,
        line: LineApi,
        incidents: IncidentActions,
        reports: Reports,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.line = line
        self.incidents = incidents
        self.reports = reports
        self.clock = clock
        self.reviews = OwnerReviews(store, line, load_replies())

    async def handle(self, webhook: Webhook) -> list[FollowUp]:
        follow_ups: list[FollowUp] = []
        for event in webhook.events:
            follow_ups += await self.handle_event(event)
        return follow_ups

    async def handle_event(self, event: WebhookEvent) -> list[FollowUp]:
        now = self.clock()
        if not await self.store.claim_event(event, now):
            log.info(
                "webhook_event_repeated",
                event_id=event.event_id,
                type=event.type,
                redelivery=event.redelivery,
            )
            return []
        try:
            return await self._act(event, now)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.release_event(event.event_id)
            raise

    async def _act(self, event: WebhookEvent, now: datetime) -> list[FollowUp]:
        source = event.source
        follow_ups: list[FollowUp] = []
        if source is not None and source.chat_id is not None:
            follow_ups += await self._membership(event, source, source.chat_id, now)
        if not event.active:
            log.info("webhook_event_standby", event_id=event.event_id, type=event.type, mode=event.mode)
            return follow_ups
        if source is None:
            return follow_ups
        if event.type == "postback" and event.postback_data is not None:
            postback = parse_postback(event.postback_data)
            if isinstance(postback, IncidentAction):
                follow_ups += await self.incidents.on_action(event, postback)
            elif isinstance(postback, SystemPick) and source.kind == "user" and source.user_id:
                follow_ups += await self.reports.on_pick(event, source.user_id, postback, now)
            elif isinstance(postback, ReviewAnswer):
                follow_ups += await self.reviews.on_answer(event, postback, now)
        elif event.type == "message" and source.kind == "user" and source.user_id:
            follow_ups += await self.reports.on_message(event, source.user_id, now)
        return follow_ups

    async def _membership(
        self, event: WebhookEvent, source: Source, chat_id: str, now: datetime
    ) -> list[FollowUp]:
        if event.type in ("join", "leave"):
            joined = event.type == "join"
            changed = await self.store.record_membership(chat_id, source.kind, joined, event.at, now)
            log.info("line_group_" + ("joined" if joined else "left"), chat=chat_id, recorded=changed)
            return [self._details(chat_id, source.kind)] if joined and changed else []
        first_seen = await self.store.seen_in(chat_id, source.kind, event.at, now)
        if first_seen or event.type in ("memberJoined", "memberLeft"):
            return [self._details(chat_id, source.kind)]
        return []

    def _details(self, chat_id: str, kind: str) -> FollowUp:
        async def look_up() -> None:
            # Rooms have no name and no summary endpoint; groups do.
            name = await self.line.group_name(chat_id) if kind == "group" else None
            members = await self.line.member_count(chat_id) if kind == "group" else None
            if name is not None or members is not None:
                await self.store.set_group_details(chat_id, name, members, self.clock())

        return look_up
