"""The correlator's collections (it is their only writer):

- ``monitor_state``: one ``MonitorState`` per monitor;
- ``incidents``: one document per incident (the ``Incident`` model plus ``_id``);
- ``incident_timeline``: one entry per incident event (what happened, who did it), so an
  incident's history — with the dependants suppressed under it — is one query;
- ``commands_applied``: the id of every command applied, so a redelivered command is a no-op;
- ``correlator_journal``: the commit point of a decision that touches more than one document.

FerretDB has no multi-document transactions, so a decision that changes several documents is
first written as *one* journal document (atomic), then applied document by document (every write
is an idempotent replace or insert by ``_id``) and its events published (deterministic
``Nats-Msg-Id``), then the journal entry is deleted. A crash in between is finished at start-up
or before the next message, so a decision is either never seen or seen whole, and no event is
lost or published twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from fao.correlator.monitor_state import MonitorState
from fao.correlator.policy import Outcome
from fao.runtime.inventory import MONITORS, SYSTEMS, from_doc
from fao.runtime.store import Document, IndexSpec
from fao.schemas import CommandRejected, Incident, IncidentEvent, Monitor, System

STATE = "monitor_state"
INCIDENTS = "incidents"
TIMELINE = "incident_timeline"
COMMANDS = "commands_applied"
JOURNAL = "correlator_journal"
DUPLICATE_KEY = 11000
# FerretDB v1.24.2 hangs (seen here: no answer within 60 s) on one ``update`` command that replaces
# more than about 100 existing documents; 80 took 0.14 s. Bulk writes go in chunks well below.
BULK_CHUNK = 50

INDEXES = [
    IndexSpec(INCIDENTS, [("system_id", 1), ("started_at", -1)]),
    IndexSpec(INCIDENTS, [("status", 1)]),
    IndexSpec(TIMELINE, [("incident_id", 1), ("at", 1)]),
]


@dataclass(frozen=True)
class JournalEntry:
    """A committed decision, as written to the journal."""

    id: str
    states: tuple[MonitorState, ...]
    incidents: tuple[Incident, ...]
    events: tuple[IncidentEvent, ...]
    rejections: tuple[CommandRejected, ...]
    command_id: UUID | None

    def to_doc(self) -> Document:
        return {
            "_id": self.id,
            "states": [s.to_doc() for s in self.states],
            "incidents": [incident_doc(i) for i in self.incidents],
            "events": [e.model_dump(mode="json") for e in self.events],
            "rejections": [r.model_dump(mode="json") for r in self.rejections],
            "command_id": str(self.command_id) if self.command_id else None,
        }

    @classmethod
    def from_doc(cls, doc: Document) -> JournalEntry:
        return cls(
            id=doc["_id"],
            states=tuple(MonitorState.from_doc(s) for s in doc["states"]),
            incidents=tuple(incident_from_doc(i) for i in doc["incidents"]),
            events=tuple(IncidentEvent.model_validate(e) for e in doc["events"]),
            rejections=tuple(CommandRejected.model_validate(r) for r in doc["rejections"]),
            command_id=UUID(doc["command_id"]) if doc.get("command_id") else None,
        )

    @classmethod
    def of(cls, outcome: Outcome) -> JournalEntry:
        return cls(
            id=f"{time.time_ns():020d}",
            states=tuple(outcome.states.values()),
            incidents=tuple(outcome.incidents.values()),
            events=tuple(outcome.events),
            rejections=tuple(outcome.rejections),
            command_id=outcome.command_id,
        )


def incident_doc(incident: Incident) -> Document:
    return {"_id": incident.id, **incident.model_dump(mode="python")}


def incident_from_doc(doc: Document) -> Incident:
    return Incident.model_validate({k: v for k, v in doc.items() if k != "_id"})


def timeline_doc(event: IncidentEvent) -> Document:
    incident = event.incident
    return {
        "_id": str(event.event_id),
        "incident_id": incident.id,
        "parent_incident_id": incident.parent_incident_id if event.type == "suppressed" else None,
        "system_id": incident.system_id,
        "at": event.at,
        "type": event.type,
        "actor": event.actor or "fao",
        "text": event.text,
    }


class CorrelatorStore:
    """MongoDB adapter for the correlator (FerretDB-safe: no transactions, only ``_id`` keys)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def save_states(self, states: list[MonitorState]) -> None:
        """Write many monitor states (bulk, in chunks of ``BULK_CHUNK``); safe to repeat."""
        await self._replace(STATE, [state.to_doc() for state in states])

    async def save_state(self, state: MonitorState) -> None:
        await self._db[STATE].replace_one({"_id": state.monitor_id}, state.to_doc(), upsert=True)

    async def all_states(self) -> list[MonitorState]:
        return [MonitorState.from_doc(doc) for doc in await self._db[STATE].find({}).to_list()]

    async def open_incidents(self) -> list[Incident]:
        docs = await self._db[INCIDENTS].find({"status": {"$ne": "resolved"}}).to_list()
        return [incident_from_doc(doc) for doc in docs]

    async def get_incident(self, incident_id: str) -> Incident | None:
        doc = await self._db[INCIDENTS].find_one({"_id": incident_id})
        return incident_from_doc(doc) if doc is not None else None

    async def systems(self) -> list[System]:
        return [from_doc(System, doc) for doc in await self._db[SYSTEMS].find({}).to_list()]

    async def applied_monitors(self) -> dict[str, Monitor | None]:
        """The monitors ``fao apply`` wrote to MongoDB (None for a document that is not valid)."""
        out: dict[str, Monitor | None] = {}
        for doc in await self._db[MONITORS].find({}).to_list():
            try:
                out[str(doc["_id"])] = from_doc(Monitor, doc)
            except ValidationError:
                out[str(doc["_id"])] = None
        return out

    async def command_applied(self, command_id: UUID) -> bool:
        return await self._db[COMMANDS].find_one({"_id": str(command_id)}) is not None

    async def journal(self) -> list[JournalEntry]:
        docs = await self._db[JOURNAL].find({}).sort("_id", 1).to_list()
        return [JournalEntry.from_doc(doc) for doc in docs]

    async def append(self, entry: JournalEntry) -> None:
        await self._db[JOURNAL].insert_one(entry.to_doc())

    async def write(self, entry: JournalEntry) -> None:
        """Apply a journal entry's documents; every write is safe to repeat."""
        await self._replace(STATE, [s.to_doc() for s in entry.states])
        await self._replace(INCIDENTS, [incident_doc(i) for i in entry.incidents])
        await self._insert(TIMELINE, [timeline_doc(e) for e in entry.events])
        if entry.command_id is not None:
            await self._insert(COMMANDS, [{"_id": str(entry.command_id)}])

    async def done(self, entry: JournalEntry) -> None:
        await self._db[JOURNAL].delete_one({"_id": entry.id})

    async def _replace(self, collection: str, docs: list[Document]) -> None:
        for start in range(0, len(docs), BULK_CHUNK):
            chunk = docs[start : start + BULK_CHUNK]
            await self._db[collection].bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk], ordered=False
            )

    async def _insert(self, collection: str, docs: Iterable[Document]) -> None:
        batch = list(docs)
        for start in range(0, len(batch), BULK_CHUNK):
            try:
                await self._db[collection].insert_many(batch[start : start + BULK_CHUNK], ordered=False)
            except BulkWriteError as exc:  # already there from an earlier attempt: fine
                errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
            except DuplicateKeyError:
                pass
