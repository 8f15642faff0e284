"""Answers to the quarterly owner review: "ยืนยัน" / "ต้องแก้ไข" from a team's LINE group.

The notifier's review message (``fao.notifier.review``) carries postback buttons
``action=review_ok|review_fix&team=<id>&round=<round>``. Who tapped must be a known person (config
``people``, by LINE user id) whose ``teams`` include that team (``membership.is_member``);
anyone else, and a tap without a user id, gets a polite Thai reply and nothing is recorded. A
member's answer is recorded in ``owner_reviews`` (``_id`` ``"<round>:<team>"``: status
``confirmed`` | ``needs_changes``, ``by`` = the person's id, ``at`` = the tap's time;
``fao.runtime.owner_review``); the latest tap wins, whatever order LINE delivers them in. Each
answer recorded is also an audit entry (``fao.gateway.line_audit``: source ``line``, actor the
person's id, action ``review.confirmed`` | ``review.needs_changes``, the document before and
after; a failed write is a warning, the answer stands); a late tap that changes nothing is not. The
reply (a reply message: free of quota) thanks them, or says what to do for a change: edit the
config files and ``fao apply``, or ask the platform team.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from pymongo.errors import DuplicateKeyError

from fao.gateway import line_audit
from fao.gateway.events import WebhookEvent
from fao.gateway.line_api import FollowUp, LineApi
from fao.gateway.membership import is_member
from fao.gateway.postback import ReviewAnswer
from fao.gateway.replies import Replies
from fao.gateway.store import GatewayStore
from fao.runtime import audit
from fao.runtime.owner_review import REVIEWS, ReviewStatus, review_id

log = structlog.get_logger()


class OwnerReviews:
    def __init__(self, store: GatewayStore, line: LineApi, replies: Replies) -> None:
        self._store = store
        self._line = line
        self._replies = replies

    def _reply(self, event: WebhookEvent, key: str, **values: object) -> list[FollowUp]:
        token = event.reply_token
        if token is None:
            return []
        text = self._replies.text(key, **values)
        return [lambda: self._line.reply(token, text)]

    async def on_answer(self, event: WebhookEvent, answer: ReviewAnswer, now: datetime) -> list[FollowUp]:
        user_id = event.source.user_id if event.source is not None else None
        if user_id is None:
            log.info("owner_review_refused", reason="no user id", team=answer.team_id, round=answer.round_id)
            return self._reply(event, "review_no_user_id")
        person = await self._store.person_by_line_user(user_id)
        if person is None or not is_member(person, answer.team_id):
            log.info(
                "owner_review_refused", reason="not a member of the team", user=user_id,
                person=person.id if person else None, team=answer.team_id, round=answer.round_id,
            )  # fmt: skip
            return self._reply(event, "review_not_member")
        status: ReviewStatus = "confirmed" if answer.ok else "needs_changes"
        latest = await self._record(answer, status, person.id, event.at, now)
        log.info(
            "owner_review_answered", team=answer.team_id, round=answer.round_id, status=status,
            person=person.id, latest=latest,
        )  # fmt: skip
        team = next((t for t in await self._store.teams() if t.id == answer.team_id), None)
        values = {
            "name": person.name,
            "team": team.name if team else answer.team_id,
            "round": answer.round_id,
        }
        return self._reply(event, "review_confirmed" if answer.ok else "review_needs_changes", **values)

    async def _record(
        self, answer: ReviewAnswer, status: ReviewStatus, person_id: str, at: datetime, now: datetime
    ) -> bool:
        """Record the answer unless a later one is recorded already, with its audit entry; True
        when it is the latest."""
        key = review_id(answer.round_id, answer.team_id)
        fields = {
            "round": answer.round_id, "team": answer.team_id, "status": status, "by": person_id,
            "at": at, "recorded_at": now,
        }  # fmt: skip
        db = self._store.db
        before = await db[REVIEWS].find_one({"_id": key})
        try:
            await db[REVIEWS].insert_one({"_id": key, **fields})
        except DuplicateKeyError:
            result = await db[REVIEWS].update_one({"_id": key, "at": {"$lte": at}}, {"$set": fields})
            if result.matched_count == 0:
                return False
        change = audit.Change(
            REVIEWS, key, "add" if before is None else "change", before, {"_id": key, **fields}
        )
        await line_audit.record(
            db, at=now, actor=person_id, action=f"review.{status}", changes=[change],
            round=answer.round_id, team=answer.team_id,
        )  # fmt: skip
        return True
