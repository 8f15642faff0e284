"""``fao.runtime.lease.Lease`` on a real nats-server: one holder at a time, takeover on expiry and
on release, and a holder whose key was taken over notices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from fao.runtime.lease import Lease, lease_key, leases_bucket

TTL = 2.0
# Expired keys are removed by the server's own age check, then a standby notices on its next poll.
MARGIN = TTL / 4 + 1.5

Connect = Callable[[], Awaitable[NatsClient]]


@pytest.fixture
async def connect(nats_url: str) -> AsyncIterator[Connect]:
    """A separate NATS connection per holder, as separate processes would have."""
    clients: list[NatsClient] = []

    async def new() -> NatsClient:
        nc = await nats.connect(nats_url)
        clients.append(nc)
        return nc

    yield new
    for nc in clients:
        if not nc.is_closed:
            await nc.close()


async def holder(connect: Connect, holder_id: str, name: str = "svc") -> Lease:
    return Lease((await connect()).jetstream(), name, holder_id, ttl=TTL)


async def held_by(js: JetStreamContext, name: str = "svc") -> bytes | None:
    kv = await leases_bucket(js, TTL)
    entry = await kv.get(lease_key(name))
    return entry.value


async def test_a_second_holder_waits_while_the_first_renews(connect: Connect) -> None:
    first, second = await holder(connect, "host-a-1"), await holder(connect, "host-b-2")
    await first.acquire()
    started_at = first.revision
    waiting = asyncio.create_task(second.acquire())
    try:
        done, _ = await asyncio.wait({waiting}, timeout=2.5 * TTL)
        assert not done, "the first holder kept renewing: the second must still be waiting"
        assert first.held
        assert first.revision is not None
        assert started_at is not None
        assert first.revision > started_at, "renewed by the keep-alive"
        assert await held_by((await connect()).jetstream()) == b"host-a-1"
    finally:
        waiting.cancel()
        await first.release()
        await second.release()


async def test_a_holder_that_stops_renewing_is_replaced_within_the_ttl(connect: Connect) -> None:
    crashed_conn = await connect()
    crashed = Lease(crashed_conn.jetstream(), "svc", "host-a-1", ttl=TTL)
    standby = await holder(connect, "host-b-2")
    await crashed.acquire()
    waiting = asyncio.create_task(standby.acquire())
    await crashed_conn.close()  # a crash: no release, no more renewals
    stopped = time.monotonic()
    try:
        await asyncio.wait_for(waiting, TTL + MARGIN)
        assert time.monotonic() - stopped <= TTL + MARGIN
        assert standby.held
        assert await held_by((await connect()).jetstream()) == b"host-b-2"
        await asyncio.wait_for(crashed.lost.wait(), TTL + MARGIN)
    finally:
        waiting.cancel()
        await standby.release()
        await crashed.release()


async def test_release_lets_a_standby_take_over_at_once(connect: Connect) -> None:
    first, second = await holder(connect, "host-a-1"), await holder(connect, "host-b-2")
    await first.acquire()
    waiting = asyncio.create_task(second.acquire())
    try:
        done, _ = await asyncio.wait({waiting}, timeout=TTL / 2)
        assert not done
        released = time.monotonic()
        await first.release()
        await asyncio.wait_for(waiting, TTL)
        assert time.monotonic() - released < TTL / 2, "one poll after the release, not an expiry"
        assert second.held
        assert not first.held
        assert not first.lost.is_set(), "a release is not a loss"
    finally:
        waiting.cancel()
        await second.release()


async def test_a_holder_whose_key_was_taken_over_sees_lost_and_leaves_it_alone(connect: Connect) -> None:
    first = await holder(connect, "host-a-1")
    await first.acquire()
    js = (await connect()).jetstream()
    kv = await leases_bucket(js, TTL)
    await kv.put(lease_key("svc"), b"intruder-9")  # e.g. a standby that saw the key expire
    await asyncio.wait_for(first.lost.wait(), TTL)
    assert not first.held
    await first.release()
    assert await held_by(js) == b"intruder-9", "release deletes the key only while it is ours"


async def test_leases_are_independent_by_name(connect: Connect) -> None:
    a, b = await holder(connect, "host-a-1", "correlator"), await holder(connect, "host-a-1", "notifier")
    await asyncio.wait_for(a.acquire(), TTL)
    await asyncio.wait_for(b.acquire(), TTL)
    assert a.held
    assert b.held
    await a.release()
    await b.release()
