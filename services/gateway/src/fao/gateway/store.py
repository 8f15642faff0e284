"""The gateway's MongoDB collections (it is their only writer) and what it reads of others'.

Written (docs/contracts.md, "Gateway collections"):

- ``line_webhook_events``: one document per webhook event id, inserted *before* the event is
  acted on (a unique ``_id``: a replay or a redelivery finds it and has no second effect);
  forgotten after ``FAO_WEBHOOK_EVENT_RETENTION`` by the housekeeping (FerretDB has no TTL index);
- ``line_groups``: the groups and rooms the bot is (or was) in, from join/leave/member events;
- ``oa_pending_reports``: an Official Account report waiting for the user to pick a system;
- ``oa_reports``: one per report sent to the correlator: who reported (LINE user id), its
  reference and, once the correlator applied it, the incident it opened or joined;
- ``oa_rate_slots``: the per-user report limit, one unique slot per report in a time window.

Read: ``people``, ``teams``, ``systems`` (``fao apply``), ``incidents`` and ``incident_timeline``
(the correlator).

FerretDB-safe: no transactions, no TTL index; every "exactly once" is a unique ``_id`` insert.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.gateway.events import WebhookEvent
from fao.runtime.inventory import PEOPLE, SYSTEMS, TEAMS, from_doc
from fao.runtime.store import Document, IndexSpec
from fao.schemas import Incident, Person, System, Team

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)

EVENTS: Final = "line_webhook_events"
GROUPS: Final = "line_groups"
PENDING: Final = "oa_pending_reports"
REPORTS: Final = "oa_reports"
RATE_SLOTS: Final = "oa_rate_slots"
# Written by the correlator.
INCIDENTS: Final = "incidents"
TIMELINE: Final = "incident_timeline"

INDEXES = [
    IndexSpec(EVENTS, [("received_at", 1)]),
    IndexSpec(REPORTS, [("incident_id", 1)]),
    IndexSpec(PENDING, [("created_at", 1)]),
    IndexSpec(RATE_SLOTS, [("at", 1)]),
]


@dataclass(frozen=True)
class PendingReport:
    id: str
    user_id: str
    text: str
    created_at: datetime
    person: str | None
    """The name of a known person (config ``people``) who reported, else None (a citizen)."""


def _models(kind: type[M], docs: list[Document]) -> list[M]:
    out: list[M] = []
    for doc in docs:
        try:
            out.append(from_doc(kind, doc))
        except ValidationError as exc:
            log.warning(
                "inventory_document_invalid", kind=kind.__name__, id=doc.get("_id"), error=str(exc)[:300]
            )
    return out


class GatewayStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    # --- webhook events -------------------------------------------------------------------

    async def claim_event(self, event: WebhookEvent, now: datetime) -> bool:
        """Record ``event`` as seen; False when it was already (a replay or a redelivery)."""
        doc = {
            "_id": event.event_id,
            "type": event.type,
            "at": event.at,
            "received_at": now,
            "redelivery": event.redelivery,
            "mode": event.mode,
            "chat_id": event.source.chat_id if event.source else None,
        }
        try:
            await self.db[EVENTS].insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def release_event(self, event_id: str) -> None:
        """Forget a claim whose effect could not be made durable, so a redelivery tries again."""
        await self.db[EVENTS].delete_one({"_id": event_id})

    async def forget_old(self, now: datetime, retention: timedelta, slot_age: timedelta) -> int:
        events = await self.db[EVENTS].delete_many({"received_at": {"$lt": now - retention}})
        slots = await self.db[RATE_SLOTS].delete_many({"at": {"$lt": now - slot_age}})
        return int(events.deleted_count + slots.deleted_count)

    # --- inventory and incidents (read only) -------------------------------------------------

    async def person_by_line_user(self, user_id: str) -> Person | None:
        people = _models(Person, await self.db[PEOPLE].find({"line_user_id": user_id}).to_list())
        return people[0] if people else None

    async def incident(self, incident_id: str) -> Incident | None:
        doc = await self.db[INCIDENTS].find_one({"_id": incident_id})
        if doc is None:
            return None
        try:
            return Incident.model_validate({k: v for k, v in doc.items() if k != "_id"})
        except ValidationError as exc:
            log.warning("incident_document_invalid", id=incident_id, error=str(exc)[:300])
            return None

    async def open_incidents(self) -> list[Incident]:
        docs = await self.db[INCIDENTS].find({"status": {"$ne": "resolved"}}).to_list()
        out: list[Incident] = []
        for doc in docs:
            try:
                out.append(Incident.model_validate({k: v for k, v in doc.items() if k != "_id"}))
            except ValidationError:
                log.warning("incident_document_invalid", id=doc.get("_id"))
        return out

    async def open_incident_of(self, system_id: str) -> Incident | None:
        """The newest incident of ``system_id`` that is not resolved, if any."""
        incidents = [i for i in await self.open_incidents() if i.system_id == system_id]
        return max(incidents, key=lambda i: i.started_at, default=None)

    async def system(self, system_id: str) -> System | None:
        doc = await self.db[SYSTEMS].find_one({"_id": system_id})
        models = _models(System, [doc]) if doc is not None else []
        return models[0] if models else None

    async def systems(self) -> dict[str, System]:
        return {s.id: s for s in _models(System, await self.db[SYSTEMS].find({}).to_list())}

    async def teams(self) -> list[Team]:
        return _models(Team, await self.db[TEAMS].find({}).to_list())

    async def incident_of_event(self, event_id: str) -> str | None:
        """The incident of the correlator's event ``event_id`` (its timeline entry), once applied."""
        doc = await self.db[TIMELINE].find_one({"_id": event_id})
        incident = doc.get("incident_id") if doc is not None else None
        return str(incident) if incident else None

    # --- groups -------------------------------------------------------------------------------

    async def record_membership(
        self, chat_id: str, kind: str, joined: bool, at: datetime, now: datetime, *, observed: bool = False
    ) -> bool:
        """The bot joined (or left) ``chat_id`` at ``at`` (``observed``: it was merely seen there,
        so no join time is known); an older fact than the one stored is ignored (LINE does not
        promise order). True when this changed the record."""
        change: dict[str, Any] = {"kind": kind, "in_group": joined, "membership_at": at, "updated_at": now}
        if not observed:
            change["joined_at" if joined else "left_at"] = at
        newer = await self.db[GROUPS].update_one(
            {"_id": chat_id, "membership_at": {"$lt": at}}, {"$set": change}
        )
        if newer.matched_count:
            return True
        try:
            await self.db[GROUPS].insert_one(
                {"_id": chat_id, "name": None, "member_count": None, "joined_at": None, "left_at": None}
                | change
            )
        except DuplicateKeyError:
            return False  # a newer (or the same) fact is recorded already
        return True

    async def seen_in(self, chat_id: str, kind: str, at: datetime, now: datetime) -> bool:
        """An event came from ``chat_id``, so the bot is in it: recorded when the group is not
        known yet (a group joined before the gateway ran). True when it was new."""
        if await self.db[GROUPS].find_one({"_id": chat_id}) is not None:
            return False
        return await self.record_membership(chat_id, kind, True, at, now, observed=True)

    async def set_group_details(
        self, chat_id: str, name: str | None, members: int | None, now: datetime
    ) -> None:
        update: dict[str, Any] = {"details_at": now}
        if name is not None:
            update["name"] = name
        if members is not None:
            update["member_count"] = members
        await self.db[GROUPS].update_one({"_id": chat_id}, {"$set": update})

    # --- Official Account reports -----------------------------------------------------------------

    async def take_rate_slot(self, user_id: str, now: datetime, limit: int, window: timedelta) -> bool:
        """One of the ``limit`` report slots of ``user_id`` in the current window, or False when
        all are taken. Unique ``_id`` inserts: exact with any number of gateway replicas."""
        seconds = window.total_seconds()
        start = int(now.timestamp() // seconds * seconds)
        for slot in range(limit):
            try:
                await self.db[RATE_SLOTS].insert_one(
                    {"_id": f"{user_id}|{start}|{slot}", "user_id": user_id, "at": now}
                )
            except DuplicateKeyError:
                continue
            return True
        return False

    async def save_pending(self, report: PendingReport) -> None:
        doc = {
            "_id": report.id,
            "user_id": report.user_id,
            "text": report.text,
            "created_at": report.created_at,
            "person": report.person,
        }
        with contextlib.suppress(DuplicateKeyError):  # the same event, saved before a crash
            await self.db[PENDING].insert_one(doc)

    async def pending(self, report_id: str) -> PendingReport | None:
        doc = await self.db[PENDING].find_one({"_id": report_id})
        return _pending(doc) if doc is not None else None

    async def expired_pending(self, before: datetime) -> list[PendingReport]:
        return [
            _pending(doc) for doc in await self.db[PENDING].find({"created_at": {"$lt": before}}).to_list()
        ]

    async def drop_pending(self, report_id: str) -> None:
        await self.db[PENDING].delete_one({"_id": report_id})

    async def add_report(
        self,
        *,
        reference: str,
        report_id: str,
        user_id: str,
        command_id: str,
        system_id: str | None,
        incident_id: str | None,
        now: datetime,
    ) -> None:
        """``incident_id``: known when the report is a note on it; else filled in later."""
        doc = {
            "_id": reference,
            "reference": reference,
            "incident_id": incident_id,
            "user_id": user_id,
            "created_at": now,
            "report_id": report_id,
            "command_id": command_id,
            "system_id": system_id,
        }
        # a duplicate: the same report, recorded by another replica or before a crash
        with contextlib.suppress(DuplicateKeyError):
            await self.db[REPORTS].insert_one(doc)

    async def report_by_report_id(self, report_id: str) -> Document | None:
        return await self.db[REPORTS].find_one({"report_id": report_id})

    async def unlinked_reports(self, since: datetime) -> list[Document]:
        return await self.db[REPORTS].find({"incident_id": None, "created_at": {"$gte": since}}).to_list()

    async def link_report(self, reference: str, incident_id: str) -> None:
        await self.db[REPORTS].update_one({"_id": reference}, {"$set": {"incident_id": incident_id}})


def _pending(doc: Document) -> PendingReport:
    return PendingReport(
        id=str(doc["_id"]),
        user_id=str(doc["user_id"]),
        text=str(doc["text"]),
        created_at=doc["created_at"],
        person=doc.get("person"),
    )
