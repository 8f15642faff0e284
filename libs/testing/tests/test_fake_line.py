"""Tests of the fake LINE Messaging API server, driven through the real line-bot-sdk v3 async client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    ErrorResponse,
    FlexContainer,
    FlexMessage,
    PushMessageRequest,
    ReplyMessageRequest,
    TextMessage,
)

from fao.testing.fake_line import (
    AUTH_FAILED,
    FAILED_TO_SEND,
    INTERNAL_ERROR,
    INVALID_REPLY_TOKEN,
    MONTHLY_LIMIT,
    PUSH_PATH,
    QUOTA_PATH,
    RATE_LIMITED,
    REPLY_PATH,
    RETRY_KEY_ACCEPTED,
    FakeLineServer,
    message_texts,
)

TOKEN = "test-token"
GROUP = "C" + "a" * 32
SMALL_GROUP = "C" + "b" * 32
USER = "U" + "c" * 32


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's aiohttp session trusts the environment; never send loopback traffic to a proxy.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def line() -> AsyncIterator[FakeLineServer]:
    async with FakeLineServer(access_token=TOKEN, groups={GROUP: 5, SMALL_GROUP: 2}) as server:
        yield server


@pytest.fixture
async def api(line: FakeLineServer) -> AsyncIterator[Any]:
    async with AsyncApiClient(Configuration(host=line.base_url, access_token=TOKEN)) as client:
        yield AsyncMessagingApi(client)


def _push(text: str, to: str = GROUP) -> Any:
    return PushMessageRequest(to=to, messages=[TextMessage(text=text)])


def _error(exc: pytest.ExceptionInfo[ApiException]) -> Any:
    return ErrorResponse.from_json(exc.value.body)


async def _raw(line: FakeLineServer, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, line.base_url + path, headers=headers, **kwargs) as response,
    ):
        return response.status, await response.json(), response.headers


async def test_base_url_has_no_trailing_slash_and_a_free_port() -> None:
    server = FakeLineServer(host="127.0.0.1", port=0)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    await server.start()
    try:
        assert server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()
    await server.stop()


async def test_push_with_retry_key_is_accepted_and_recorded(line: FakeLineServer, api: Any) -> None:
    key = str(uuid.uuid4())
    response = await api.push_message_with_http_info(_push("disk full on web-1"), x_line_retry_key=key)

    assert response.status_code == 200
    uuid.UUID(response.headers["x-line-request-id"])
    [sent] = response.data.sent_messages
    assert sent.id.isdigit()
    assert sent.quote_token
    assert line.pushes == [
        {
            "to": GROUP,
            "messages": [{"type": "text", "text": "disk full on web-1"}],
            "notificationDisabled": False,
        }
    ]
    [recorded] = line.requests
    assert (recorded.method, recorded.path, recorded.status) == ("POST", PUSH_PATH, 200)
    assert recorded.headers["authorization"] == f"Bearer {TOKEN}"
    assert recorded.headers["x-line-retry-key"] == key
    assert line.texts(GROUP) == ["disk full on web-1"]


async def test_repeated_retry_key_answers_409_with_the_original_messages(
    line: FakeLineServer, api: Any
) -> None:
    key = str(uuid.uuid4())
    first = await api.push_message_with_http_info(_push("cpu high"), x_line_retry_key=key)

    with pytest.raises(ApiException) as exc:
        await api.push_message(_push("cpu high"), x_line_retry_key=key)

    assert exc.value.status == 409
    assert exc.value.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert exc.value.headers["x-line-request-id"] != first.headers["x-line-request-id"]
    error = _error(exc)
    assert error.message == RETRY_KEY_ACCEPTED
    assert [m.id for m in error.sent_messages] == [m.id for m in first.data.sent_messages]
    assert len(line.pushes) == 1
    assert [r.status for r in line.requests] == [200, 409]


async def test_failed_attempt_leaves_the_retry_key_usable(line: FakeLineServer, api: Any) -> None:
    key = str(uuid.uuid4())
    line.fail_next(500)

    with pytest.raises(ApiException) as exc:
        await api.push_message(_push("probe failed"), x_line_retry_key=key)
    assert exc.value.status == 500
    assert _error(exc).message == INTERNAL_ERROR
    assert line.pushes == []

    await api.push_message(_push("probe failed"), x_line_retry_key=key)
    with pytest.raises(ApiException) as again:
        await api.push_message(_push("probe failed"), x_line_retry_key=key)

    assert again.value.status == 409
    assert len(line.pushes) == 1
    assert [r.status for r in line.requests] == [500, 200, 409]


async def test_injected_rate_limit(line: FakeLineServer, api: Any) -> None:
    line.fail_next(429, count=2)

    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            await api.push_message(_push("x"), x_line_retry_key=str(uuid.uuid4()))
        assert exc.value.status == 429
        assert _error(exc).message == RATE_LIMITED
    await api.push_message(_push("x"), x_line_retry_key=str(uuid.uuid4()))

    assert len(line.pushes) == 1
    assert line.usage == 5  # rejected requests cost nothing


async def test_fault_on_another_path_leaves_push_alone(line: FakeLineServer, api: Any) -> None:
    line.fail_next(503, path=QUOTA_PATH, message="maintenance")

    await api.push_message(_push("ok"))
    with pytest.raises(ApiException) as exc:
        await api.get_message_quota()

    assert exc.value.status == 503
    assert _error(exc).message == "maintenance"
    assert (await api.get_message_quota()).type == "none"


async def test_quota_counts_group_members_per_push(line: FakeLineServer, api: Any) -> None:
    line.set_quota(8)
    quota = await api.get_message_quota()
    assert (quota.type, quota.value) == ("limited", 8)

    three_messages = PushMessageRequest(to=GROUP, messages=[TextMessage(text=str(i)) for i in range(3)])
    await api.push_message(three_messages)
    assert (await api.get_message_quota_consumption()).total_usage == 5
    await api.push_message(_push("small", to=SMALL_GROUP))
    assert (await api.get_message_quota_consumption()).total_usage == 7

    with pytest.raises(ApiException) as exc:
        await api.push_message(_push("over", to=SMALL_GROUP))
    assert exc.value.status == 429
    assert _error(exc).message == MONTHLY_LIMIT

    await api.push_message(_push("one person", to=USER))
    await api.reply_message(ReplyMessageRequest(reply_token="free", messages=[TextMessage(text="ack")]))
    assert (await api.get_message_quota_consumption()).total_usage == 8
    line.set_quota(None)
    assert (await api.get_message_quota()).type == "none"


async def test_group_member_count_is_what_a_push_costs_and_404_outside_the_group(
    line: FakeLineServer, api: Any
) -> None:
    """``GET /v2/bot/group/{groupId}/members/count``: the count a push to the group costs; 404 for
    a group the bot is not in; a group added later is counted at once."""
    assert (await api.get_group_member_count(GROUP)).count == 5
    assert (await api.get_group_member_count(SMALL_GROUP)).count == 2
    with pytest.raises(ApiException) as missing:
        await api.get_group_member_count("C" + "0" * 32)
    assert missing.value.status == 404
    line.add_group("C" + "0" * 32, 12)
    assert (await api.get_group_member_count("C" + "0" * 32)).count == 12


async def test_reply_token_works_once(line: FakeLineServer, api: Any) -> None:
    request = ReplyMessageRequest(reply_token="token-1", messages=[TextMessage(text="acknowledged")])
    response = await api.reply_message(request)
    assert len(response.sent_messages) == 1

    with pytest.raises(ApiException) as exc:
        await api.reply_message(request)

    assert exc.value.status == 400
    assert _error(exc).message == INVALID_REPLY_TOKEN
    assert line.replies == [request.to_dict()]
    assert line.pushes == []
    assert line.usage == 0


async def test_expired_reply_token_is_invalid(line: FakeLineServer, api: Any) -> None:
    line.expire_reply_token("old")
    with pytest.raises(ApiException) as exc:
        await api.reply_message(ReplyMessageRequest(reply_token="old", messages=[TextMessage(text="x")]))
    assert exc.value.status == 400


async def test_retry_key_on_reply_is_rejected(line: FakeLineServer, api: Any) -> None:
    request = ReplyMessageRequest(reply_token="token-2", messages=[TextMessage(text="x")])
    with pytest.raises(ApiException) as exc:
        await api.reply_message(request, _headers={"X-Line-Retry-Key": str(uuid.uuid4())})

    assert exc.value.status == 400
    await api.reply_message(request)  # the refused attempt did not use the token up


async def test_unknown_group_is_rejected(line: FakeLineServer, api: Any) -> None:
    with pytest.raises(ApiException) as exc:
        await api.push_message(_push("hello?", to="C" + "0" * 32))

    assert exc.value.status == 400
    assert _error(exc).message == FAILED_TO_SEND
    assert line.usage == 0
    line.add_group("C" + "0" * 32, 4)
    await api.push_message(_push("hello!", to="C" + "0" * 32))
    assert line.usage == 4


async def test_any_group_is_known_when_none_are_configured() -> None:
    async with (
        FakeLineServer() as line,
        AsyncApiClient(Configuration(host=line.base_url, access_token="anything")) as client,
    ):
        await AsyncMessagingApi(client).push_message(_push("x", to="Canything"))
        assert line.usage == 1


async def test_wrong_access_token_is_refused(line: FakeLineServer) -> None:
    async with AsyncApiClient(Configuration(host=line.base_url, access_token="wrong")) as client:
        with pytest.raises(ApiException) as exc:
            await AsyncMessagingApi(client).push_message(_push("x"))

    assert exc.value.status == 401
    assert _error(exc).message == AUTH_FAILED
    assert line.pushes == []


async def test_retry_key_must_be_a_uuid(line: FakeLineServer, api: Any) -> None:
    with pytest.raises(ApiException) as exc:
        await api.push_message(_push("x"), x_line_retry_key="not-a-uuid")
    assert exc.value.status == 400
    assert line.pushes == []


async def test_invalid_bodies_get_400_with_details(line: FakeLineServer) -> None:
    six = [{"type": "text", "text": str(i)} for i in range(6)]
    status, body, headers = await _raw(line, "POST", PUSH_PATH, json={"to": GROUP, "messages": six})
    assert status == 400
    assert body["details"] == [{"message": "Size must be between 1 and 5", "property": "messages"}]
    uuid.UUID(headers["x-line-request-id"])

    status, body, _ = await _raw(line, "POST", PUSH_PATH, json={"messages": [{"text": "no type"}]})
    assert status == 400
    assert {d["property"] for d in body["details"]} == {"to", "messages[0].type"}

    too_long = "😀" * 2501  # 5002 UTF-16 code units
    status, body, _ = await _raw(
        line, "POST", PUSH_PATH, json={"to": GROUP, "messages": [{"type": "text", "text": too_long}]}
    )
    assert status == 400
    assert body["details"][0]["property"] == "messages[0].text"

    status, body, _ = await _raw(line, "POST", PUSH_PATH, data=b"{not json")
    assert status == 400
    assert line.pushes == []


async def test_unknown_path_is_404_with_request_id(line: FakeLineServer) -> None:
    status, body, headers = await _raw(line, "GET", "/v2/bot/info")
    assert status == 404
    assert body == {"message": "Not found"}
    uuid.UUID(headers["x-line-request-id"])
    status, _, _ = await _raw(line, "GET", REPLY_PATH)
    assert status == 405


async def test_flex_message_texts(line: FakeLineServer, api: Any) -> None:
    bubble = {
        "type": "bubble",
        "header": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "🔴 FIRING"}]},
        "body": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "text", "text": "เว็บไซต์ล่ม"},
                {
                    "type": "text",
                    "contents": [{"type": "span", "text": "host: "}, {"type": "span", "text": "web-1"}],
                },
            ],
        },
        "footer": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "button", "action": {"type": "postback", "label": "Ack", "data": "ack=1"}},
            ],
        },
    }
    flex = FlexMessage(alt_text="FIRING: เว็บไซต์ล่ม", contents=FlexContainer.from_dict(bubble))
    await api.push_message(PushMessageRequest(to=GROUP, messages=[flex, TextMessage(text="details")]))
    await api.push_message(_push("elsewhere", to=SMALL_GROUP))

    assert line.texts(GROUP) == ["FIRING: เว็บไซต์ล่ม", "🔴 FIRING", "เว็บไซต์ล่ม", "host: ", "web-1", "details"]
    assert line.texts() == [*line.texts(GROUP), "elsewhere"]
    [sent_flex, _] = line.requests[0].json["messages"]
    assert message_texts(sent_flex)[0] == "FIRING: เว็บไซต์ล่ม"


async def test_delayed_response_times_out_but_push_was_accepted(line: FakeLineServer, api: Any) -> None:
    key = str(uuid.uuid4())
    line.delay_next(30)

    with pytest.raises(TimeoutError):
        await api.push_message(_push("slow"), x_line_retry_key=key, _request_timeout=0.2)
    assert len(line.pushes) == 1  # LINE took it; only the answer was lost

    with pytest.raises(ApiException) as exc:
        await api.push_message(_push("slow"), x_line_retry_key=key)
    assert exc.value.status == 409

    started = time.monotonic()
    await line.stop()  # releases the held-back response instead of waiting 30 s
    assert time.monotonic() - started < 5


async def test_retry_key_expires_after_its_ttl() -> None:
    async with (
        FakeLineServer(retry_key_ttl=0.05) as line,
        AsyncApiClient(Configuration(host=line.base_url, access_token=TOKEN)) as client,
    ):
        api = AsyncMessagingApi(client)
        key = str(uuid.uuid4())
        await api.push_message(_push("again"), x_line_retry_key=key)
        await asyncio.sleep(0.1)
        await api.push_message(_push("again"), x_line_retry_key=key)
        assert len(line.pushes) == 2


async def test_wait_for_pushes(line: FakeLineServer, api: Any) -> None:
    async def push_later() -> None:
        await asyncio.sleep(0.05)
        await api.push_message(_push("late"))

    task = asyncio.create_task(push_later())
    pushes = await line.wait_for_pushes(1, timeout=5)
    await task
    assert pushes[0]["messages"][0]["text"] == "late"

    with pytest.raises(AssertionError, match=r"expected at least 2 accepted push\(es\) within 0.05s, got 1"):
        await line.wait_for_pushes(2, timeout=0.05)


async def test_clear_and_reset(line: FakeLineServer, api: Any) -> None:
    key = str(uuid.uuid4())
    await api.push_message(_push("x"), x_line_retry_key=key)
    line.clear()
    assert line.requests == []
    assert line.usage == 5
    with pytest.raises(ApiException):
        await api.push_message(_push("x"), x_line_retry_key=key)

    line.fail_next(500)
    line.reset()
    assert (line.requests, line.usage) == ([], 0)
    await api.push_message(_push("x"), x_line_retry_key=key)
    assert len(line.pushes) == 1


def test_command_line_runner_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "NO_PROXY": "127.0.0.1"}
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fao.testing.fake_line_main",
            "--port",
            "0",
            "--group",
            "Cdev=3",
            "--quota",
            "9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            with _urlopen(base_url + QUOTA_PATH) as response:
                assert json.load(response) == {"type": "limited", "value": 9}
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert f"GET {QUOTA_PATH} -> 200" in stderr


def _urlopen(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(url, timeout=5)
