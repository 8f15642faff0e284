"""Start-up set-up is safe to repeat: every service runs it, in any order, on every start."""

from __future__ import annotations

import nats
import pytest
from nats.js.api import StreamConfig
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.runtime.bus import HOUR, STREAMS, ensure_bus, monitors_bucket
from fao.runtime.store import Document, IndexSpec, ensure_indexes
from fao.schemas import subjects


async def test_streams_and_bucket_are_created_once_and_repaired(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_bus(js)
        await ensure_bus(js)  # a second service starting: no error, nothing duplicated
        names = {s.config.name for s in await js.streams_info()}
        assert {spec.name for spec in STREAMS} <= names
        kv = await monitors_bucket(js)
        assert (await kv.status()).bucket == subjects.MONITORS_BUCKET

        # Someone changed retention by hand: the next start brings it back to the release's value.
        info = await js.stream_info(subjects.RESULTS_STREAM)
        changed: StreamConfig = info.config
        changed.max_age = 600.0
        await js.update_stream(changed)
        await ensure_bus(js)
        assert (await js.stream_info(subjects.RESULTS_STREAM)).config.max_age == HOUR
    finally:
        await nc.close()


async def test_indexes_can_be_ensured_again_on_ferretdb(mongo_db: AsyncDatabase[Document]) -> None:
    """FerretDB v1 panics on one createIndexes naming 2+ existing indexes; one call each is safe."""
    specs = [
        IndexSpec("things", [("a", 1)]),
        IndexSpec("things", [("b", 1), ("c", -1)], unique=True),
        IndexSpec("things", [("d", 1)]),
    ]
    await ensure_indexes(mongo_db, specs)
    await ensure_indexes(mongo_db, specs)
    names = {ix["name"] for ix in await (await mongo_db["things"].list_indexes()).to_list()}
    assert names >= {"a_1", "b_1_c_-1", "d_1"}
    await mongo_db["things"].insert_one({"b": 1, "c": 2})
    with pytest.raises(DuplicateKeyError):
        await mongo_db["things"].insert_one({"b": 1, "c": 2})
