"""The reporter's read model: one ``report_facts`` document per incident, kept from the incident stream.

The reporter is the only writer of ``report_facts``. A fact is replaced only by an event at least
as new as the one it came from, so redelivered or replayed events never move it backwards, and
the whole collection can be rebuilt by replaying the stream from the start.

Incidents of the platform itself (``PLATFORM_SYSTEM``: a zone's path failing, silent probers) are
not downtime of any ministry system and are left out of the availability read model.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from fao.reporter.availability import IncidentFact, SystemInfo
from fao.runtime.inventory import SYSTEMS, from_doc
from fao.runtime.store import Document, IndexSpec
from fao.schemas import PLATFORM_SYSTEM, IncidentEvent, System

FACTS = "report_facts"
INDEXES = [IndexSpec(FACTS, [("started_at", 1)])]


def fact_from_event(event: IncidentEvent) -> IncidentFact:
    incident = event.incident
    return IncidentFact(
        incident_id=incident.id,
        system_id=incident.system_id,
        title=incident.title,
        severity=incident.severity,
        started_at=incident.started_at,
        acknowledged_at=incident.acknowledged_at,
        resolved_at=incident.resolved_at,
        status=incident.status,
    )


class FactStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def record(self, event: IncidentEvent) -> bool:
        """Fold one event into its incident's fact; False when an equal or newer one is stored
        (or when the incident is the platform's own, which reports do not count)."""
        if event.incident.system_id == PLATFORM_SYSTEM:
            return False
        fact = fact_from_event(event)
        current = await self._db[FACTS].find_one({"_id": fact.incident_id})
        if current is not None and current["event_at"] > event.at:
            return False
        doc = {"_id": fact.incident_id, **fact.model_dump(), "event_at": event.at}
        await self._db[FACTS].replace_one({"_id": fact.incident_id}, doc, upsert=True)
        return True

    async def facts(self) -> list[IncidentFact]:
        docs = await self._db[FACTS].find({}).to_list()
        return [
            IncidentFact.model_validate({k: v for k, v in d.items() if k not in ("_id", "event_at")})
            for d in docs
        ]

    async def systems(self) -> list[SystemInfo]:
        systems = [from_doc(System, doc) for doc in await self._db[SYSTEMS].find({}).to_list()]
        return [SystemInfo(id=s.id, name=s.name, name_th=s.name_th) for s in systems]
