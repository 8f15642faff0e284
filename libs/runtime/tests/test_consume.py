"""The consumer policy of ``fao.runtime.consume.subscribe`` on a real stream: tolerant reading and a
bounded number of deliveries for a handler that keeps failing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from fao.runtime.consume import subscribe
from fao.schemas import Command
from fao.schemas import subjects as s

DURABLE = "t-consume"


async def start_consumer(
    nats_url: str, handler: Callable[[Command], Awaitable[None]], max_deliveries: int = 20
) -> NatsBroker:
    broker = NatsBroker(nats_url)
    subscribe(
        broker, "t-service", subject=s.COMMANDS_SUBJECTS, stream=s.COMMANDS_STREAM, durable=DURABLE,
        model=Command, handler=handler, title="t", description="test consumer",
        max_deliveries=max_deliveries,
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
