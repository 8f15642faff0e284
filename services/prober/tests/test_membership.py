"""Membership on a real nats-server: probers see each other per zone, a clean stop is seen at once,
a silent prober is dropped when its heartbeat key expires (the server's delete marker)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from nats.js import JetStreamContext

from fao.prober.membership import Membership
from fao.runtime.bus import probers_bucket
from fao.schemas.subjects import prober_key


class _Views:
    """The member sets each listener was told, in order."""

    def __init__(self) -> None:
        self.seen: list[frozenset[str]] = []
        self.changed = asyncio.Event()

    def __call__(self, members: frozenset[str]) -> None:
        self.seen.append(members)
        self.changed.set()

    async def until(self, members: set[str], within: float) -> float:
        """Wait until the latest view is ``members``; how long it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(within):
            while not self.seen or self.seen[-1] != members:
                self.changed.clear()
                await self.changed.wait()
        return loop.time() - started


def _member(
    js: JetStreamContext, prober_id: str, views: _Views, zone: str = "bkk", ttl: float = 30.0
) -> Membership:
    return Membership(
        js, zone=zone, prober_id=prober_id, started_at=datetime.now(UTC), listener=views, ttl=ttl
    )


async def test_probers_see_the_others_of_their_zone_and_a_clean_stop_at_once(js: JetStreamContext) -> None:
    a_views, b_views, other_views = _Views(), _Views(), _Views()
    a = _member(js, "host-a.example.go.th-1", a_views)
    b = _member(js, "host-b-2", b_views)
    elsewhere = _member(js, "host-c-3", other_views, zone="dr")
    await a.start()
    assert a.members == {"host-a_example_go_th-1"}, "alone at first"
    await elsewhere.start()
    await b.start()
    assert b.members == {"host-a_example_go_th-1", "host-b-2"}, "a joiner knows the others when start returns"
    await a_views.until({"host-a_example_go_th-1", "host-b-2"}, within=5)
    assert elsewhere.members == {"host-c-3"}, "another zone's probers are not peers"
    await b.stop()
    took = await a_views.until({"host-a_example_go_th-1"}, within=5)
    assert took < 2.0, "a stopped prober deletes its key: the others take over long before its TTL (30 s)"
    await a.stop()
    await elsewhere.stop()


async def test_a_prober_that_stops_heartbeating_is_dropped_after_its_ttl(js: JetStreamContext) -> None:
    survivor_views = _Views()
    survivor = _member(js, "survivor", survivor_views, ttl=1.0)
    await survivor.start()
    assert survivor.ttl == 1.0, "the bucket was brought to the prober's TTL"
    kv = await probers_bucket(js)
    await kv.put(
        prober_key("bkk", "silent"),
        b'{"prober_id": "silent", "zone": "bkk", "started_at": "2026-11-29T00:00:00Z"}',
    )
    await survivor_views.until({"survivor", "silent"}, within=5)
    took = await survivor_views.until({"survivor"}, within=10)
    assert took <= 1.0 + 1.5, (
        f"dropped {took:.2f}s after its only heartbeat (TTL 1 s, plus the server's sweep)"
    )
    assert survivor.members == {"survivor"}, "its own heartbeat kept the survivor in"
    await survivor.stop()
