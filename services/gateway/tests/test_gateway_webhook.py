"""The LINE webhook in-process (ASGI) over real NATS + FerretDB and the fake LINE API: signatures,
replays, postbacks → commands or refusals, group records, Official Account reports."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import REGISTRY
from services.gateway.tests.stack import (
    CITIZEN,
    GROUP,
    INCIDENT,
    MEMBER,
    PLATFORM_GROUP,
    PLATFORM_MEMBER,
    SECRET,
    STRANGER,
    SYSTEM_TH,
    GatewayStack,
    incident_doc,
    make_handler,
)

from fao.cli.line import describe_groups, load_groups
from fao.gateway.app import WEBHOOK_PATH, create_app
from fao.gateway.commands import command_id
from fao.gateway.line_api import SdkLine
from fao.gateway.replies import load_replies
from fao.gateway.store import GatewayStore
from fao.schemas import CommandRejected, command_event_id
from fao.schemas import subjects as s
from fao.testing.fake_line import (
    join_event,
    leave_event,
    member_joined_event,
    message_event,
    postback_event,
    sign_webhook,
    webhook_body,
)

REPLIES = load_replies()
ACK = f"action=ack&incident={INCIDENT}"


async def until(check: object, what: str, within: float = 5.0) -> None:
    """Poll ``check()`` (sync or async) until it is true."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


async def test_forged_or_missing_signature_is_refused_with_no_effect(gw: GatewayStack) -> None:
    await gw.db["incidents"].insert_one(incident_doc())
    event = postback_event(ACK, group_id=GROUP, user_id=MEMBER)
    refused_before = REGISTRY.get_sample_value("fao_gateway_webhooks_total", {"status": "401"}) or 0.0
    forged = (await gw.post([event], signature="c2lnbmVk")).status_code
    missing = (await gw.post([event], signature="")).status_code
    other_secret = (await gw.post_raw(b'{"events": []}', signature="AAAA" * 11)).status_code
    assert (forged, missing, other_secret) == (401, 401, 401)
    assert REGISTRY.get_sample_value("fao_gateway_webhooks_total", {"status": "401"}) == refused_before + 3
    assert await gw.events_recorded() == 0
    assert await gw.command_count() == 0
    assert gw.line.requests == [], "no reply, no look-up"
    # the same event, signed: it takes effect
    assert (await gw.post([event])).status_code == 200
    assert await gw.command_count() == 1


async def test_acknowledge_from_a_team_member_is_one_command_even_when_replayed_or_redelivered(
    gw: GatewayStack,
) -> None:
    await gw.db["incidents"].insert_one(incident_doc())
    event = postback_event(ACK, group_id=GROUP, user_id=MEMBER)
    assert (await gw.post([event])).status_code == 200
    [command] = await gw.commands()
    assert command.action == "ack"
    assert command.incident_id == INCIDENT
    assert (command.actor, command.source) == ("สมชาย", "line")
    assert command.command_id == command_id("postback", event["webhookEventId"])
    # the same event again, then redelivered by LINE (isRedelivery, same id and reply token)
    assert (await gw.post([event])).status_code == 200
    redelivered = {**event, "deliveryContext": {"isRedelivery": True}}
    assert (await gw.post([redelivered])).status_code == 200
    assert await gw.command_count() == 1
    assert await gw.events_recorded() == 1
    assert gw.line.replies == [], "an accepted command is not answered: the group sees the update"


async def test_a_stranger_or_a_user_without_id_gets_a_polite_refusal_and_nothing_changes(
    gw: GatewayStack,
) -> None:
    await gw.db["incidents"].insert_one(incident_doc())
    platform_person_on_apps = postback_event(ACK, group_id=GROUP, user_id=PLATFORM_MEMBER)
    events = [
        postback_event(ACK, group_id=GROUP, user_id=STRANGER),
        postback_event(ACK, group_id=GROUP),  # LINE gave no userId (not consented)
        platform_person_on_apps,  # a known person, but not in the owning team
    ]
    assert (await gw.post(events)).status_code == 200
    assert await gw.command_count() == 0
    texts = gw.reply_texts()
    assert texts == [
        REPLIES.text("not_member", action=REPLIES.action_ack),
        REPLIES.text("no_user_id", action=REPLIES.action_ack),
        REPLIES.text("not_member", action=REPLIES.action_ack),
    ]
    assert "ขออภัย" in texts[0]
    doc = await gw.db["incidents"].find_one({"_id": INCIDENT})
    assert doc is not None
    assert doc["status"] == "open"


async def test_acting_on_an_acknowledged_or_resolved_incident_is_answered_without_a_command(
    gw: GatewayStack,
) -> None:
    await gw.db["incidents"].insert_one(
        incident_doc(status="acknowledged", acknowledged_at=STARTED_PLUS, acknowledged_by="line:มานี")
    )
    await gw.db["incidents"].insert_one(
        incident_doc(
            "inc-ffff456789abcdef0123", status="resolved", resolved_at=STARTED_PLUS, resolved_by="fao:auto"
        )
    )
    await gw.post([postback_event(ACK, group_id=GROUP, user_id=MEMBER)])
    await gw.post(
        [postback_event("action=resolve&incident=inc-ffff456789abcdef0123", group_id=GROUP, user_id=MEMBER)]
    )
    await gw.post(
        [postback_event("action=ack&incident=inc-0000000000000000dead", group_id=GROUP, user_id=MEMBER)]
    )
    assert gw.reply_texts() == [
        REPLIES.text("already_acknowledged", actor="มานี"),
        REPLIES.text("already_resolved", actor=REPLIES.fao_auto),
        REPLIES.text("unknown_incident", incident="inc-0000000000000000dead"),
    ]
    assert await gw.command_count() == 0
    # resolving an acknowledged incident is allowed
    await gw.post([postback_event(f"action=resolve&incident={INCIDENT}", group_id=GROUP, user_id=MEMBER)])
    assert [c.action for c in await gw.commands()] == ["resolve"]


STARTED_PLUS = datetime(2026, 11, 29, 3, 5, tzinfo=UTC)


async def test_platform_incidents_belong_to_platform_teams(gw: GatewayStack) -> None:
    await gw.db["incidents"].insert_one(incident_doc(system_id="fao-platform", kind="zone", zones=["dr"]))
    await gw.post([postback_event(ACK, group_id=PLATFORM_GROUP, user_id=MEMBER)])
    assert await gw.command_count() == 0
    await gw.post([postback_event(ACK, group_id=PLATFORM_GROUP, user_id=PLATFORM_MEMBER)])
    [command] = await gw.commands()
    assert command.actor == "วิภา"


async def test_a_rejected_command_is_answered_with_the_incident_state(gw: GatewayStack) -> None:
    """Two people tap at once: the correlator refuses the second; its person is told who was first."""
    await gw.db["incidents"].insert_one(incident_doc())
    event = postback_event(ACK, group_id=GROUP, user_id=MEMBER)
    await gw.post([event])
    [command] = await gw.commands()
    # the correlator's answer: it was acknowledged by someone else just before
    await gw.db["incidents"].update_one(
        {"_id": INCIDENT},
        {"$set": {"status": "acknowledged", "acknowledged_by": "cli:มานี", "acknowledged_at": STARTED_PLUS}},
    )
    rejection = CommandRejected(
        command_id=command.command_id, action="ack", actor="สมชาย", source="line", incident_id=INCIDENT,
        at=datetime.now(UTC), reason="already acknowledged by cli:มานี",
    )  # fmt: skip
    nc = gw.js._nc
    await nc.publish(s.command_rejected_subject(), rejection.model_dump_json().encode())
    await until(
        lambda: gw.reply_texts() == [REPLIES.text("already_acknowledged", actor="มานี")], "the refusal reply"
    )
    assert gw.line.replies[0]["replyToken"] == event["replyToken"]


async def test_malformed_bodies_after_a_valid_signature_are_400_and_huge_ones_413(gw: GatewayStack) -> None:
    for body in (b"not json", b"[1, 2]", b'{"events": "no"}', b"\xff\xfe", b"[" * 60_000):
        assert (await gw.post_raw(body)).status_code == 400, body[:20]
    assert (await gw.post_raw(b'{"events": []}')).status_code == 200, "LINE's connectivity check"
    huge = b'{"events": [], "pad": "' + b"x" * (64 * 1024) + b'"}'
    assert (await gw.post_raw(huge)).status_code == 413
    assert await gw.events_recorded() == 0


async def test_standby_events_are_recorded_but_never_acted_on(gw: GatewayStack) -> None:
    await gw.db["incidents"].insert_one(incident_doc())
    assert (
        await gw.post([postback_event(ACK, group_id=GROUP, user_id=MEMBER, mode="standby")])
    ).status_code == 200
    assert (await gw.post([message_event("เว็บล่ม", user_id=CITIZEN, mode="standby")])).status_code == 200
    assert await gw.events_recorded() == 2
    assert await gw.command_count() == 0
    assert gw.line.replies == []


async def test_join_and_leave_are_recorded_and_fao_line_groups_warns_about_left_groups(
    gw: GatewayStack,
) -> None:
    other = "C" + "c3" * 16
    assert (await gw.post([join_event(GROUP)])).status_code == 200
    await gw.post([member_joined_event(other, [MEMBER])])  # a group joined before the gateway existed
    await gw.post([join_event(PLATFORM_GROUP)])
    gw.line.remove_group(PLATFORM_GROUP)
    await gw.post([leave_event(PLATFORM_GROUP)])
    group = await gw.db["line_groups"].find_one({"_id": GROUP})
    assert group is not None
    assert (group["in_group"], group["name"], group["member_count"]) == (True, "ทีมพัฒนาระบบงาน แจ้งเตือน", 5)
    left = await gw.db["line_groups"].find_one({"_id": PLATFORM_GROUP})
    assert left is not None
    assert left["in_group"] is False
    assert left["left_at"] is not None
    # an old join delivered late does not undo the leave
    late = join_event(PLATFORM_GROUP)
    late["timestamp"] -= 60_000
    await gw.post([late])
    left = await gw.db["line_groups"].find_one({"_id": PLATFORM_GROUP})
    assert left is not None
    assert left["in_group"] is False

    view = describe_groups(await load_groups(gw.mongo_url, gw.db.name))
    assert len(view.lines) == 2
    assert any(
        line.startswith(GROUP) and "ทีมพัฒนาระบบงาน แจ้งเตือน" in line and "team: apps" in line
        for line in view.lines
    )
    assert any(line.startswith(other) and "no team" in line for line in view.lines)
    assert len(view.warnings) == 1
    assert "team platform" in view.warnings[0]
    assert "left" in view.warnings[0]
    everything = describe_groups(await load_groups(gw.mongo_url, gw.db.name), show_left=True)
    assert len(everything.lines) == 3


async def test_an_oa_report_opens_a_manual_incident_with_a_reference_and_is_rate_limited(
    gw: GatewayStack,
) -> None:
    first = message_event("เข้าเว็บไซต์กรมไม่ได้ค่ะ", user_id=CITIZEN)
    assert (await gw.post([first])).status_code == 200
    [command] = await gw.commands()
    assert (command.action, command.system_id, command.text) == ("open_manual", None, "เข้าเว็บไซต์กรมไม่ได้ค่ะ")
    [reply] = gw.reply_texts()
    reference = re.search(r"FAO-[0-9A-Z]{8}", reply)
    assert reference is not None
    report = await gw.db["oa_reports"].find_one({"_id": reference.group()})
    assert report is not None
    assert (report["user_id"], report["incident_id"], report["reference"]) == (
        CITIZEN,
        None,
        reference.group(),
    )
    assert reference.group() in command.actor, "a citizen is named by the reference, not by LINE data"
    # the correlator applied it: the housekeeping finds the incident in its timeline
    await gw.db["incident_timeline"].insert_one(
        {
            "_id": str(command_event_id(command.command_id)),
            "incident_id": "man-0123456789abcdef0123",
            "type": "opened",
        }
    )
    await gw.housekeeping()
    report = await gw.db["oa_reports"].find_one({"_id": reference.group()})
    assert report is not None
    assert report["incident_id"] == "man-0123456789abcdef0123"
    # two more within the window are accepted, the fourth is refused politely
    await gw.post([message_event("ยังเข้าไม่ได้", user_id=CITIZEN)])
    await gw.post([message_event("ยังเข้าไม่ได้อีก", user_id=CITIZEN)])
    await gw.post([message_event("ช่วยด้วย", user_id=CITIZEN)])
    assert await gw.command_count() == 3
    assert gw.reply_texts()[-1] == REPLIES.text("report_rate_limited", minutes=10)
    # another user is not limited by this one
    await gw.post([message_event("ระบบช้ามาก", user_id=STRANGER)])
    assert await gw.command_count() == 4


async def test_with_open_incidents_the_reporter_picks_the_system_from_a_quick_reply(gw: GatewayStack) -> None:
    await gw.db["incidents"].insert_one(incident_doc())
    message = message_event("ยื่นคำขอออนไลน์ไม่ได้", user_id=CITIZEN)
    await gw.post([message])
    assert await gw.command_count() == 0, "waiting for the pick"
    [body] = gw.line.replies
    quick = body["messages"][0]["quickReply"]["items"]
    labels = [item["action"]["label"] for item in quick]
    assert labels == [SYSTEM_TH[:19] + "…", REPLIES.other_system]
    assert "10.20.30.40" not in str(body), "nothing internal reaches a citizen"
    pick = postback_event(quick[0]["action"]["data"], user_id=CITIZEN)
    await gw.post([pick])
    await gw.post([postback_event(quick[1]["action"]["data"], user_id=CITIZEN)])  # a second tap
    [command] = await gw.commands()
    assert (command.action, command.incident_id, command.system_id) == ("note", INCIDENT, "e-service")
    assert command.text == "ยื่นคำขอออนไลน์ไม่ได้"
    assert command.command_id == command_id("report", message["webhookEventId"])
    replies = gw.reply_texts()
    assert "FAO-" in replies[1]
    assert replies[1] == replies[2], "the second tap gets the same reference"
    assert await gw.db["oa_pending_reports"].count_documents({}) == 0
    [report] = await gw.db["oa_reports"].find({}).to_list()
    assert (report["incident_id"], report["user_id"]) == (INCIDENT, CITIZEN), "known at once for a note"


async def test_a_report_nobody_picks_a_system_for_is_sent_without_one(gw: GatewayStack) -> None:
    await gw.db["incidents"].insert_one(incident_doc())
    await gw.post([message_event("แจ้งปัญหา", user_id=CITIZEN)])
    await gw.housekeeping()
    assert await gw.command_count() == 0, "not yet"
    await gw.housekeeping(after=timedelta(minutes=11))
    [command] = await gw.commands()
    assert (command.system_id, command.text) == (None, "แจ้งปัญหา")
    assert await gw.db["oa_reports"].count_documents({"user_id": CITIZEN}) == 1
    assert uuid.UUID(str(command.command_id))


async def test_two_replicas_share_the_replay_guard_and_the_rate_limit(gw: GatewayStack) -> None:
    """A second gateway replica on the same MongoDB and NATS: an event delivered to both is one
    command, and a user's reports count against one limit wherever they land."""
    line = SdkLine(gw.line.base_url, "test-token", timeout=5)
    await line.start()
    try:
        other, _ = make_handler(gw.db, gw.js, line)
        transport = httpx.ASGITransport(app=create_app(lambda: other, SECRET, 64 * 1024))
        async with httpx.AsyncClient(transport=transport, base_url="http://replica-2.test") as replica:

            async def post_to_replica(event: dict[str, object]) -> int:
                body = webhook_body([event])
                headers = {"X-Line-Signature": sign_webhook(body, SECRET)}
                return (await replica.post(WEBHOOK_PATH, content=body, headers=headers)).status_code

            for n in range(4):
                message = message_event(f"รายงาน {n}", user_id=CITIZEN)
                if n % 2:
                    assert await post_to_replica(message) == 200
                else:
                    assert (await gw.post([message])).status_code == 200
            assert await gw.command_count() == 3, "the fourth report is over the limit"
            assert gw.reply_texts()[-1] == REPLIES.text("report_rate_limited", minutes=10)
            await gw.db["incidents"].insert_one(incident_doc())
            tap = postback_event(ACK, group_id=GROUP, user_id=MEMBER)
            assert (await gw.post([tap])).status_code == 200
            assert await post_to_replica(tap) == 200
            assert await gw.command_count() == 3 + 1
    finally:
        await line.stop()


async def test_old_event_ids_and_rate_slots_are_forgotten(gw: GatewayStack) -> None:
    store = GatewayStore(gw.db)
    now = datetime.now(UTC)
    await gw.db["line_webhook_events"].insert_many(
        [{"_id": "old", "received_at": now - timedelta(days=8)}, {"_id": "new", "received_at": now}]
    )
    await gw.db["oa_rate_slots"].insert_many(
        [{"_id": "u|1|0", "at": now - timedelta(minutes=30)}, {"_id": "u|2|0", "at": now}]
    )
    assert await store.forget_old(now, timedelta(days=7), timedelta(minutes=20)) == 2
    assert [d["_id"] for d in await gw.db["line_webhook_events"].find({}).to_list()] == ["new"]
    assert [d["_id"] for d in await gw.db["oa_rate_slots"].find({}).to_list()] == ["u|2|0"]
