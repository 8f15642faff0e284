"""Fuzz: 1,200 random webhook bodies (random bytes, random JSON, random event structures, with
valid, forged and missing signatures) through the ASGI app, with real NATS and FerretDB behind it.

Pinned: never a 5xx; a body whose signature is not valid has no effect at all (no event recorded,
no command, no LINE call); a valid one answers 200, 400 or 413 and never more than one command
per event id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services.gateway.tests.stack import (
    CITIZEN,
    GROUP,
    INCIDENT,
    MEMBER,
    SECRET,
    STRANGER,
    add_inventory,
    incident_doc,
    make_handler,
)

from fao.gateway.app import WEBHOOK_PATH, create_app
from fao.gateway.line_api import SdkLine
from fao.runtime.bus import ensure_bus
from fao.runtime.store import connect
from fao.schemas import subjects as s
from fao.testing.fake_line import FakeLineServer, sign_webhook, webhook_event_id

EXAMPLES = 1200
MAX_BODY = 16 * 1024

user_ids = st.sampled_from([MEMBER, STRANGER, CITIZEN, "U" + "f" * 32, "Unot-a-user", ""])
chat_ids = st.sampled_from([GROUP, "C" + "0" * 32, "R" + "9" * 32, "Cshort", "not a group"])
json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
any_json = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
postback_data = st.one_of(
    st.sampled_from(
        [
            f"action=ack&incident={INCIDENT}",
            f"action=resolve&incident={INCIDENT}",
            "action=ack&incident=inc-00000000000000000000",
            "action=report&report=01HZZZZZZZZZZZZZZZZZZZZZZZ&system=e-service",
            "action=report&report=x&system=",
            "action=ack&incident=a&incident=b",
            "action=%ZZ",
        ]
    ),
    st.text(max_size=60),
)
sources = st.one_of(
    st.fixed_dictionaries({"type": st.just("user"), "userId": user_ids}),
    st.fixed_dictionaries({"type": st.just("group"), "groupId": chat_ids}, optional={"userId": user_ids}),
    st.fixed_dictionaries({"type": st.just("room"), "roomId": chat_ids}, optional={"userId": user_ids}),
    any_json,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["postback", "message", "join", "leave", "memberJoined", "memberLeft", "follow", "unsend"]
        )
        | any_json,
        "webhookEventId": st.builds(webhook_event_id) | st.sampled_from(["dup-1", "dup-2"]) | any_json,
        "timestamp": st.integers(min_value=-1, max_value=8_000_000_000_000) | any_json,
        "mode": st.sampled_from(["active", "standby"]) | any_json,
        "replyToken": st.text(min_size=1, max_size=40) | any_json,
        "source": sources,
        "deliveryContext": st.fixed_dictionaries({"isRedelivery": st.booleans() | any_json}) | any_json,
        "postback": st.fixed_dictionaries({"data": postback_data}) | any_json,
        "message": st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=80)}) | any_json,
        "joined": st.fixed_dictionaries({"members": st.lists(st.fixed_dictionaries({"userId": user_ids}))})
        | any_json,
    },
)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    any_json.map(_dump),
    st.lists(events, max_size=4).map(lambda evs: _dump({"destination": "U" + "0" * 32, "events": evs})),
    st.fixed_dictionaries({"events": any_json}).map(_dump),
)
signatures = st.sampled_from(["valid", "valid", "forged", "missing", "other-secret"])


@dataclass
class Target:
    client: httpx.AsyncClient
    db_events: Any
    js: Any
    line: FakeLineServer


@asynccontextmanager
async def target(nats_url: str, mongo_url: str, db_name: str) -> AsyncIterator[Target]:
    """The webhook app with its real dependencies, all in this (the fuzz test's own) event loop."""
    mongo = connect(mongo_url)
    nc = await nats.connect(nats_url)
    try:
        db = mongo[db_name]
        await add_inventory(db)
        await db["incidents"].insert_one(incident_doc())
        js = nc.jetstream()
        await ensure_bus(js)
        async with FakeLineServer(access_token="test-token") as line:
            api = SdkLine(line.base_url, "test-token", timeout=5)
            await api.start()
            try:
                handler, _ = make_handler(db, js, api)
                app = create_app(lambda: handler, SECRET, MAX_BODY)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                    yield Target(client, db["line_webhook_events"], js, line)
            finally:
                await api.stop()
    finally:
        await nc.close()
        await mongo.drop_database(db_name)
        await mongo.close()


def test_random_bodies_never_get_a_5xx_and_unsigned_ones_have_no_effect(
    nats_url: str, mongo_url: str, mongo_db_name: str
) -> None:
    with asyncio.Runner() as runner:
        context = target(nats_url, mongo_url, mongo_db_name)
        t = runner.run(context.__aenter__())
        statuses: dict[int, int] = {}
        try:

            async def send(body: bytes, how: str) -> None:
                headers = {"Content-Type": "application/json"}
                if how == "valid":
                    headers["X-Line-Signature"] = sign_webhook(body, SECRET)
                elif how == "other-secret":
                    headers["X-Line-Signature"] = sign_webhook(body, "not-the-secret")
                elif how == "forged":
                    headers["X-Line-Signature"] = "x" * 44
                before = (await t.db_events.count_documents({}), await _commands(t), len(t.line.requests))
                answer = await t.client.post(WEBHOOK_PATH, content=body, headers=headers)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                assert answer.status_code < 500, (answer.status_code, answer.text, body[:200])
                if how != "valid":
                    assert answer.status_code in (401, 413), answer.status_code
                    # The ASGI call returns after the background follow-ups: any LINE call is in.
                    after = (await t.db_events.count_documents({}), await _commands(t), len(t.line.requests))
                    assert after == before, "a webhook without a valid signature changed something"
                else:
                    assert answer.status_code in (200, 400, 413), answer.status_code

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(body=bodies, how=signatures)
            def fuzz(body: bytes, how: str) -> None:
                runner.run(send(body, how))

            fuzz()
            # every command in the stream has a distinct id (dedupe by webhook event id held)
            assert runner.run(_distinct_commands(t))
        finally:
            runner.run(context.__aexit__(None, None, None))
    assert statuses.get(200, 0) > 100, statuses
    assert statuses.get(401, 0) > 100, statuses
    assert statuses.get(400, 0) > 50, statuses


async def _commands(t: Target) -> int:
    return int((await t.js.stream_info(s.COMMANDS_STREAM)).state.messages)


async def _distinct_commands(t: Target) -> bool:
    info = await t.js.stream_info(s.COMMANDS_STREAM)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
        msg = await t.js.get_msg(s.COMMANDS_STREAM, seq)
        ids.append(json.loads(msg.data)["command_id"])
    return len(ids) == len(set(ids))
