"""The correlator's durable state (it is the only writer):

- the ``fao-monitor-state`` KV bucket: one ``MonitorState`` per monitor (``fao.runtime.states``:
  its document in BSON). Not a MongoDB collection since 1.3: a storm changes thousands of states
  within seconds, and FerretDB's SQLite backend rewrites a changed document in time proportional
  to the collection (≈65 ms a write at 10,000 documents, measured), where a KV put is one
  JetStream publish (many in flight at once). A deployment that kept them in MongoDB has them
  moved at the first start (``all_states``);
- ``incidents``: one document per incident (the ``Incident`` model plus ``_id``); an incident new
  to the store is inserted (cheap on FerretDB), one already there replaced;
- ``incident_timeline``: one entry per incident event (what happened, who did it), so an
  incident's history — with the dependants suppressed under it — is one query;
- ``commands_applied``: the id of every command applied, so a redelivered command is a no-op;
- ``correlator_journal``: the commit point of a decision that touches more than one document.

There are no transactions across these, so a decision that changes several documents is first
written as *one* journal document (atomic), then applied document by document (every write is an
idempotent put, replace or insert by ``_id``) and its events published (deterministic
``Nats-Msg-Id``), then the journal entry is deleted. A crash in between is finished at start-up or
before the next message, so a decision is either never seen or seen whole, and no event is lost
or published twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from uuid import UUID

import bson
import structlog
from bson.binary import Binary
from bson.codec_options import CodecOptions
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.kv import KeyValue
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from fao.correlator.monitor_state import MonitorState
from fao.correlator.policy import Outcome
from fao.runtime.inventory import MONITORS, SYSTEMS, from_doc
from fao.runtime.states import encode, state_docs
from fao.runtime.store import Document, IndexSpec
from fao.schemas import CommandRejected, Incident, IncidentEvent, Monitor, System
from fao.schemas.subjects import STATE_BUCKET, state_key

log = structlog.get_logger()

STATE = "monitor_state"  # where MongoDB kept the states before 1.3 (moved to the KV bucket)
INCIDENTS = "incidents"
TIMELINE = "incident_timeline"
COMMANDS = "commands_applied"
JOURNAL = "correlator_journal"
DUPLICATE_KEY = 11000
# Inserts go in chunks of this many documents (one command each).
BULK_CHUNK = 50
JOURNAL_CODEC: CodecOptions[Document] = CodecOptions(tz_aware=True, tzinfo=UTC)
# Up to this many existing incidents are replaced one by one; more, by one delete and inserts.
REPLACE_ONE_BY_ONE = 8
# How long a bulk write of states may wait for the server's acknowledgements.
PUTS_TIMEOUT = 10.0

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
        """The journal document: the entry as one BSON blob (``entry``). FerretDB stores a nested
        document field by field and reads every field back for any delete: a 256-state entry took
        25 ms to insert and 86 ms to delete nested, 3.6 and 6 ms as one blob (measured)."""
        body = {
            "states": [s.to_doc() for s in self.states],
            "incidents": [incident_doc(i) for i in self.incidents],
            "events": [e.model_dump(mode="json") for e in self.events],
            "rejections": [r.model_dump(mode="json") for r in self.rejections],
            "command_id": str(self.command_id) if self.command_id else None,
        }
        return {"_id": self.id, "entry": Binary(bson.encode(body))}

    @classmethod
    def from_doc(cls, doc: Document) -> JournalEntry:
        """Read a journal document (a blob, or the nested layout of 1.2 and before)."""
        body: Document = bson.decode(doc["entry"], codec_options=JOURNAL_CODEC) if "entry" in doc else doc
        return cls(
            id=doc["_id"],
            states=tuple(MonitorState.from_doc(s) for s in body["states"]),
            incidents=tuple(incident_from_doc(i) for i in body["incidents"]),
            events=tuple(IncidentEvent.model_validate(e) for e in body["events"]),
            rejections=tuple(CommandRejected.model_validate(r) for r in body["rejections"]),
            command_id=UUID(body["command_id"]) if body.get("command_id") else None,
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
    """MongoDB and the state bucket for the correlator (FerretDB-safe: no transactions, only
    ``_id`` keys)."""

    def __init__(self, db: AsyncDatabase[Document], js: JetStreamContext, states: KeyValue) -> None:
        self._db = db
        self._js = js
        self._states = states
        # Incidents known to be in MongoDB (loaded, or written by this process): replaced; the
        # others are inserted. Resolved ones are forgotten (a later note replaces after the insert
        # finds it there).
        self._stored_incidents: set[str] = set()

    async def save_states(self, states: list[MonitorState]) -> None:
        """Write many monitor states; safe to repeat. Returns once the server has acknowledged
        every put, raises if any failed or went unanswered for ``PUTS_TIMEOUT`` seconds. The puts
        are pipelined (``publish_async``: one publish each, the acknowledgements gathered at the
        end) — a storm writes tens of thousands; one request-reply per put cost ≈100 µs of CPU
        each."""
        if len(states) == 1:
            await self.save_state(states[0])
            return
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for state in states:
                subject = f"$KV.{STATE_BUCKET}.{state_key(state.monitor_id)}"
                acks.append(
                    await self._js.publish_async(subject, encode(state.to_doc()), wait_stall=PUTS_TIMEOUT)
                )
            async with asyncio.timeout(PUTS_TIMEOUT):
                await asyncio.gather(*acks)
        finally:
            for ack in acks:
                ack.cancel()  # only those still unanswered (a failure): forgotten, not left pending

    async def save_state(self, state: MonitorState) -> None:
        await self._states.put(state_key(state.monitor_id), encode(state.to_doc()))

    async def all_states(self) -> list[MonitorState]:
        """Every stored state; a deployment whose states are still in MongoDB has them moved to the
        bucket first (then the collection is dropped, so nothing reads the old copy)."""
        docs = await state_docs(self._js)
        if not docs:
            old = await self._db[STATE].find({}).to_list()
            if old:
                moved = [MonitorState.from_doc(doc) for doc in old]
                await self.save_states(moved)
                await self._db.drop_collection(STATE)
                log.warning("monitor_states_moved", count=len(moved), to="kv bucket fao-monitor-state")
                return moved
        states: list[MonitorState] = []
        for monitor_id, doc in docs.items():
            try:
                states.append(MonitorState.from_doc({**doc, "_id": monitor_id}))
            except ValidationError as exc:  # one bad value: that monitor starts afresh
                log.error("monitor_state_invalid", monitor=monitor_id, error=str(exc).splitlines()[0])
        return states

    async def open_incidents(self) -> list[Incident]:
        docs = await self._db[INCIDENTS].find({"status": {"$ne": "resolved"}}).to_list()
        self._stored_incidents.update(str(doc["_id"]) for doc in docs)
        return [incident_from_doc(doc) for doc in docs]

    async def get_incident(self, incident_id: str) -> Incident | None:
        doc = await self._db[INCIDENTS].find_one({"_id": incident_id})
        if doc is None:
            return None
        self._stored_incidents.add(incident_id)
        return incident_from_doc(doc)

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
        await self.save_states(list(entry.states))
        await self._write_incidents(entry.incidents)
        await self._insert(TIMELINE, [timeline_doc(e) for e in entry.events])
        if entry.command_id is not None:
            await self._insert(COMMANDS, [{"_id": str(entry.command_id)}])

    async def done(self, entry: JournalEntry) -> None:
        await self._db[JOURNAL].delete_one({"_id": entry.id})

    async def _write_incidents(self, incidents: Iterable[Incident]) -> None:
        """Insert the incidents new to the store (one command per chunk); replace the others (and
        any the insert found there already: a decision applied again after a crash) — one by one
        when they are few, else all at once by one delete and inserts: FerretDB's SQLite backend
        scans the collection for each replace and once for a delete of many (measured at 1,000
        incidents: 50 replaces 285 ms, one delete of 50 and their inserts 47 ms). Between that
        delete and the inserts a reader may not find them for a moment; a crash there is repaired
        from the journal, like any other partly applied entry."""
        incidents = list(incidents)
        fresh = [i for i in incidents if i.id not in self._stored_incidents]
        known = [i for i in incidents if i.id in self._stored_incidents]
        there = await self._insert(INCIDENTS, [incident_doc(i) for i in fresh])
        replace = [*known, *(i for i in fresh if i.id in there)]
        if len(replace) > REPLACE_ONE_BY_ONE:
            await self._db[INCIDENTS].delete_many({"_id": {"$in": [i.id for i in replace]}})
            await self._insert(INCIDENTS, [incident_doc(i) for i in replace])
        else:
            for incident in replace:
                await self._db[INCIDENTS].replace_one(
                    {"_id": incident.id}, incident_doc(incident), upsert=True
                )
        for incident in incidents:
            if incident.status == "resolved":
                self._stored_incidents.discard(incident.id)
            else:
                self._stored_incidents.add(incident.id)

    async def _insert(self, collection: str, docs: Iterable[Document]) -> set[str]:
        """Insert ``docs`` (in chunks); the ids of those already there (an earlier attempt)."""
        batch = list(docs)
        there: set[str] = set()
        for start in range(0, len(batch), BULK_CHUNK):
            chunk = batch[start : start + BULK_CHUNK]
            try:
                await self._db[collection].insert_many(chunk, ordered=False)
            except BulkWriteError as exc:  # already there from an earlier attempt: fine
                errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                if all(isinstance(e.get("index"), int) for e in errors):
                    there.update(str(chunk[e["index"]]["_id"]) for e in errors)
                else:  # which ones is not said: treat them all as there (replaced after)
                    there.update(str(d["_id"]) for d in chunk)
            except DuplicateKeyError:
                there.update(str(d["_id"]) for d in chunk)
        return there
