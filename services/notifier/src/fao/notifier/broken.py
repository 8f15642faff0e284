"""Broken targets: a target that refused for good is skipped until it can work again.

A permanent *target* error (``DeliveryError.target``: LINE 400 "Failed to send messages" for an
unknown group or one the bot was removed from, a webhook URL answering 404/410, an SMTP server
refusing the mailbox with 550/551/553) inserts ``broken_targets {_id: "<channel>:<target>",
channel, target, since, error, team, team_version, delivery}``. The unique ``_id`` makes the mark,
and the one notice to the platform team that goes with it (outbox, ``target_broken``, and an error
log line), happen once however many deliveries fail on it. Later deliveries to a broken target
are not tried: they are final ``skipped_broken`` and their message goes to the team's fallbacks
at once.

A mark heals (the document is deleted, log ``target_healed``) — the simplest rule that cannot
leave a working target skipped for ever and never tries a broken one on every incident:

- ``team_changed``: the delivery was routed under another version of the team's config than the
  one the mark was made under (``targets.team_version``): ``fao apply`` changed the team (a new
  group id, the same one re-added, a new policy), so the next delivery tries the target again;
- ``bot_joined``: for a LINE group, the gateway recorded the bot joining it after the mark
  (``line_groups {_id: <group>, joined_at}``);
- ``sent``: a delivery to the target succeeded (one already in flight, or tried after a heal).

Marks are read by ``_id`` and cached for ``REFRESH`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.deliveries import Delivery
from fao.runtime.store import Document

log = structlog.get_logger()

BROKEN_TARGETS: Final = "broken_targets"
LINE_GROUPS: Final = "line_groups"  # written by the gateway (join/leave events)
REFRESH: Final = 30.0


def mark_id(channel: str, target: str) -> str:
    return f"{channel}:{target}"


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class BrokenMark:
    """One broken target."""

    channel: str
    target: str
    since: datetime
    error: str
    team: str
    team_version: str

    @classmethod
    def from_doc(cls, doc: Document) -> BrokenMark:
        return cls(
            channel=str(doc["channel"]),
            target=str(doc["target"]),
            since=_utc(doc.get("since")) or datetime.now(UTC),
            error=str(doc.get("error") or ""),
            team=str(doc.get("team") or ""),
            team_version=str(doc.get("team_version") or ""),
        )


Notify = Callable[[BrokenMark], Awaitable[None]]


class BrokenTargets:
    """The ``broken_targets`` collection and its cache (see the module docstring)."""

    def __init__(self, db: AsyncDatabase[Document], *, notify: Notify) -> None:
        self._col = db[BROKEN_TARGETS]
        self._groups = db[LINE_GROUPS]
        self._notify = notify
        self._cache: dict[str, tuple[BrokenMark | None, float]] = {}

    async def _get(self, channel: str, target: str) -> BrokenMark | None:
        key = mark_id(channel, target)
        now = asyncio.get_running_loop().time()
        cached = self._cache.get(key)
        if cached is not None and now - cached[1] < REFRESH:
            return cached[0]
        doc = await self._col.find_one({"_id": key})
        mark = BrokenMark.from_doc(doc) if doc is not None else None
        self._cache[key] = (mark, now)
        return mark

    async def check(self, delivery: Delivery) -> BrokenMark | None:
        """The mark that makes ``delivery`` skip its target, or None (a mark that no longer holds
        for it is healed on the way)."""
        mark = await self._get(delivery.channel, delivery.target)
        if mark is None:
            return None
        plan = delivery.plan
        if plan is not None and mark.team_version and plan.team_version != mark.team_version:
            await self.heal(mark, "team_changed")
            return None
        if mark.channel == "line":
            group = await self._groups.find_one({"_id": mark.target})
            joined = _utc(group.get("joined_at")) if group is not None else None
            if (
                joined is not None
                and joined > mark.since
                and group is not None
                and group.get("in_group", True)
            ):
                await self.heal(mark, "bot_joined")
                return None
        return mark

    async def mark(self, delivery: Delivery, error: str, now: datetime) -> bool:
        """Mark ``delivery``'s target broken; True when this made the mark (and told the platform
        team), False when it was broken already."""
        plan = delivery.plan
        doc: Document = {
            "_id": mark_id(delivery.channel, delivery.target),
            "channel": delivery.channel,
            "target": delivery.target,
            "since": now,
            "error": error[:500],
            "team": plan.team if plan is not None else "",
            "team_version": plan.team_version if plan is not None else "",
            "delivery": delivery.id,
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            self._cache.pop(mark_id(delivery.channel, delivery.target), None)
            return False
        mark = BrokenMark.from_doc(doc)
        self._cache[mark_id(mark.channel, mark.target)] = (mark, asyncio.get_running_loop().time())
        log.error(
            "target_broken",
            channel=mark.channel,
            target=mark.target,
            team=mark.team,
            error=mark.error,
            claim=delivery.id,
        )
        await self._notify(mark)
        return True

    async def sent(self, channel: str, target: str) -> None:
        """A delivery to the target went through: a mark on it heals."""
        mark = await self._get(channel, target)
        if mark is not None:
            await self.heal(mark, "sent")

    async def heal(self, mark: BrokenMark, reason: str) -> None:
        await self._col.delete_one({"_id": mark_id(mark.channel, mark.target)})
        self._cache[mark_id(mark.channel, mark.target)] = (None, asyncio.get_running_loop().time())
        log.info(
            "target_healed",
            channel=mark.channel,
            target=mark.target,
            reason=reason,
            since=mark.since.isoformat(),
        )
