"""Delivery records in ``deliveries``: claim before sending, so each message goes out once.

The notifier is the collection's only writer. One document per (event, channel, target):

- ``_id`` = ``"<event_id>:line:<group_id>"`` (the *claim id*). It is **inserted** before the send;
  the unique ``_id`` makes the insert an atomic claim on MongoDB and on FerretDB alike (FerretDB
  applies ``find_one_and_update`` as an unlocked read-modify-write, so it cannot be a claim).
- ``retry_key`` = ``uuid5(RETRY_KEY_NAMESPACE, claim_id)``: every replica and every redelivery of
  the event sends the same ``X-Line-Retry-Key``, so LINE accepts the message at most once (for 24 h)
  and answers ``409`` to a repeat.
- ``status``: ``claimed`` → ``sent`` | ``outbox`` | ``failed_permanent``; or ``unroutable`` (the
  system has no team or the team no group: recorded so nothing is silently lost).

When the insert finds the document already there, the claim is *taken over* if it is still
``claimed`` (an earlier handling died or gave up mid-send: send again with the same key) and
skipped if it is final. Later writes go through ``_id`` only, the one filter FerretDB pushes down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID, uuid5

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.runtime.store import Document, IndexSpec
from fao.schemas import IncidentEvent

DELIVERIES: Final = "deliveries"
LINE: Final = "line"

# Fixed forever: changing it would change every retry key and allow duplicates within 24 h.
RETRY_KEY_NAMESPACE: Final = UUID("8d5f0c52-3b7e-4f0a-9a57-1e2c4b6d7f80")

DeliveryStatus = Literal["claimed", "sent", "outbox", "failed_permanent", "unroutable"]
FINAL_STATUSES: Final[frozenset[str]] = frozenset({"sent", "outbox", "failed_permanent", "unroutable"})

INDEXES: Final = [IndexSpec(DELIVERIES, [("incident_id", 1)])]


def claim_id(event_id: UUID | str, target: str, channel: str = LINE) -> str:
    """``"<event_id>:<channel>:<target>"``: one delivery of one event to one target."""
    return f"{event_id}:{channel}:{target}"


def retry_key(claim: str) -> str:
    """The ``X-Line-Retry-Key`` of a claim: a UUID string, the same in every process, every time."""
    return str(uuid5(RETRY_KEY_NAMESPACE, claim))


@dataclass(frozen=True)
class Claim:
    """A delivery this handling may perform, or a record saying it was already done."""

    id: str
    event_id: str
    incident_id: str
    event_type: str
    channel: str
    target: str
    retry_key: str
    status: str
    taken_over: bool = False
    """True when the claim existed (still ``claimed``) and this handling continues it."""

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


class DeliveryStore:
    """The ``deliveries`` collection (FerretDB-safe: inserts and ``_id``-filtered updates only)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._col = db[DELIVERIES]

    async def claim(self, event: IncidentEvent, target: str, now: datetime, channel: str = LINE) -> Claim:
        """Insert the claim; if it exists, return it (``taken_over`` when it is still open)."""
        cid = claim_id(event.event_id, target, channel)
        doc: Document = {
            "_id": cid,
            "event_id": str(event.event_id),
            "incident_id": event.incident.id,
            "event_type": event.type,
            "channel": channel,
            "target": target,
            "status": "claimed",
            "attempts": 0,
            "retry_key": retry_key(cid),
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._col.find_one({"_id": cid})
            if existing is None:  # deleted between insert and read: nothing else writes here
                raise
            claim = _claim_from_doc(existing)
            return claim if claim.done else replace(claim, taken_over=True)
        return _claim_from_doc(doc)

    async def record_attempt(self, claim: Claim, now: datetime, error: str | None = None) -> None:
        """Count one send attempt (informational: ``$inc`` is not atomic on FerretDB v1)."""
        update: dict[str, Any] = {"$inc": {"attempts": 1}, "$set": {"updated_at": now}}
        if error is not None:
            update["$set"]["last_error"] = error[:1000]
        await self._col.update_one({"_id": claim.id}, update)

    async def finish(
        self, claim: Claim, status: DeliveryStatus, now: datetime, *, attempted: bool = True, **fields: Any
    ) -> None:
        """Set the final ``status`` (with e.g. ``line_request_id``, ``sent_message_ids``, ``error``);
        ``attempted`` counts the send that led to it."""
        update: dict[str, Any] = {"$set": {"status": status, "updated_at": now, **fields}}
        if attempted:
            update["$inc"] = {"attempts": 1}
        await self._col.update_one({"_id": claim.id}, update)

    async def record_unroutable(self, event: IncidentEvent, problem: str, now: datetime) -> bool:
        """Record that ``event`` had nowhere to go; False when it was recorded before."""
        cid = claim_id(event.event_id, "-", "unroutable")
        try:
            await self._col.insert_one(
                {
                    "_id": cid,
                    "event_id": str(event.event_id),
                    "incident_id": event.incident.id,
                    "event_type": event.type,
                    "channel": LINE,
                    "target": None,
                    "status": "unroutable",
                    "attempts": 0,
                    "retry_key": None,
                    "error": problem,
                    "system_id": event.incident.system_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def get(self, cid: str) -> Document | None:
        return await self._col.find_one({"_id": cid})


def _claim_from_doc(doc: Mapping[str, Any]) -> Claim:
    return Claim(
        id=doc["_id"],
        event_id=doc["event_id"],
        incident_id=doc["incident_id"],
        event_type=doc["event_type"],
        channel=doc["channel"],
        target=doc["target"],
        retry_key=doc["retry_key"],
        status=doc["status"],
    )
