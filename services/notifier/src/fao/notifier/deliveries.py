"""Delivery records in ``deliveries``: the notifier's durable queue, one per (event, channel, target).

The notifier is the collection's only writer (and runs as one active instance: a lease).

- ``_id`` = ``"<event_id>:line:<group_id>"`` (the *claim id*). It is **inserted** when the event is
  handled, with the rendered message, so a redelivered event never makes a second delivery: the
  unique ``_id`` makes the insert atomic on MongoDB and on FerretDB alike (FerretDB applies
  ``find_one_and_update`` as an unlocked read-modify-write, so only an insert can be a claim).
- ``retry_key`` = ``uuid5(RETRY_KEY_NAMESPACE, claim_id)``: every try, by any process, sends the
  same ``X-Line-Retry-Key``, so LINE accepts the message at most once (for 24 h) and answers
  ``409`` to a repeat.
- ``status``: ``pending`` (recorded, never tried) → ``claimed`` (written *before* the first try:
  from then on the message may have reached LINE) → ``sent`` | ``outbox`` | ``failed_permanent``;
  or ``superseded`` (never sent, see ``plan_lane``); or ``unroutable`` (nowhere to send it); or
  ``digested`` (recorded as an item of its group's storm digest, ``digest`` = the digest's claim
  id: never sent alone; ``fao.notifier.digest``).
- ``kind`` (problem, escalation, acknowledged, fixed; report_resolved, digest) and ``at`` (the
  event's time) order an incident's messages; ``message`` holds what is sent (altText, plain
  text, Flex JSON).

Reads filter on ``status``/``target``/``incident_id`` (FerretDB scans; MongoDB uses the indexes);
every write goes through ``_id`` only, the one filter FerretDB pushes down.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal, cast
from uuid import UUID, uuid5

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.render import MessageKind, RenderedMessage
from fao.notifier.targets import TargetPlan
from fao.runtime.store import Document, IndexSpec
from fao.schemas import IncidentEvent

DELIVERIES: Final = "deliveries"
LINE: Final = "line"

# Fixed forever: changing it would change every retry key and allow duplicates within 24 h.
RETRY_KEY_NAMESPACE: Final = UUID("8d5f0c52-3b7e-4f0a-9a57-1e2c4b6d7f80")

DeliveryStatus = Literal[
    "pending",
    "claimed",
    "sent",
    "outbox",
    "failed_permanent",
    "superseded",
    "unroutable",
    "skipped_broken",
    "quota_exhausted",
    "digested",
]
UNDELIVERED_STATUSES: Final = ("pending", "claimed")
FINAL_STATUSES: Final[frozenset[str]] = frozenset(
    {"sent", "outbox", "failed_permanent", "superseded", "unroutable", "skipped_broken", "quota_exhausted"}
    # a digest item: the message goes in its group's digest (fao.notifier.digest), never alone
    | {"digested"}
)
# Final and the group has the message (or, without a token, it was kept for it in the outbox).
DELIVERED_STATUSES: Final[frozenset[str]] = frozenset({"sent", "outbox"})
# An incident's messages in their life order; a tie in ``at`` is broken by this.
KIND_RANK: Final[dict[str, int]] = {"problem": 0, "escalation": 1, "acknowledged": 2, "fixed": 3}

INDEXES: Final = [
    IndexSpec(DELIVERIES, [("incident_id", 1)]),
    IndexSpec(DELIVERIES, [("status", 1), ("target", 1)]),
]


def claim_id(event_id: UUID | str, target: str, channel: str = LINE) -> str:
    """``"<event_id>:<channel>:<target>"``: one delivery of one event to one target."""
    return f"{event_id}:{channel}:{target}"


def retry_key(claim: str) -> str:
    """The ``X-Line-Retry-Key`` of a claim: a UUID string, the same in every process, every time."""
    return str(uuid5(RETRY_KEY_NAMESPACE, claim))


@dataclass(frozen=True)
class Delivery:
    """One delivery record as read from (or written to) ``deliveries``."""

    id: str
    event_id: str
    incident_id: str
    event_type: str
    channel: str
    target: str
    retry_key: str
    status: str
    kind: str
    at: datetime
    created_at: datetime
    attempts: int = 0
    first_attempt_at: datetime | None = None
    message: RenderedMessage | None = None
    """None only in records of an older notifier (claimed before this version): the event's
    redelivery fills it in (``DeliveryStore.record``)."""
    plan: TargetPlan | None = None
    """Its team and fallbacks (``fao.notifier.targets``); None in an older notifier's records."""
    incident: Mapping[str, Any] | None = None
    """The incident's essentials (``targets.incident_summary``), for channels that send them."""

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def delivered(self) -> bool:
        return self.status in DELIVERED_STATUSES

    @property
    def tried(self) -> bool:
        """A try may have reached LINE: only an untried delivery can be dropped unseen."""
        return self.status != "pending"

    @property
    def order(self) -> tuple[bool, datetime, int, str]:
        """Its place among its incident's messages: by the event's time, problem before
        acknowledged before fixed at the same time, and a fixed message always last (an incident
        ends once)."""
        return (self.kind == "fixed", self.at, KIND_RANK.get(self.kind, 0), self.event_id)


@dataclass(frozen=True)
class LanePlan:
    """What to do next with one incident's deliveries to one group (``plan_lane``)."""

    supersede: tuple[tuple[Delivery, str], ...] = ()
    """Deliveries never to send, each with the reason."""
    send: Delivery | None = None
    """The one delivery to try now; None when nothing can be sent."""


def plan_lane(lane: Sequence[Delivery]) -> LanePlan:
    """The order rule for one (incident, group) lane; ``lane`` holds all its records, final or not.

    1. A group never gets an earlier message after a later one: a delivery ordered before one
       that was already delivered is superseded (it was recorded late, e.g. its event was
       redelivered after a later one).
    2. Of the rest, the earliest undelivered one is sent, and only once every earlier delivery
       of the lane is final.
    3. A ``fixed`` message makes the messages before it moot when none of them was ever tried:
       they are superseded and the ``fixed`` message (which says when the problem started and
       how long it lasted) is sent alone. A tried one may already be at LINE, so it is resolved
       first (its retry key makes a repeat harmless).
    """
    ordered = sorted(lane, key=lambda d: d.order)
    last_delivered = max((i for i, d in enumerate(ordered) if d.delivered), default=-1)
    supersede = [
        (d, "a later message of the incident was delivered first")
        for d in ordered[: max(last_delivered, 0)]
        if not d.final
    ]
    waiting = [d for d in ordered[last_delivered + 1 :] if not d.final]
    if not waiting:
        return LanePlan(tuple(supersede), None)
    last_fixed = max((i for i, d in enumerate(waiting) if d.kind == "fixed"), default=-1)
    if last_fixed > 0 and not any(d.tried for d in waiting[:last_fixed]):
        supersede += [(d, "the problem ended before this message was sent") for d in waiting[:last_fixed]]
        return LanePlan(tuple(supersede), waiting[last_fixed])
    return LanePlan(tuple(supersede), waiting[0])


def _message_doc(message: RenderedMessage) -> Document:
    return {
        "kind": message.kind,
        "alt_text": message.alt_text,
        "text": message.text,
        "flex": message.bubble_json() if message.bubble is not None else None,
    }


def _message_from_doc(doc: Mapping[str, Any] | None) -> RenderedMessage | None:
    if not doc:
        return None
    flex = doc.get("flex")
    return RenderedMessage(
        kind=cast(MessageKind, doc["kind"]),
        alt_text=doc["alt_text"],
        text=doc["text"],
        bubble=json.loads(flex) if flex else None,
    )


def delivery_from_doc(doc: Mapping[str, Any]) -> Delivery:
    message = _message_from_doc(doc.get("message"))
    created_at = doc.get("created_at") or doc["updated_at"]
    return Delivery(
        id=doc["_id"],
        event_id=doc["event_id"],
        incident_id=doc["incident_id"],
        event_type=doc["event_type"],
        channel=doc["channel"],
        target=doc["target"],
        retry_key=doc["retry_key"],
        status=doc["status"],
        kind=doc.get("kind") or (message.kind if message else ""),
        at=doc.get("at") or created_at,
        created_at=created_at,
        attempts=int(doc.get("attempts") or 0),
        first_attempt_at=doc.get("first_attempt_at"),
        message=message,
        plan=TargetPlan.from_doc(doc),
        incident=doc.get("incident"),
    )


class DeliveryStore:
    """The ``deliveries`` collection (FerretDB-safe: inserts and ``_id``-filtered updates only)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._col = db[DELIVERIES]

    async def record(
        self,
        event: IncidentEvent,
        target: str,
        message: RenderedMessage,
        now: datetime,
        channel: str = LINE,
        **extra: Any,
    ) -> tuple[Delivery, bool]:
        """Insert the ``pending`` delivery of ``event`` to ``target``; if it exists (a redelivered
        event), return it and False. A record of an older notifier gets its message filled in.
        ``extra`` fields are stored too (the target plan: ``TargetPlan.fields``)."""
        return await self.record_message(
            claim_id(event.event_id, target, channel),
            event_id=str(event.event_id),
            incident_id=event.incident.id,
            event_type=event.type,
            target=target,
            message=message,
            at=event.at,
            now=now,
            channel=channel,
            **extra,
        )

    async def record_message(
        self,
        cid: str,
        *,
        event_id: str,
        incident_id: str,
        event_type: str,
        target: str,
        message: RenderedMessage,
        at: datetime,
        now: datetime,
        channel: str = LINE,
        status: Literal["pending", "digested"] = "pending",
        **extra: Any,
    ) -> tuple[Delivery, bool]:
        """Insert a ``pending`` delivery with the claim id ``cid`` (unique: a second call records
        nothing and returns the first record and False). For messages that are not one incident
        event's (an escalation step, a digest), ``event_id`` and ``event_type`` name what caused
        it and ``cid`` is derived from that cause, so it is recorded once whoever records it."""
        doc: Document = {
            "_id": cid,
            "event_id": event_id,
            "incident_id": incident_id,
            "event_type": event_type,
            "channel": channel,
            "target": target,
            "status": status,
            "attempts": 0,
            "retry_key": retry_key(cid),
            "kind": message.kind,
            "at": at,
            "message": _message_doc(message),
            "created_at": now,
            "updated_at": now,
            **extra,
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._col.find_one({"_id": cid})
            if existing is None:  # deleted between insert and read: nothing else writes here
                raise
            if not existing.get("message"):
                fill = {"kind": message.kind, "at": at, "message": doc["message"]}
                await self._col.update_one({"_id": cid}, {"$set": fill})
                existing.update(fill)
            return delivery_from_doc(existing), False
        return delivery_from_doc(doc), True

    async def claim(self, delivery: Delivery, now: datetime) -> Delivery:
        """Mark ``delivery`` ``claimed`` before its first try (from now on it may reach LINE)."""
        await self._col.update_one(
            {"_id": delivery.id},
            {"$set": {"status": "claimed", "first_attempt_at": now, "updated_at": now}},
        )
        return replace(delivery, status="claimed", first_attempt_at=now)

    async def record_attempt(self, delivery: Delivery, now: datetime, error: str | None = None) -> None:
        """Count one failed try (informational: ``$inc`` is not atomic on FerretDB v1)."""
        update: dict[str, Any] = {"$inc": {"attempts": 1}, "$set": {"updated_at": now}}
        if error is not None:
            update["$set"]["last_error"] = error[:1000]
        await self._col.update_one({"_id": delivery.id}, update)

    async def finish(
        self,
        delivery: Delivery,
        status: DeliveryStatus,
        now: datetime,
        *,
        attempted: bool = True,
        **fields: Any,
    ) -> None:
        """Set the final ``status`` (with e.g. ``line_request_id``, ``sent_message_ids``, ``error``);
        ``attempted`` counts the try that led to it."""
        update: dict[str, Any] = {"$set": {"status": status, "updated_at": now, **fields}}
        if attempted:
            update["$inc"] = {"attempts": 1}
        await self._col.update_one({"_id": delivery.id}, update)

    async def annotate(self, delivery: Delivery, now: datetime, **fields: Any) -> None:
        """Set informational ``fields`` (e.g. ``fell_back``) without changing the status."""
        await self._col.update_one({"_id": delivery.id}, {"$set": {"updated_at": now, **fields}})

    async def undelivered(self, target: str | None = None) -> list[Delivery]:
        """Every delivery not final yet (to ``target`` only, if given), oldest first."""
        query: Document = {"status": {"$in": list(UNDELIVERED_STATUSES)}}
        if target is not None:
            query["target"] = target
        docs = await self._col.find(query).to_list()
        return sorted((delivery_from_doc(d) for d in docs), key=lambda d: (d.created_at, d.id))

    async def lane(self, incident_id: str, target: str) -> list[Delivery]:
        """Every delivery of one incident to one group, final or not."""
        docs = await self._col.find({"incident_id": incident_id, "target": target}).to_list()
        return [delivery_from_doc(d) for d in docs]

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
