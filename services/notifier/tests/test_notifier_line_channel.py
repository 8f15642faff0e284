"""The LINE channel: how SDK answers and transport failures are classified, and one real push
each way through line-bot-sdk v3 against the fake LINE server."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from linebot.v3.messaging import ApiException
from multidict import CIMultiDict, CIMultiDictProxy

from fao.notifier.errors import DeliveryError
from fao.notifier.line_channel import (
    LineChannel,
    SendReceipt,
    classify_api_error,
    classify_transport_error,
)
from fao.notifier.render import RenderedMessage, load_catalogue, render_event
from fao.schemas import Incident, IncidentEvent
from fao.testing.fake_line import FAILED_TO_SEND, PUSH_PATH, RETRY_KEY_ACCEPTED, FakeLineServer

TOKEN = "channel-token"
GROUP = "C" + "a" * 32


def api_error(status: int, body: dict[str, Any] | None = None, **headers: str) -> ApiException:
    """An ``ApiException`` shaped like the async client's (headers are aiohttp's multidict)."""
    exc = ApiException(status=status, reason="reason")
    exc.body = json.dumps(body or {"message": "boom"})
    exc.headers = CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))
    return exc


def message() -> RenderedMessage:
    inc = Incident(
        id="inc-1", system_id="mail", status="open", title="SMTP down", started_at=datetime.now(UTC)
    )
    event = IncidentEvent(event_id=uuid.uuid4(), type="opened", at=inc.started_at, incident=inc)
    return render_event(event, None, load_catalogue("th"))


def test_409_is_a_receipt_for_the_message_line_accepted_earlier() -> None:
    """409 "retry key already accepted" means sent: the receipt carries the accepted request id
    and the original message ids."""
    exc = api_error(
        409,
        {"message": RETRY_KEY_ACCEPTED, "sentMessages": [{"id": "461230966842064897"}]},
        x_line_request_id="req-2",
        x_line_accepted_request_id="req-1",
    )
    assert classify_api_error(exc) == SendReceipt(
        request_id="req-2",
        sent_message_ids=("461230966842064897",),
        already_accepted=True,
        accepted_request_id="req-1",
    )


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_rate_limits_server_errors_and_request_timeouts_are_transient(status: int) -> None:
    """429 and 5xx (and 408) are worth retrying with the same retry key."""
    outcome = classify_api_error(api_error(status))
    assert isinstance(outcome, DeliveryError)
    assert outcome.permanent is False
    assert outcome.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_permanent(status: int) -> None:
    """Any other 4xx (unknown group, invalid message, bad token...) will fail again: permanent."""
    outcome = classify_api_error(api_error(status))
    assert isinstance(outcome, DeliveryError)
    assert outcome.permanent is True


def test_error_message_includes_lines_reason_and_details() -> None:
    """The recorded error says what LINE said, including per-property details."""
    body = {"message": "The request body has 1 error(s)", "details": [{"message": "bad", "property": "to"}]}
    outcome = classify_api_error(api_error(400, body))
    assert isinstance(outcome, DeliveryError)
    assert "400" in outcome.message
    assert "The request body has 1 error(s)" in outcome.message
    assert "to: bad" in outcome.message


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),  # also asyncio.TimeoutError, an alias since Python 3.11
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("truncated"),
    ],
)
def test_timeouts_and_connection_errors_are_transient(exc: BaseException) -> None:
    """No answer at all (timeout, refused, reset) may work on the next try."""
    assert classify_transport_error(exc).permanent is False


@pytest.fixture
async def line() -> AsyncIterator[FakeLineServer]:
    async with FakeLineServer(access_token=TOKEN, groups={GROUP: 4}) as server:
        yield server


@pytest.fixture
async def channel(line: FakeLineServer) -> AsyncIterator[LineChannel]:
    ch = LineChannel(base_url=line.base_url + "/", access_token=TOKEN, timeout=2.0)
    await ch.start()
    yield ch
    await ch.stop()


async def test_push_through_the_sdk_then_the_same_key_again_is_409_already_accepted(
    line: FakeLineServer, channel: LineChannel
) -> None:
    """A real push returns the request and message ids; repeating the key gets LINE's 409, which
    the channel reports as already accepted, with the same message id, and nothing new is sent."""
    key = str(uuid.uuid4())
    first = await channel.send(GROUP, [message()], key)
    again = await channel.send(GROUP, [message()], key)
    assert first.already_accepted is False
    assert first.request_id
    assert len(first.sent_message_ids) == 1
    assert again.already_accepted is True
    assert again.sent_message_ids == first.sent_message_ids
    assert again.accepted_request_id == first.request_id
    assert [r.status for r in line.requests] == [200, 409]
    assert line.requests[0].headers["x-line-retry-key"] == key
    assert len(line.pushes) == 1


async def test_unknown_group_is_a_permanent_error(channel: LineChannel) -> None:
    """LINE's 400 "Failed to send messages" (the bot is not in that group) → permanent."""
    with pytest.raises(DeliveryError) as caught:
        await channel.send("C" + "b" * 32, [message()], str(uuid.uuid4()))
    assert caught.value.permanent is True
    assert FAILED_TO_SEND in caught.value.message


async def test_slow_answer_is_a_transient_timeout(line: FakeLineServer) -> None:
    """An answer later than ``timeout`` → transient ``DeliveryError`` after about ``timeout`` s."""
    ch = LineChannel(base_url=line.base_url, access_token=TOKEN, timeout=0.2)
    await ch.start()
    line.delay_next(2.0, path=PUSH_PATH)
    try:
        with pytest.raises(DeliveryError) as caught:
            await ch.send(GROUP, [message()], str(uuid.uuid4()))
    finally:
        await ch.stop()
    assert caught.value.permanent is False
    assert "in time" in caught.value.message


async def test_refused_connection_is_transient() -> None:
    """Nothing listening → ``aiohttp.ClientConnectorError`` inside → transient ``DeliveryError``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ch = LineChannel(base_url=f"http://127.0.0.1:{port}", access_token=TOKEN, timeout=2.0)
    await ch.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            await ch.send(GROUP, [message()], str(uuid.uuid4()))
    finally:
        await ch.stop()
    assert caught.value.permanent is False
    assert "cannot reach LINE" in caught.value.message


async def test_an_acknowledged_message_goes_out_as_a_text_message(
    line: FakeLineServer, channel: LineChannel
) -> None:
    """A rendered message without a bubble is pushed as LINE's ``text`` type through the SDK."""
    inc = Incident(
        id="inc-1",
        system_id="mail",
        status="acknowledged",
        title="SMTP down",
        started_at=datetime.now(UTC),
        alerted=True,
    )
    event = IncidentEvent(
        event_id=uuid.uuid4(), type="acknowledged", at=inc.started_at, incident=inc, actor="สมชาย"
    )
    ack = render_event(event, None, load_catalogue("th"))
    receipt = await channel.send(GROUP, [ack], str(uuid.uuid4()))
    assert len(receipt.sent_message_ids) == 1
    [body] = line.pushes
    assert body["messages"] == [{"type": "text", "text": "👀 รับทราบโดย สมชาย: mail — SMTP down"}]
