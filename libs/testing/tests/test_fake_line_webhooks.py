"""The fake LINE server as a webhook sender (signed like LINE) and its group summary endpoint,
driven by the real line-bot-sdk."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import pytest
from aiohttp import web
from linebot.v3 import WebhookParser
from linebot.v3.messaging import ApiException, AsyncApiClient, AsyncMessagingApi, Configuration
from linebot.v3.webhooks import JoinEvent, MemberJoinedEvent, MessageEvent, PostbackEvent

from fao.testing.fake_line import (
    FakeLineServer,
    join_event,
    leave_event,
    member_joined_event,
    member_left_event,
    message_event,
    postback_event,
    webhook_event_id,
)

GROUP = "C" + "1" * 32
USER = "U" + "2" * 32
SECRET = "channel-secret"


async def test_webhooks_are_signed_like_lines_and_parse_with_the_sdk() -> None:
    received: list[tuple[bytes, str | None]] = []

    async def bot(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get("X-Line-Signature")))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", bot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    events = [
        postback_event("action=ack&incident=inc-1", group_id=GROUP, user_id=USER),
        postback_event("action=ack&incident=inc-1", group_id=GROUP),
        message_event("สวัสดี", user_id=USER),
        join_event(GROUP),
        leave_event(GROUP),
        member_joined_event(GROUP, [USER]),
        member_left_event(GROUP, [USER]),
    ]
    try:
        async with FakeLineServer() as line:
            url = f"http://127.0.0.1:{port}/hook"
            assert await line.send_webhook(url, events, channel_secret=SECRET) == 200
            assert await line.send_webhook(url, events[:1], channel_secret=SECRET, signature="") == 200
    finally:
        await runner.cleanup()
    body, signature = received[0]
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert signature == expected
    assert received[1][1] is None, "signature '' sends no header"
    parsed = WebhookParser(SECRET).parse(body.decode(), signature)
    assert [type(e) for e in parsed[:4]] == [PostbackEvent, PostbackEvent, MessageEvent, JoinEvent]
    assert isinstance(parsed[5], MemberJoinedEvent)
    assert parsed[0].source.user_id == USER
    assert parsed[1].source.user_id is None, "a group postback without consent has no userId"
    raw = json.loads(body)["events"]
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", e["webhookEventId"]) for e in raw)
    assert len({e["webhookEventId"] for e in raw}) == len(raw)
    assert all(e["deliveryContext"] == {"isRedelivery": False} and e["mode"] == "active" for e in raw)
    assert "replyToken" not in raw[4], "leave events carry no reply token"


def test_webhook_event_ids_sort_by_time() -> None:
    assert webhook_event_id(1_000) < webhook_event_id(2_000)


async def test_group_summary_for_groups_the_bot_is_in_and_404_after_it_left() -> None:
    async with FakeLineServer(access_token="t", groups={GROUP: 4}) as line:
        line.set_group_name(GROUP, "ทีมเฝ้าระบบ")
        async with AsyncApiClient(Configuration(host=line.base_url, access_token="t")) as client:
            api = AsyncMessagingApi(client)
            summary = await api.get_group_summary(GROUP)
            assert (summary.group_id, summary.group_name) == (GROUP, "ทีมเฝ้าระบบ")
            line.remove_group(GROUP)
            with pytest.raises(ApiException) as missing:
                await api.get_group_summary(GROUP)
            assert missing.value.status == 404
