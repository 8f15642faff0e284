"""Delivery records: deterministic retry keys and the order rule (pure), the record-by-insert rules
on real FerretDB."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import DELIVERIES, Delivery, DeliveryStore, claim_id, plan_lane, retry_key
from fao.notifier.render import MessageKind, RenderedMessage
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


def rendered(kind: MessageKind = "problem") -> RenderedMessage:
    return RenderedMessage(kind=kind, alt_text=f"{kind} alt", text=f"{kind} text", bubble=None)


async def test_record_inserts_a_pending_delivery_with_its_message_and_a_repeat_adds_nothing(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """Recording → a ``pending`` record holding the message, the event's time and the retry key;
    the same event again (a redelivery) → the existing record, nothing new."""
    store = DeliveryStore(db)
    event = make_event("opened")
    first, fresh = await store.record(event, GROUP, rendered(), NOW)
    again, fresh_again = await store.record(event, GROUP, rendered(), NOW)
    assert (fresh, fresh_again) == (True, False)
    assert first == again
    assert (first.status, first.tried, first.final) == ("pending", False, False)
    assert first.retry_key == retry_key(first.id) == retry_key(claim_id(event.event_id, GROUP))
    assert first.message == rendered()
    assert first.at == event.at
    doc = await store.get(first.id)
    assert doc is not None
    assert (doc["event_type"], doc["incident_id"], doc["kind"], doc["attempts"]) == (
        "opened",
        event.incident.id,
        "problem",
        0,
    )
    assert await db[DELIVERIES].count_documents({}) == 1


async def test_claim_then_finish_and_the_undelivered_and_lane_reads(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """``claim`` marks the first try (``claimed``, tried); a final status leaves ``undelivered``;
    ``lane`` reads one incident's records to one group, final or not."""
    store = DeliveryStore(db)
    opened, resolved = make_event("opened"), make_event("resolved")
    problem, _ = await store.record(opened, GROUP, rendered(), NOW)
    other, _ = await store.record(opened, OTHER_GROUP, rendered(), NOW)
    fixed, _ = await store.record(resolved, GROUP, rendered("fixed"), NOW)
    claimed = await store.claim(problem, NOW)
    assert (claimed.status, claimed.tried, claimed.first_attempt_at) == ("claimed", True, NOW)
    assert {d.id for d in await store.undelivered(GROUP)} == {problem.id, fixed.id}
    await store.finish(claimed, "sent", NOW)
    assert {d.id for d in await store.undelivered()} == {other.id, fixed.id}
    lane = await store.lane(opened.incident.id, GROUP)
    assert sorted((d.kind, d.status) for d in lane) == [("fixed", "pending"), ("problem", "sent")]
    again, fresh = await store.record(opened, GROUP, rendered(), NOW)
    assert (fresh, again.status, again.final) == (False, "sent", True)


async def test_concurrent_records_have_exactly_one_winner_on_ferretdb(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """Ten handlings recording the same delivery at once: exactly one insert wins (the unique
    ``_id`` is the atomic claim FerretDB offers); the rest see the existing record."""
    store = DeliveryStore(db)
    event = make_event("opened")
    results = await asyncio.gather(*(store.record(event, GROUP, rendered(), NOW) for _ in range(10)))
    assert sum(fresh for _, fresh in results) == 1
    assert await db[DELIVERIES].count_documents({}) == 1


async def test_a_record_of_an_older_notifier_gets_its_message_from_the_redelivery(
    db: AsyncDatabase[Document], make_event: Callable[..., IncidentEvent]
) -> None:
    """A record claimed by the previous version kept no message; the event's redelivery fills it
    in and the claim stays as it was (its retry key too)."""
    event = make_event("opened")
    cid = claim_id(event.event_id, GROUP)
    await db[DELIVERIES].insert_one(
        {
            "_id": cid,
            "event_id": str(event.event_id),
            "incident_id": event.incident.id,
            "event_type": "opened",
            "channel": "line",
            "target": GROUP,
            "status": "claimed",
            "attempts": 2,
            "retry_key": retry_key(cid),
            "created_at": NOW,
            "updated_at": NOW,
        }
    )
    store = DeliveryStore(db)
    [old] = await store.undelivered()
    assert (old.message, old.status) == (None, "claimed")
    delivery, fresh = await store.record(event, GROUP, rendered(), NOW)
    assert (fresh, delivery.status, delivery.attempts, delivery.message) == (False, "claimed", 2, rendered())
    [stored] = await store.undelivered()
    assert stored.message == rendered()
    assert stored.kind == "problem"


T0 = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)


def delivery(
    name: str, kind: str, minute: int, status: str = "pending", event_id: str | None = None
) -> Delivery:
    """A record of one lane: ``name`` is its id, ``minute`` its event's time after T0."""
    return Delivery(
        id=name,
        event_id=event_id or name,
        incident_id="inc-1",
        event_type={"problem": "opened", "acknowledged": "acknowledged", "fixed": "resolved"}[kind],
        channel="line",
        target=GROUP,
        retry_key=retry_key(name),
        status=status,
        kind=kind,
        at=T0 + timedelta(minutes=minute),
        created_at=T0,
        message=rendered(cast(MessageKind, kind)),
    )


def plan(*lane: Delivery) -> tuple[list[str], str | None]:
    result = plan_lane(list(reversed(lane)))  # the order of the records does not matter
    return [d.id for d, _ in result.supersede], result.send.id if result.send else None


def test_plan_sends_the_earliest_undelivered_message_once_the_earlier_ones_are_final() -> None:
    """Problem, then acknowledged, then fixed, each only once everything before it is final."""
    problem, ack, fixed = (
        delivery("p", "problem", 0),
        delivery("a", "acknowledged", 5),
        delivery("f", "fixed", 9),
    )
    assert plan(replace(problem, status="claimed"), ack) == ([], "p")
    assert plan(replace(problem, status="claimed"), replace(ack, status="claimed"), fixed) == ([], "p")
    assert plan(replace(problem, status="sent"), ack) == ([], "a")
    assert plan(replace(problem, status="sent"), replace(ack, status="failed_permanent"), fixed) == ([], "f")
    assert plan(
        replace(problem, status="sent"), replace(ack, status="sent"), replace(fixed, status="sent")
    ) == (
        [],
        None,
    )
    assert plan() == ([], None)


def test_plan_never_sends_an_earlier_message_after_a_later_one_was_delivered() -> None:
    """A problem recorded after its fixed message went out (its event came back late) is
    superseded, tried or not: the group's last word stays "fixed"."""
    assert plan(delivery("p", "problem", 0), delivery("f", "fixed", 9, "sent")) == (["p"], None)
    assert plan(delivery("p", "problem", 0, "claimed"), delivery("a", "acknowledged", 5, "sent")) == (
        ["p"],
        None,
    )
    assert plan(delivery("p", "problem", 0, "superseded"), delivery("f", "fixed", 9, "outbox")) == ([], None)


def test_plan_sends_a_fixed_message_alone_when_nothing_before_it_was_ever_tried() -> None:
    """Problem (and acknowledgement) never tried while the fixed message waits → they are
    superseded and the fixed message, which says when it started and how long, goes alone. One
    that was tried may be at LINE already: it goes first (same retry key), the rest then."""
    problem, ack, fixed = (
        delivery("p", "problem", 0),
        delivery("a", "acknowledged", 5),
        delivery("f", "fixed", 9),
    )
    assert plan(problem, ack, fixed) == (["p", "a"], "f")
    assert plan(replace(problem, status="claimed"), ack, fixed) == ([], "p")
    assert plan(replace(problem, status="sent"), ack, fixed) == (["a"], "f")


def test_plan_orders_by_event_time_then_life_order_and_fixed_last() -> None:
    """Two problem messages (an unmute after an earlier one) go by their time; at the same time a
    problem goes before its acknowledgement; a fixed message is last even with an earlier time."""
    first, second = delivery("u1", "problem", 1), delivery("u2", "problem", 2)
    assert plan(second, first) == ([], "u1")
    same_ack, same_problem = delivery("a", "acknowledged", 3), delivery("p", "problem", 3)
    assert plan(same_ack, same_problem) == ([], "p")
    early_fixed, late_ack = delivery("f", "fixed", 1), delivery("a", "acknowledged", 4, "claimed")
    assert plan(early_fixed, late_ack) == ([], "a")


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
