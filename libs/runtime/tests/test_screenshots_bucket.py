"""The ``fao-screenshots`` object store: made with the bus, bounded in age and size, the oldest
objects going first when it is full, and never made by a reader that only opens it."""

from __future__ import annotations

import nats
import pytest
from nats.js.api import DiscardPolicy
from nats.js.errors import BucketNotFoundError

from fao.runtime.bus import SCREENSHOTS_MAX_AGE, SCREENSHOTS_MAX_BYTES, ensure_bus, screenshots_bucket
from fao.schemas import subjects


async def test_the_screenshots_store_is_made_with_the_bus_bounded_and_kept(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        with pytest.raises(BucketNotFoundError):
            await screenshots_bucket(js, create=False)
        await ensure_bus(js)
        store = await screenshots_bucket(js, create=False)
        await store.put("portal/20261130T010203000000Z.png", b"\x89PNG")
        await ensure_bus(js)  # another start: the store and its objects stay
        config = (await js.stream_info(f"OBJ_{subjects.SCREENSHOTS_BUCKET}")).config
        assert config.max_age == SCREENSHOTS_MAX_AGE
        assert config.max_bytes == SCREENSHOTS_MAX_BYTES
        assert config.discard == DiscardPolicy.OLD, "a full store drops its oldest screenshots, not new ones"
        got = await (await screenshots_bucket(js)).get("portal/20261130T010203000000Z.png")
        assert got.data == b"\x89PNG"
    finally:
        await nc.close()
