"""The correlator's store on real FerretDB and NATS: incidents inserted when new, replaced one by one
when few changed and by one delete and inserts when many did; states in the KV bucket, moved from
MongoDB once."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase

from fao.correlator.monitor_state import MonitorState
from fao.correlator.store import INCIDENTS, REPLACE_ONE_BY_ONE, STATE, CorrelatorStore, JournalEntry
from fao.runtime.bus import state_bucket
from fao.runtime.states import state_docs
from fao.runtime.store import Document
from fao.schemas import Incident

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _incident(n: int, status: str = "open", monitors: int = 1) -> Incident:
    return Incident.model_validate(
        {
            "id": f"inc-{n:03d}", "system_id": f"sys-{n:03d}", "status": status, "title": "down",
            "started_at": T0, "monitor_ids": [f"m{n:03d}-{k}" for k in range(monitors)],
        }
    )  # fmt: skip


def _entry(entry_id: str, incidents: list[Incident]) -> JournalEntry:
    return JournalEntry(entry_id, (), tuple(incidents), (), (), None)


async def _stored(db: AsyncDatabase[Document]) -> dict[str, Document]:
    return {str(d["_id"]): d for d in await db[INCIDENTS].find({}).to_list()}


async def test_incidents_new_known_few_and_many_end_as_their_latest_version(
    mongo_db: AsyncDatabase[Document], js: JetStreamContext
) -> None:
    store = CorrelatorStore(mongo_db, js, await state_bucket(js))
    many = REPLACE_ONE_BY_ONE + 4
    await store.write(_entry("1", [_incident(n) for n in range(many)]))
    assert len(await _stored(mongo_db)) == many
    await store.write(_entry("2", [_incident(0, monitors=2)]))  # few: one replace
    await store.write(_entry("3", [_incident(n, "acknowledged", monitors=3) for n in range(many)]))  # many
    stored = await _stored(mongo_db)
    assert len(stored) == many, "replaced, never duplicated"
    assert {d["status"] for d in stored.values()} == {"acknowledged"}
    assert all(len(d["monitor_ids"]) == 3 for d in stored.values())
    # A new process that never saw them (a journal entry applied again after a crash): the
    # inserts find them there and they are replaced instead.
    again = CorrelatorStore(mongo_db, js, await state_bucket(js))
    await again.write(_entry("4", [_incident(n, "resolved") for n in range(many)]))
    stored = await _stored(mongo_db)
    assert len(stored) == many
    assert {d["status"] for d in stored.values()} == {"resolved"}


async def test_states_kept_in_mongodb_are_moved_to_the_bucket_once(
    mongo_db: AsyncDatabase[Document], js: JetStreamContext
) -> None:
    old = [
        MonitorState(monitor_id=f"m{n}", system_id="portal", status="down", down_since=T0) for n in range(3)
    ]
    await mongo_db[STATE].insert_many([s.to_doc() for s in old])
    store = CorrelatorStore(mongo_db, js, await state_bucket(js))
    assert sorted(await store.all_states(), key=lambda s: s.monitor_id) == old
    assert STATE not in await mongo_db.list_collection_names(), "the old copy is gone"
    assert sorted(await state_docs(js)) == ["m0", "m1", "m2"]
    assert sorted(await store.all_states(), key=lambda s: s.monitor_id) == old, "read from the bucket"
