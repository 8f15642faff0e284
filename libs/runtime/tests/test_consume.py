"""The consumer policy of ``fao.runtime.consume.subscribe`` on a real stream: tolerant reading, a
bounded number of deliveries for a handler that keeps failing, and groups of pending messages
(settled per message, one by one again when the group handler fails)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from fao.runtime.consume import DurableConsumer, GroupHandler, consumer_config, ensure_durable, subscribe
from fao.schemas import Command
from fao.schemas import subjects as s

DURABLE = "t-consume"


async def start_consumer(
    nats_url: str,
    handler: Callable[[Command], Awaitable[None]],
    max_deliveries: int = 20,
    group: GroupHandler[Command] | None = None,
    group_max: int = 1,
) -> NatsBroker:
    broker = NatsBroker(nats_url)
    subscribe(
        broker, "t-service", subject=s.COMMANDS_SUBJECTS, stream=s.COMMANDS_STREAM, durable=DURABLE,
        model=Command, handler=handler, title="t", description="test consumer",
        max_deliveries=max_deliveries, group=group, group_max=group_max,
    )  # fmt: skip
    await broker.start()
    return broker


def command_body(**extra: object) -> bytes:
    command = Command(
        command_id=uuid.uuid4(), action="ack", actor="somchai", source="cli",
        at=datetime(2026, 10, 5, 7, 0, tzinfo=UTC), incident_id="inc-1",
    )  # fmt: skip
    return json.dumps({**command.model_dump(mode="json"), **extra}).encode()


async def settled(js: JetStreamContext, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until the durable consumer has nothing pending and nothing awaiting an ack."""
    async with asyncio.timeout(timeout):
        while True:
            info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
            if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0:
                return
            await asyncio.sleep(0.05)


async def test_a_message_with_an_unknown_field_reaches_the_handler_as_the_model(
    nats_url: str, js: JetStreamContext
) -> None:
    received: asyncio.Queue[Command] = asyncio.Queue()
    broker = await start_consumer(nats_url, received.put)
    try:
        body = command_body(added_in_a_later_release={"priority": "high"})
        await js.publish(s.command_subject("ack"), body, stream=s.COMMANDS_STREAM)
        command = await asyncio.wait_for(received.get(), 10.0)
        assert command.command_id == uuid.UUID(json.loads(body)["command_id"])
        assert command.incident_id == "inc-1"
        await settled(js)
        dead = await js.stream_info(s.DEAD_LETTER_STREAM)
        assert dead.state.messages == 0, "an unknown field is not a reason to dead-letter"
    finally:
        await broker.stop()


async def test_a_handler_that_keeps_failing_is_given_up_after_max_deliveries(
    nats_url: str, js: JetStreamContext
) -> None:
    calls: list[Command] = []

    async def failing(command: Command) -> None:
        calls.append(command)
        raise RuntimeError("store down")

    dead_letters = await js.subscribe(s.dead_letter_subject("t-service"), stream=s.DEAD_LETTER_STREAM)
    broker = await start_consumer(nats_url, failing, max_deliveries=3)
    try:
        body = command_body()
        await js.publish(s.command_subject("ack"), body, stream=s.COMMANDS_STREAM)
        dead = await dead_letters.next_msg(timeout=15.0)
        assert dead.data == body
        assert dead.headers is not None
        assert dead.headers["Fao-Reason"] == "gave up after 3 deliveries: RuntimeError: store down"
        assert dead.headers["Fao-Original-Subject"] == s.command_subject("ack")
        await settled(js)
        assert len(calls) == 3
        info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
        assert info.delivered.consumer_seq == 3, "three deliveries in all, then acknowledged"
    finally:
        await broker.stop()
        await dead_letters.unsubscribe()


async def test_pending_messages_are_handled_as_groups_in_order_and_settled_one_by_one(
    nats_url: str, js: JetStreamContext
) -> None:
    """Ten messages waiting (one not even a command, one the handler rejects): the group handler
    sees the valid ones in stream order, never more than ``group_max`` at once; the invalid and the
    rejected one are dead-lettered with their reasons, every message is acknowledged."""
    bodies = [command_body(text=f"n{n}") for n in range(10)]
    bodies[3] = b'{"not": "a command"}'
    reject = json.loads(bodies[6])["command_id"]
    for body in bodies:
        await js.publish(s.command_subject("note"), body, stream=s.COMMANDS_STREAM)
    groups: list[list[str]] = []
    singles: list[Command] = []

    async def group(commands: list[Command]) -> Sequence[str | None]:
        groups.append([c.text for c in commands])
        return ["not this one" if str(c.command_id) == reject else None for c in commands]

    async def single(command: Command) -> None:
        singles.append(command)

    dead_letters = await js.subscribe(s.dead_letter_subject("t-service"), stream=s.DEAD_LETTER_STREAM)
    broker = await start_consumer(nats_url, single, group=group, group_max=4)
    try:
        await settled(js)
        reasons = sorted(
            [(await dead_letters.next_msg(timeout=5.0)).headers or {} for _ in range(2)],
            key=lambda h: h["Fao-Reason"],
        )
        assert reasons[0]["Fao-Reason"].startswith("command_id: Field required")
        assert reasons[1]["Fao-Reason"] == "not this one"
        handled = [text for g in groups for text in g] + [c.text for c in singles]
        assert sorted(handled) == sorted(f"n{n}" for n in range(10) if n != 3)
        assert [text for g in groups for text in g] == sorted(
            (text for g in groups for text in g), key=lambda x: int(x[1:])
        ), "stream order inside and across groups"
        assert max(len(g) for g in groups) <= 4
        assert any(len(g) > 1 for g in groups), f"ten waiting messages taken together: {groups}"
        info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
        assert info.num_ack_pending == 0
        assert info.num_redelivered == 0
    finally:
        await broker.stop()
        await dead_letters.unsubscribe()


async def test_a_failing_group_is_handled_one_message_at_a_time(nats_url: str, js: JetStreamContext) -> None:
    """The group handler fails (one poisoned message among them): each message then goes through
    the single-message path, so the good ones are applied and only the poisoned one is retried
    and given up."""
    bodies = [command_body(text=f"n{n}") for n in range(5)]
    poisoned = json.loads(bodies[2])["command_id"]
    for body in bodies:
        await js.publish(s.command_subject("note"), body, stream=s.COMMANDS_STREAM)
    group_calls: list[int] = []
    applied: list[str] = []

    async def group(commands: list[Command]) -> Sequence[str | None]:
        group_calls.append(len(commands))
        raise RuntimeError("one of them breaks the commit")

    async def single(command: Command) -> None:
        if str(command.command_id) == poisoned:
            raise RuntimeError("poisoned")
        applied.append(command.text)

    dead_letters = await js.subscribe(s.dead_letter_subject("t-service"), stream=s.DEAD_LETTER_STREAM)
    broker = await start_consumer(nats_url, single, max_deliveries=2, group=group, group_max=8)
    try:
        dead = await dead_letters.next_msg(timeout=15.0)
        assert dead.headers is not None
        assert dead.headers["Fao-Reason"] == "gave up after 2 deliveries: RuntimeError: poisoned"
        await settled(js)
        assert group_calls
        assert group_calls[0] > 1
        assert sorted(set(applied)) == ["n0", "n1", "n3", "n4"]
    finally:
        await broker.stop()
        await dead_letters.unsubscribe()


async def test_a_message_on_an_idle_stream_is_handled_alone_at_once(
    nats_url: str, js: JetStreamContext
) -> None:
    """Nothing pending behind it: no group is waited for, the single-message handler takes it."""
    received: asyncio.Queue[Command] = asyncio.Queue()

    async def group(commands: list[Command]) -> Sequence[str | None]:
        raise AssertionError(f"no group expected, got {len(commands)}")

    broker = await start_consumer(nats_url, received.put, group=group, group_max=8)
    try:
        await js.publish(s.command_subject("ack"), command_body(), stream=s.COMMANDS_STREAM)
        await asyncio.wait_for(received.get(), 10.0)
        await settled(js)
    finally:
        await broker.stop()


async def test_a_durable_consumer_handed_over_goes_on_where_the_first_stopped(
    nats_url: str, js: JetStreamContext
) -> None:
    """``DurableConsumer``: started and stopped while the process runs (a correlator's partition
    moving to another instance). The second holder of the durable gets exactly the messages the
    first had not acknowledged — none twice, none lost — and a message being handled when the
    stop comes is settled first. Only its own filter subject reaches it."""
    first_seen: list[str] = []
    second_seen: list[str] = []
    in_handler = asyncio.Event()
    release = asyncio.Event()

    async def first(command: Command) -> None:
        first_seen.append(command.text)
        if command.text == "n2":  # the stop comes while this one is being handled
            in_handler.set()
            await release.wait()

    async def second(command: Command) -> None:
        second_seen.append(command.text)

    broker = NatsBroker(nats_url)
    await broker.connect()
    try:
        consumer = DurableConsumer(
            broker, "t-service", stream=s.COMMANDS_STREAM, durable=DURABLE,
            filter_subjects=[s.command_subject("note")], model=Command, handler=first,
        )  # fmt: skip
        await consumer.start()
        for n in range(3):
            await js.publish(s.command_subject("note"), command_body(text=f"n{n}"), stream=s.COMMANDS_STREAM)
        await js.publish(
            s.command_subject("ack"), command_body(text="other subject"), stream=s.COMMANDS_STREAM
        )
        await asyncio.wait_for(in_handler.wait(), 10.0)
        stopping = asyncio.create_task(consumer.stop())
        await asyncio.sleep(0)
        assert not stopping.done(), "waits for the message being handled"
        release.set()
        await asyncio.wait_for(stopping, 10.0)
        for n in range(3, 6):
            await js.publish(s.command_subject("note"), command_body(text=f"n{n}"), stream=s.COMMANDS_STREAM)
        info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
        assert info.num_ack_pending == 0, "the stop settled what it had"
        successor = DurableConsumer(
            broker, "t-service", stream=s.COMMANDS_STREAM, durable=DURABLE,
            filter_subjects=[s.command_subject("note")], model=Command, handler=second,
        )  # fmt: skip
        await successor.start()
        await settled(js)
        await successor.stop()
        assert first_seen == ["n0", "n1", "n2"]
        assert second_seen == ["n3", "n4", "n5"]
    finally:
        await broker.stop()


async def test_ensure_durable_starts_a_new_durable_at_the_sequence_given_and_leaves_one_alone(
    js: JetStreamContext,
) -> None:
    for n in range(4):
        await js.publish(s.command_subject("note"), command_body(text=f"n{n}"), stream=s.COMMANDS_STREAM)
    config = consumer_config(DURABLE, [s.command_subject("note")])
    assert await ensure_durable(js, s.COMMANDS_STREAM, config, start_sequence=3)
    info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
    assert info.num_pending == 2, "messages 3 and 4 only"
    assert not await ensure_durable(js, s.COMMANDS_STREAM, config), "an existing durable is kept as it is"
    assert (await js.consumer_info(s.COMMANDS_STREAM, DURABLE)).num_pending == 2
