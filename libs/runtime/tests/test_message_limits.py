"""Consumers never wedge on a message's size or on a failed dead letter, on a real nats-server.

- every Fao stream has a ``max_msg_size`` below the server's max_payload, also when it existed
  before the limits; ``check_size`` refuses a bigger message before it is published;
- a body just under max_payload is refused by the stream on each consumed subject family, a body
  that just fits is dead-lettered whole, and the consumer carries on, also after a restart;
- a message stored before the limits existed is dead-lettered truncated, with its size and hash;
- a dead letter that cannot be written naks the message (never acks it) and a later delivery
  dead-letters it; ``Rejected`` dead-letters at once; the server-side ``max_deliver`` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError
from pydantic import BaseModel

from fao.runtime.bus import (
    DEAD_LETTERS,
    KIB,
    PAYLOAD_HEADROOM,
    STREAMS,
    MessageTooLarge,
    StreamSpec,
    check_size,
    ensure_bus,
    ensure_streams,
    headers_size,
    max_msg_size,
)
from fao.runtime.consume import MAX_DELIVER_MARGIN, TRUNCATED_BODY, Rejected, subscribe
from fao.schemas import CheckResult, Command, Incident, IncidentEvent
from fao.schemas import subjects as s

SERVICE = "t-limits"
DURABLE = "t-limits"
MESSAGE_TOO_LARGE = 10054  # JetStream's "message size exceeds maximum allowed"
AT = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)


def result_body() -> bytes:
    result = CheckResult(
        monitor_id="web", system_id="portal", zone="dc1", prober_id="p1", started_at=AT, ok=True,
        latency_ms=2.0, detail=uuid.uuid4().hex,
    )  # fmt: skip
    return result.model_dump_json().encode()


def incident_body() -> bytes:
    incident = Incident(
        id="inc-1", system_id="portal", monitor_ids=["web"], status="open", title="down", started_at=AT
    )
    return (
        IncidentEvent(event_id=uuid.uuid4(), type="opened", at=AT, incident=incident)
        .model_dump_json()
        .encode()
    )


def command_body() -> bytes:
    command = Command(
        command_id=uuid.uuid4(), action="ack", actor="somchai", source="cli", at=AT, incident_id="inc-1"
    )
    return command.model_dump_json().encode()


@dataclass(frozen=True)
class Family:
    """A consumed subject family: its stream, a subject in it, its model and a valid body."""

    stream: str
    filter: str
    subject: str
    model: type[BaseModel]
    valid: Callable[[], bytes]

    @property
    def spec(self) -> StreamSpec:
        return next(spec for spec in STREAMS if spec.name == self.stream)


RESULTS = Family(s.RESULTS_STREAM, s.RESULTS_SUBJECTS, s.result_subject("web"), CheckResult, result_body)
INCIDENTS = Family(
    s.INCIDENTS_STREAM, s.INCIDENTS_SUBJECTS, s.incident_subject("opened"), IncidentEvent, incident_body
)
COMMANDS = Family(s.COMMANDS_STREAM, s.COMMANDS_SUBJECTS, s.command_subject("ack"), Command, command_body)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client: NatsClient = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def js(nc: NatsClient) -> JetStreamContext:
    jsc = nc.jetstream()
    await ensure_bus(jsc)
    return jsc


class Consumer:
    """A ``subscribe``d durable consumer with a handler that records what it got (and may fail)."""

    def __init__(self, nats_url: str, family: Family, max_deliveries: int = 20) -> None:
        self.nats_url, self.family, self.max_deliveries = nats_url, family, max_deliveries
        self.handled: asyncio.Queue[bytes] = asyncio.Queue()
        self.fail_with: Exception | None = None
        self.calls = 0
        self.broker: NatsBroker | None = None

    async def _handle(self, item: BaseModel) -> None:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        await self.handled.put(item.model_dump_json().encode())

    async def start(self) -> NatsBroker:
        broker = NatsBroker(self.nats_url)
        subscribe(
            broker, SERVICE, subject=self.family.filter, stream=self.family.stream, durable=DURABLE,
            model=self.family.model, handler=self._handle, title="t", description="test consumer",
            max_deliveries=self.max_deliveries,
        )  # fmt: skip
        await broker.start()
        self.broker = broker
        return broker

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None

    async def handles(self, js: JetStreamContext, body: bytes) -> None:
        """Publish a valid ``body`` and wait until the handler got exactly it."""
        await js.publish(self.family.subject, body, stream=self.family.stream)
        got = await asyncio.wait_for(self.handled.get(), 10.0)
        assert json.loads(got) == json.loads(body)


@pytest.fixture
async def consumers() -> AsyncIterator[list[Consumer]]:
    made: list[Consumer] = []
    try:
        yield made
    finally:
        for consumer in made:
            await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for: {what}")
        await asyncio.sleep(0.05)


async def settled(js: JetStreamContext, stream: str) -> bool:
    """The durable consumer has nothing pending and nothing awaiting an ack."""
    info = await js.consumer_info(stream, DURABLE)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0)


async def dead_letters(js: JetStreamContext, count: int) -> list[Msg]:
    sub = await js.pull_subscribe(
        s.dead_letter_subject(SERVICE), durable="t-reader", stream=s.DEAD_LETTER_STREAM
    )
    msgs: list[Msg] = await sub.fetch(count, timeout=5.0)
    assert len(msgs) == count
    await sub.unsubscribe()
    return msgs


def test_check_size_counts_body_and_headers_against_the_limit() -> None:
    headers = {"Nats-Msg-Id": "web.dc1.p1.1"}
    assert headers_size(headers) == len(b"NATS/1.0\r\nNats-Msg-Id: web.dc1.p1.1\r\n\r\n")
    body = b"x" * (64 * KIB - headers_size(headers))
    assert check_size(s.result_subject("web"), body, headers=headers) == 64 * KIB
    with pytest.raises(MessageTooLarge) as refused:
        check_size(s.result_subject("web"), body + b"x", headers=headers)
    assert (refused.value.subject, refused.value.size, refused.value.limit) == (
        s.result_subject("web"), 64 * KIB + 1, 64 * KIB,
    )  # fmt: skip
    assert "fao.results.web" in str(refused.value)
    assert "65537 bytes" in str(refused.value)
    with pytest.raises(MessageTooLarge):
        check_size("anything", b"12345", 4)
    assert max_msg_size(s.incident_subject("opened")) == 512 * KIB
    assert max_msg_size(s.command_subject("ack")) == 64 * KIB
    assert max_msg_size(s.command_rejected_subject()) == 64 * KIB
    assert max_msg_size(s.dead_letter_subject("x")) == 1024 * KIB - PAYLOAD_HEADROOM
    assert max_msg_size(s.incident_subject("opened"), max_payload=256 * KIB) == 256 * KIB - PAYLOAD_HEADROOM
    with pytest.raises(ValueError, match="no Fao stream"):
        max_msg_size("fao.elsewhere.x")


async def test_every_stream_has_a_limit_below_max_payload_also_one_created_before(
    nc: NatsClient, nats_url: str
) -> None:
    js = nc.jetstream()
    # A stream of an earlier release, without a limit: the next start brings the limit in.
    await js.add_stream(StreamConfig(name=s.RESULTS_STREAM, subjects=[s.RESULTS_SUBJECTS]))
    await ensure_bus(js)
    limits = {spec.name: (await js.stream_info(spec.name)).config.max_msg_size for spec in STREAMS}
    assert limits == {
        s.RESULTS_STREAM: 64 * KIB,
        s.INCIDENTS_STREAM: 512 * KIB,
        s.COMMANDS_STREAM: 64 * KIB,
        s.DEAD_LETTER_STREAM: nc.max_payload - PAYLOAD_HEADROOM,
    }
    assert all(limit is not None and limit < nc.max_payload for limit in limits.values())
    # A server with a smaller max_payload: every limit stays under it.
    await ensure_streams(js, max_payload=256 * KIB)
    info = await js.stream_info(s.INCIDENTS_STREAM)
    assert info.config.max_msg_size == 256 * KIB - PAYLOAD_HEADROOM


@pytest.mark.parametrize("family", [RESULTS, INCIDENTS, COMMANDS], ids=["results", "incidents", "commands"])
async def test_a_max_size_body_never_stops_the_consumer(
    nats_url: str, nc: NatsClient, js: JetStreamContext, consumers: list[Consumer], family: Family
) -> None:
    consumer = Consumer(nats_url, family)
    consumers.append(consumer)
    await consumer.start()
    just_under = b"{" + b"x" * (nc.max_payload - 1025)  # just under the server's max_payload
    with pytest.raises(BadRequestError) as refused:
        await js.publish(family.subject, just_under)
    assert refused.value.err_code == MESSAGE_TOO_LARGE
    # A body exactly at the stream's limit is stored; not being JSON, it is dead-lettered whole.
    at_limit = b"{" + b"x" * (family.spec.msg_limit(nc.max_payload) - 1)
    await js.publish(family.subject, at_limit)
    await consumer.handles(js, family.valid())
    [dead] = await dead_letters(js, 1)
    assert dead.data == at_limit
    assert dead.headers is not None
    assert "Fao-Truncated" not in dead.headers
    assert dead.headers["Fao-Original-Subject"] == family.subject
    await eventually(lambda: settled(js, family.stream), 10, "both messages acknowledged")

    await consumer.stop()
    await js.publish(family.subject, at_limit)
    await consumer.start()
    await consumer.handles(js, family.valid())
    await eventually(lambda: settled(js, family.stream), 10, "acknowledged after the restart")
    assert (await js.stream_info(s.DEAD_LETTER_STREAM)).state.messages == 2


async def test_a_message_stored_before_the_limits_is_dead_lettered_truncated(
    nats_url: str, nc: NatsClient, consumers: list[Consumer]
) -> None:
    """The wedge of issue 7: a body just under max_payload in a stream without a limit. With the
    dead-letter headers it would exceed max_payload (the server would close the connection); it is
    dead-lettered truncated instead, and the consumer goes on, also after a restart."""
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=s.RESULTS_STREAM, subjects=[s.RESULTS_SUBJECTS]))
    big = (b"0123456789abcdef" * (nc.max_payload // 16))[: nc.max_payload - 64]
    await js.publish(s.result_subject("web"), big)
    await ensure_bus(js)
    assert (await js.stream_info(s.RESULTS_STREAM)).state.messages == 1, "the limit keeps what is stored"

    consumer = Consumer(nats_url, RESULTS)
    consumers.append(consumer)
    broker = await consumer.start()
    await consumer.handles(js, result_body())
    [dead] = await dead_letters(js, 1)
    assert dead.headers is not None
    assert dead.headers["Fao-Truncated"] == "true"
    assert dead.headers["Fao-Original-Size"] == str(len(big))
    assert dead.headers["Fao-Original-Sha256"] == hashlib.sha256(big).hexdigest()
    assert dead.headers["Fao-Original-Subject"] == s.result_subject("web")
    assert dead.data == big[:TRUNCATED_BODY]
    await eventually(lambda: settled(js, s.RESULTS_STREAM), 10, "acknowledged")
    assert broker.connection.is_connected, "the consumer's connection was never closed by the server"

    await consumer.stop()
    await consumer.start()
    await consumer.handles(js, result_body())
    assert (await js.stream_info(s.DEAD_LETTER_STREAM)).state.messages == 1, "dead-lettered once"


async def test_a_dead_letter_that_cannot_be_written_is_naked_and_retried(
    nats_url: str, js: JetStreamContext, consumers: list[Consumer]
) -> None:
    consumer = Consumer(nats_url, COMMANDS)
    consumers.append(consumer)
    await consumer.start()
    await js.delete_stream(s.DEAD_LETTER_STREAM)
    loop = asyncio.get_running_loop()
    published = loop.time()
    await js.publish(s.command_subject("ack"), b"not json")

    async def redelivered() -> bool:
        info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
        return bool(info.delivered.consumer_seq >= 2)

    await eventually(redelivered, 10, "the message came back: nak'ed, not acknowledged")
    assert loop.time() - published >= 0.45, "redelivered after the retry delay, not in a tight loop"
    info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
    assert info.ack_floor.stream_seq == 0, "never acknowledged while its dead letter is unwritten"

    await ensure_streams(js)
    await eventually(lambda: settled(js, s.COMMANDS_STREAM), 15, "dead-lettered and acknowledged")
    [dead] = await dead_letters(js, 1)
    assert dead.data == b"not json"
    info = await js.consumer_info(s.COMMANDS_STREAM, DURABLE)
    assert info.delivered.consumer_seq <= 5, "a few deliveries with growing delays"
    await consumer.handles(js, command_body())


async def test_rejected_is_dead_lettered_at_once_with_its_reason(
    nats_url: str, js: JetStreamContext, consumers: list[Consumer]
) -> None:
    consumer = Consumer(nats_url, RESULTS)
    consumer.fail_with = Rejected("result from the future: started 2036-10-05T07:00:00Z")
    consumers.append(consumer)
    await consumer.start()
    body = result_body()
    await js.publish(s.result_subject("web"), body)
    [dead] = await dead_letters(js, 1)
    assert dead.data == body
    assert dead.headers is not None
    assert dead.headers["Fao-Reason"] == "result from the future: started 2036-10-05T07:00:00Z"
    await eventually(lambda: settled(js, s.RESULTS_STREAM), 10, "acknowledged")
    info = await js.consumer_info(s.RESULTS_STREAM, DURABLE)
    assert (consumer.calls, info.delivered.consumer_seq) == (1, 1), "no retries"


async def test_every_consumer_has_a_server_side_max_deliver(
    nats_url: str, js: JetStreamContext, consumers: list[Consumer]
) -> None:
    consumer = Consumer(nats_url, INCIDENTS, max_deliveries=7)
    consumers.append(consumer)
    await consumer.start()
    info = await js.consumer_info(s.INCIDENTS_STREAM, DURABLE)
    assert info.config.max_deliver == 7 + MAX_DELIVER_MARGIN


def test_the_dead_letter_stream_holds_any_other_stream_message_with_its_headers() -> None:
    largest = max(spec.msg_limit() for spec in STREAMS if spec is not DEAD_LETTERS)
    assert DEAD_LETTERS.msg_limit() - largest >= 2 * KIB
