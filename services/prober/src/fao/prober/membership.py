"""The live probers of a zone, from the ``fao-probers`` KV bucket: heartbeats with a time-to-live.

Each prober writes its key ``<zone>.<member>`` (``member``: its id with only ``[A-Za-z0-9_-]``)
when it starts and again every TTL/3; the bucket's ``max_age`` is the TTL, so the key of a prober
that stops heartbeating (killed, hung, cut off from NATS) expires one TTL after its last heartbeat,
and the delete marker the server then writes tells every watcher. A clean stop deletes the key,
so the others take over at once. The TTL is the bucket's (``fao.runtime.bus.probers_bucket``;
``FAO_PROBER_TTL`` sets it when the prober manages the bus).

The view always contains this prober itself: cut off from NATS it keeps running what it had
(the others take those monitors over after one TTL, so a monitor may then be checked twice — a
partition never leaves one unchecked).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import structlog
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from fao.runtime.bus import PROBERS_TTL, probers_bucket
from fao.runtime.inventory import KvCatalog
from fao.runtime.rendezvous import member_name
from fao.schemas.base import BusModel, Identifier, UtcDatetime
from fao.schemas.subjects import PROBERS_BUCKET, prober_key

log = structlog.get_logger()


class ProberBeat(BusModel):
    """The value of a prober's key in ``fao-probers``."""

    schema_version: Literal[1] = 1
    prober_id: str
    zone: Identifier
    started_at: UtcDatetime


class Membership:
    """This prober's heartbeat, and the live members of its zone (``members``); ``listener(members)``
    after every change."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        zone: str,
        prober_id: str,
        started_at: datetime,
        listener: Callable[[frozenset[str]], None],
        ttl: float | None = None,
    ) -> None:
        """``ttl``: bring the bucket to this TTL (a prober allowed to manage the bus); ``None``:
        use the bucket as it is."""
        self.name = member_name(prober_id)
        self._js = js
        self._zone = zone
        self._key = prober_key(zone, self.name)
        self._value = (
            ProberBeat(prober_id=prober_id, zone=zone, started_at=started_at).model_dump_json().encode()
        )
        self._listener = listener
        self._want_ttl = ttl
        self.ttl = PROBERS_TTL
        self.members: frozenset[str] = frozenset({self.name})
        self._kv: KeyValue | None = None
        self._catalog: KvCatalog[ProberBeat] | None = None
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register, then read the zone's members; returns once they are known."""
        kv = self._kv = await probers_bucket(self._js, self._want_ttl)
        status = await kv.status()
        self.ttl = status.ttl or PROBERS_TTL
        await kv.put(self._key, self._value)
        zone = self._zone
        self._catalog = KvCatalog(
            self._js,
            bucket=PROBERS_BUCKET,
            open_bucket=probers_bucket,
            key=lambda member: prober_key(zone, member),
            decode=ProberBeat.model_validate_json,
            name="prober",
            listener=self._changed,
        )
        await self._catalog.start()
        self._beat = asyncio.create_task(self._heartbeat(kv), name="prober-heartbeat")
        log.info(
            "prober_membership", zone=zone, member=self.name, members=sorted(self.members), ttl_s=self.ttl
        )

    def _changed(self, _member: str, _beat: ProberBeat | None) -> None:
        assert self._catalog is not None
        members = frozenset({*self._catalog.entries, self.name})
        if members == self.members:
            return
        joined, left = sorted(members - self.members), sorted(self.members - members)
        self.members = members
        log.info("probers_changed", zone=self._zone, joined=joined, left=left, members=len(members))
        self._listener(members)

    async def _heartbeat(self, kv: KeyValue) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await kv.put(self._key, self._value)
            except Exception as exc:  # NATS away: keep trying; the others drop us after one TTL
                if not failing:
                    log.warning("prober_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
                failing = True
                continue
            if failing:
                log.info("prober_heartbeat_restored")
                failing = False

    async def stop(self) -> None:
        """Stop the heartbeat and delete this prober's key, so the others take over at once."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._catalog is not None:
            await self._catalog.stop()
        if self._kv is not None:
            try:
                await self._kv.delete(self._key)
            except Exception as exc:  # it expires by itself within one TTL
                log.warning("prober_unregister_failed", error=f"{type(exc).__name__}: {exc}")
