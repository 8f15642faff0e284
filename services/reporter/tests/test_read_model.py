"""The reporter's read model on real FerretDB (and the incident stream on real NATS): newer events
win, platform incidents are left out, a bad stored fact is reported and skipped, and the whole
model is rebuilt by replaying the stream (`fao report --rebuild`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase

from fao.reporter.read_model import FACTS, FactStore
from fao.reporter.replay import replay
from fao.runtime.store import Document
from fao.schemas import PLATFORM_SYSTEM, Incident, IncidentEvent

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def event(
    system_id: str,
    status: str,
    at: datetime,
    kind: str = "outage",
    *,
    incident_id: str | None = None,
    resolved_at: datetime | None = None,
) -> IncidentEvent:
    incident = Incident.model_validate(
        {
            "id": incident_id or f"inc-{system_id}",
            "system_id": system_id,
            "status": status,
            "title": "t",
            "started_at": T0,
            "resolved_at": resolved_at,
            "kind": kind,
            "maintenance": [{"start": T0, "end": T0 + timedelta(minutes=1)}],
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
    assert fact.maintenance[0].end == T0 + timedelta(minutes=1)


async def test_a_bad_stored_fact_is_reported_and_skipped(mongo_db: AsyncDatabase[Document]) -> None:
    """One damaged document never stops a report: the others are read, the bad one is named."""
    store = FactStore(mongo_db)
    await store.record(event("web", "open", T0))
    await mongo_db[FACTS].insert_one({"_id": "inc-broken", "system_id": "mail", "started_at": "yesterday"})
    found = await store.facts()
    assert [f.incident_id for f in found.facts] == ["inc-web"]
    assert len(found.skipped) == 1
    assert found.skipped[0].startswith("inc-broken: ")
    assert "title: Field required" in found.skipped[0]


async def test_facts_are_read_for_a_period_only(mongo_db: AsyncDatabase[Document]) -> None:
    store = FactStore(mongo_db)
    await store.record(event("old", "resolved", T0, resolved_at=T0 + timedelta(hours=1)))
    await store.record(event("open", "open", T0))
    later = T0 + timedelta(days=2)
    found = await store.facts(later, later + timedelta(days=1))
    assert [f.incident_id for f in found.facts] == ["inc-open"]


async def test_rebuild_replays_the_stream_and_repairs_facts(
    js: JetStreamContext, mongo_db: AsyncDatabase[Document]
) -> None:
    """Every incident's newest event becomes its fact (whatever order the stream holds them in), a
    damaged fact is replaced, a fact older than the stream is kept, junk messages are counted."""
    store = FactStore(mongo_db)
    events = [
        event("web", "open", T0),
        event("web", "resolved", T0 + timedelta(minutes=9), resolved_at=T0 + timedelta(minutes=8)),
        event("mail", "acknowledged", T0 + timedelta(minutes=3)),
        event("mail", "open", T0 + timedelta(minutes=1)),  # older, published later
        event(PLATFORM_SYSTEM, "open", T0, kind="zone"),
    ]
    for e in events:
        await js.publish(
            f"fao.incidents.v1.{e.type}",
            e.model_dump_json().encode(),
            headers={"Nats-Msg-Id": str(e.event_id)},
        )
    await js.publish("fao.incidents.v1.opened", b"not json")
    await mongo_db[FACTS].insert_one({"_id": "inc-web", "system_id": "web", "title": 7})  # damaged
    await store.record(event("ancient", "resolved", T0 - timedelta(days=500), resolved_at=T0))
    progress: list[tuple[int, int]] = []

    result = await replay(js, store, lambda read, total: progress.append((read, total)))

    assert (result.messages, result.incidents, result.facts_written, result.unreadable) == (6, 3, 2, 1)
    assert progress[-1] == (6, 6)
    found = await store.facts()
    assert found.skipped == []
    facts = {f.incident_id: f for f in found.facts}
    assert sorted(facts) == ["inc-ancient", "inc-mail", "inc-web"]
    assert facts["inc-web"].status == "resolved"
    assert facts["inc-web"].resolved_at == T0 + timedelta(minutes=8)
    assert facts["inc-mail"].status == "acknowledged"
