"""The correlator's collections: ``monitor_state`` and ``incidents`` (it is their only writer).

Only ``_id`` lookups and ``_id``-keyed writes: the one shape FerretDB pushes down to SQLite, and
atomic on both FerretDB and MongoDB.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from fao.correlator.state_machine import MonitorState, Sample
from fao.runtime.inventory import SYSTEMS, from_doc
from fao.runtime.store import Document, IndexSpec
from fao.schemas import Incident, IncidentEvent, System

STATE = "monitor_state"
INCIDENTS = "incidents"

INDEXES = [
    IndexSpec(INCIDENTS, [("system_id", 1), ("started_at", -1)]),
    IndexSpec(INCIDENTS, [("status", 1)]),
]


@dataclass(frozen=True)
class StoredState:
    """A monitor's state plus what the correlator keeps next to it in the same document."""

    state: MonitorState
    system_id: str = ""
    open_incident_id: str | None = None
    # Events of a committed transition not yet written/published (see app.py).
    pending: tuple[IncidentEvent, ...] = ()


def state_to_doc(stored: StoredState) -> Document:
    state = stored.state
    return {
        "_id": state.monitor_id,
        "status": state.status,
        "window": [{"ok": s.ok, "at": s.at, "detail": s.detail} for s in state.window],
        "ok_streak": state.ok_streak,
        "ok_since": state.ok_since,
        "down_since": state.down_since,
        "cause": state.cause,
        "applied": [{"source": k, "at": v} for k, v in state.applied.items()],
        "system_id": stored.system_id,
        "open_incident_id": stored.open_incident_id,
        "pending": [e.model_dump(mode="json") for e in stored.pending],
    }


def state_from_doc(doc: Document) -> StoredState:
    state = MonitorState(
        monitor_id=doc["_id"],
        status=doc["status"],
        window=tuple(Sample(s["ok"], s["at"], s.get("detail", "")) for s in doc.get("window", [])),
        ok_streak=doc.get("ok_streak", 0),
        ok_since=doc.get("ok_since"),
        down_since=doc.get("down_since"),
        cause=doc.get("cause", ""),
        applied={a["source"]: a["at"] for a in doc.get("applied", [])},
    )
    pending = tuple(IncidentEvent.model_validate(e) for e in doc.get("pending", []))
    return StoredState(state, doc.get("system_id", ""), doc.get("open_incident_id"), pending)


class CorrelatorStore:
    """MongoDB adapter for the correlator (FerretDB-safe: no transactions, no find_one_and_*)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def save_state(self, stored: StoredState) -> None:
        doc = state_to_doc(stored)
        await self._db[STATE].replace_one({"_id": stored.state.monitor_id}, doc, upsert=True)

    async def all_states(self) -> list[StoredState]:
        """Every monitor's state (one document per monitor: small enough to hold in memory)."""
        return [state_from_doc(doc) for doc in await self._db[STATE].find({}).to_list()]

    async def save_incident(self, incident: Incident) -> None:
        await self._db[INCIDENTS].replace_one({"_id": incident.id}, _incident_doc(incident), upsert=True)

    async def get_incident(self, incident_id: str) -> Incident | None:
        doc = await self._db[INCIDENTS].find_one({"_id": incident_id})
        if doc is None:
            return None
        doc.pop("_id")
        return Incident.model_validate(doc)

    async def get_system(self, system_id: str) -> System | None:
        doc = await self._db[SYSTEMS].find_one({"_id": system_id})
        return from_doc(System, doc) if doc else None


def _incident_doc(incident: Incident) -> Document:
    return {"_id": incident.id, **incident.model_dump(mode="python")}
