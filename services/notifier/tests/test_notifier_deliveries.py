"""Delivery claims: deterministic retry keys (pure) and the claim-by-insert rules on real FerretDB."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import DELIVERIES, DeliveryStatus, DeliveryStore, claim_id, retry_key
from fao.runtime.store import Document
from fao.schemas import IncidentEvent

GROUP = "C" + "1" * 32
OTHER_GROUP = "C" + "2" * 32
NOW = datetime(2026, 10, 5, 7, 3, tzinfo=UTC)


def test_retry_key_is_the_same_for_the_same_claim_in_any_process() -> None:
    """uuid5 of the claim id: a redelivery or another replica sends the same X-Line-Retry-Key.
    The literal pins the namespace: changing it would re-send everything within LINE's 24 h."""
    event_id = uuid.UUID("00000000-0000-0000-0000-000000000001")
    claim = claim_id(event_id, GROUP)
    assert claim == f"00000000-0000-0000-0000-000000000001:line:{GROUP}"
    assert retry_key(claim) == retry_key(claim_id(str(event_id), GROUP))
    assert retry_key(claim) == "a7c8df4e-62aa-5dc7-8e8c-2f1c95b9a92e"


def test_retry_key_is_a_uuid_string_distinct_per_event_and_target() -> None:
    """LINE wants a hex UUID string; different deliveries must never share a key."""
    event_a, event_b = uuid.uuid4(), uuid.uuid4()
    keys = {retry_key(claim_id(e, g)) for e in (event_a, event_b) for g in (GROUP, OTHER_GROUP)}
    assert len(keys) == 4
    for key in keys:
        assert isinstance(key, str)
        assert str(uuid.UUID(key)) == key


async def test_first_claim_wins_and_a_repeat_takes_the_open_claim_over(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """Insert → a fresh ``claimed`` record; the same claim again (a redelivery after a crash) →
    the existing record, marked taken over, with the same retry key."""
    store = DeliveryStore(db)
    event = make_event("opened")
    first = await store.claim(event, GROUP, NOW)
    again = await store.claim(event, GROUP, NOW)
    assert (first.status, first.taken_over, first.done) == ("claimed", False, False)
    assert (again.status, again.taken_over, again.done) == ("claimed", True, False)
    assert first.retry_key == again.retry_key == retry_key(first.id)
    doc = await store.get(first.id)
    assert doc is not None
    assert doc["event_type"] == "opened"
    assert doc["incident_id"] == event.incident.id
    assert doc["attempts"] == 0


async def test_a_final_claim_is_reported_done(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """Once ``sent`` (or outbox / failed_permanent) a claim comes back ``done``: skip, never resend."""
    store = DeliveryStore(db)
    event = make_event("opened")
    cases: list[tuple[str, DeliveryStatus]] = [(GROUP, "sent"), (OTHER_GROUP, "failed_permanent")]
    for target, status in cases:
        claim = await store.claim(event, target, NOW)
        await store.finish(claim, status, NOW)
        repeat = await store.claim(event, target, NOW)
        assert repeat.done
        assert repeat.status == status
        assert repeat.taken_over is False


async def test_concurrent_claims_have_exactly_one_winner_on_ferretdb(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """Ten replicas claiming the same delivery at once: exactly one insert wins (the unique ``_id``
    is the atomic claim FerretDB offers); the rest see the existing record."""
    store = DeliveryStore(db)
    event = make_event("opened")
    claims = await asyncio.gather(*(store.claim(event, GROUP, NOW) for _ in range(10)))
    assert sum(not c.taken_over for c in claims) == 1
    assert await db[DELIVERIES].count_documents({}) == 1


async def test_unroutable_is_recorded_once(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """An event with nowhere to go leaves one ``unroutable`` record with the reason, even if redelivered."""
    store = DeliveryStore(db)
    event = make_event("opened")
    assert await store.record_unroutable(event, "no_line_groups", NOW) is True
    assert await store.record_unroutable(event, "no_line_groups", NOW) is False
    [doc] = await db[DELIVERIES].find({}).to_list()
    assert (doc["status"], doc["error"], doc["event_id"]) == (
        "unroutable",
        "no_line_groups",
        str(event.event_id),
    )
