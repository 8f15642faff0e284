"""The reporter's read model on real FerretDB: newer events win, platform incidents are left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pymongo.asynchronous.database import AsyncDatabase

from fao.reporter.read_model import FactStore
from fao.runtime.store import Document
from fao.schemas import PLATFORM_SYSTEM, Incident, IncidentEvent

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def event(system_id: str, status: str, at: datetime, kind: str = "outage") -> IncidentEvent:
    incident = Incident.model_validate(
        {
            "id": f"inc-{system_id}",
            "system_id": system_id,
            "status": status,
            "title": "t",
            "started_at": T0,
            "kind": kind,
        }
    )
    return IncidentEvent(event_id=uuid4(), type="opened", at=at, incident=incident)


async def test_newer_event_wins_and_platform_incidents_are_not_facts(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = FactStore(mongo_db)
    assert await store.record(event("web", "open", T0))
    assert await store.record(event("web", "resolved", T0 + timedelta(minutes=5)))
    assert not await store.record(event("web", "open", T0 + timedelta(minutes=1))), (
        "older than the stored one"
    )
    assert not await store.record(event(PLATFORM_SYSTEM, "open", T0, kind="zone"))
    [fact] = (await store.facts()).facts
    assert fact.system_id == "web"
    assert fact.status == "resolved"
