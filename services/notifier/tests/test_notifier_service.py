"""End-to-end behaviour of the notifier process: real nats-server, real FerretDB, fake LINE API.

Each test serves ``fao.notifier.app.build(...)`` in-process (conftest's ``stack``), publishes
incident events to the incident stream the way the correlator does, and checks what the fake LINE
server accepted, what ``deliveries``/``outbox`` hold, and that the durable consumer ends with
nothing left unacknowledged (``settled``) and no delivery left to send (``quiet``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.notifier.tests.stack import Stack

from fao.notifier.deliveries import claim_id, retry_key
from fao.schemas import PLATFORM_SYSTEM, Incident
from fao.testing.fake_line import FAILED_TO_SEND, PUSH_PATH, FakeLineServer, RecordedRequest


def push_requests(line: FakeLineServer) -> list[RecordedRequest]:
    """Every push request the fake received, whatever it answered."""
    return [r for r in line.requests if r.path == PUSH_PATH]


def flex(body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = body["messages"][0]
    assert message["type"] == "flex"
    return message


async def test_opened_event_pushes_one_flex_message_to_the_team_group_naming_the_system(
    stack: Stack,
) -> None:
    """An ``opened`` event → exactly one push, to the owning team's group, with the Thai system
    name in altText and bubble, the claim's retry key, and a ``sent`` delivery record."""
    await stack.add_inventory([stack.group])
    await stack.start_notifier()
    event = stack.event("opened")
    await stack.publish(event)

    [body] = await stack.line.wait_for_pushes(1)
    await stack.quiet()
    assert body["to"] == stack.group
    message = flex(body)
    assert stack.system_name_th in message["altText"]
    assert "ระบบขัดข้อง" in message["altText"]
    assert stack.system_name_th in str(message["contents"]["body"])
    [request] = push_requests(stack.line)
    claim = claim_id(event.event_id, stack.group)
    assert request.headers["x-line-retry-key"] == retry_key(claim)
    assert request.headers["authorization"] == "Bearer test-channel-token"
    doc = await stack.delivery(claim)
    assert doc["status"] == "sent"
    assert doc["attempts"] == 1
    assert doc["incident_id"] == event.incident.id
    assert len(doc["sent_message_ids"]) == 1
    assert doc["line_request_id"]


async def test_redelivered_event_is_not_pushed_again_and_resolved_adds_one_push(stack: Stack) -> None:
    """The same event again (new Nats-Msg-Id, as a redelivery) → no second request to LINE at all;
    the ``resolved`` event → one more push, saying the system is back and for how long."""
    await stack.add_inventory([stack.group])
    await stack.start_notifier()
    opened = stack.event("opened")
    await stack.publish(opened)
    await stack.line.wait_for_pushes(1)
    await stack.quiet()

    await stack.publish(opened, msg_id=f"{opened.event_id}-again")
    await stack.quiet()
    assert len(push_requests(stack.line)) == 1

    resolved = stack.event("resolved", opened.incident)
    await stack.publish(resolved)
    pushes = await stack.line.wait_for_pushes(2)
    await stack.quiet()
    assert len(pushes) == 2
    alt_text = flex(pushes[1])["altText"]
    assert stack.system_name_th in alt_text
    assert "กลับมาใช้งานได้ตามปกติ" in alt_text
    assert "1 ชม. 12 นาที" in alt_text
    assert "footer" not in flex(pushes[1])["contents"]


async def test_line_500_is_retried_with_the_same_retry_key_and_accepted_once(stack: Stack) -> None:
    """A 500 on the first try → retried in-process with the same X-Line-Retry-Key; one message."""
    await stack.add_inventory([stack.group])
    stack.line.fail_next(500)
    await stack.start_notifier()
    event = stack.event("opened")
    await stack.publish(event)

    await stack.line.wait_for_pushes(1)
    await stack.quiet()
    requests = push_requests(stack.line)
    assert [r.status for r in requests] == [500, 200]
    claim = claim_id(event.event_id, stack.group)
    assert {r.headers["x-line-retry-key"] for r in requests} == {retry_key(claim)}
    doc = await stack.delivery(claim)
    assert doc["status"] == "sent"
    assert doc["attempts"] == 2


async def test_the_event_is_acknowledged_at_once_and_its_delivery_retried_until_sent(stack: Stack) -> None:
    """LINE failing → the event is acknowledged anyway (its delivery is recorded), and the
    delivery is retried with the same key until exactly one message arrives."""
    await stack.add_inventory([stack.group])
    stack.line.fail_next(503, count=2)
    stack.line.delay_next(0.5, count=2)
    await stack.start_notifier()
    event = stack.event("opened")
    await stack.publish(event)

    await stack.settled()
    assert stack.line.pushes == []
    await stack.line.wait_for_pushes(1)
    await stack.quiet()
    requests = push_requests(stack.line)
    assert [r.status for r in requests] == [503, 503, 200]
    claim = claim_id(event.event_id, stack.group)
    assert {r.headers["x-line-retry-key"] for r in requests} == {retry_key(claim)}
    doc = await stack.delivery(claim)
    assert doc["status"] == "sent"
    assert doc["attempts"] == 3


async def test_persistent_400_marks_the_delivery_failed_permanent_and_acknowledges(stack: Stack) -> None:
    """A group LINE refuses (400) → one request only, ``failed_permanent`` with LINE's reason, and
    the event acknowledged (no redelivery loop)."""
    await stack.add_inventory([stack.unknown_group])
    await stack.start_notifier()
    event = stack.event("opened")
    await stack.publish(event)

    claim = claim_id(event.event_id, stack.unknown_group)
    doc = await stack.wait_delivery(claim, "failed_permanent")
    await stack.quiet()
    assert FAILED_TO_SEND in doc["error"]
    assert doc["http_status"] == 400
    assert [r.status for r in push_requests(stack.line)] == [400]
    assert stack.line.pushes == []


async def test_without_token_messages_go_to_the_outbox_once_and_never_to_line(stack: Stack) -> None:
    """No access token → one outbox document per group (with the Thai text and the Flex JSON),
    deliveries ``outbox``, not a single LINE request, and no duplicate after a redelivery."""
    await stack.add_inventory([stack.group, stack.group_2])
    await stack.start_notifier(stack.settings(line_channel_access_token=None))
    event = stack.event("opened")
    await stack.publish(event)
    await stack.publish(event, msg_id=f"{event.event_id}-again")
    await stack.quiet()

    assert stack.line.requests == []
    docs = await stack.db["outbox"].find({}).to_list()
    assert sorted(d["target"] for d in docs) == sorted([stack.group, stack.group_2])
    for doc in docs:
        assert doc["_id"] == claim_id(event.event_id, doc["target"])
        assert stack.system_name_th in doc["text"]
        assert "ระบบขัดข้อง" in doc["text"]
        assert stack.system_name_th in doc["flex"]
        assert doc["incident_id"] == event.incident.id
        assert doc["event_type"] == "opened"
        assert doc["kind"] == "problem"
        assert (await stack.delivery(doc["_id"]))["status"] == "outbox"


async def test_restart_after_claim_resends_with_the_same_key_and_line_409_counts_as_sent(
    stack: Stack,
) -> None:
    """LINE accepted the push but the answer never reached notifier A (timeout), which is then
    stopped with the claim still ``claimed``. Notifier B's start-up sweep resumes it, sends again
    with the same key, LINE answers 409, and the group has exactly one message."""
    await stack.add_inventory([stack.group])
    stack.line.delay_next(2.0)  # the push is accepted at once; its answer comes too late for A
    # A would retry only after 30 s: it is stopped long before.
    first = await stack.start_notifier(
        stack.settings(line_timeout=0.3, line_backoff_base=30.0, line_backoff_max=60.0)
    )
    event = stack.event("opened")
    await stack.publish(event)
    await stack.line.wait_for_pushes(1)
    claim = claim_id(event.event_id, stack.group)
    await stack.wait_delivery_attempts(claim, 1)
    await first.stop()
    assert (await stack.delivery(claim))["status"] == "claimed"

    await stack.start_notifier()
    doc = await stack.wait_delivery(claim, "sent")
    await stack.quiet()
    requests = push_requests(stack.line)
    assert [r.status for r in requests] == [200, 409]
    assert {r.headers["x-line-retry-key"] for r in requests} == {retry_key(claim)}
    assert len(stack.line.pushes) == 1
    assert doc["already_accepted"] is True
    assert doc["accepted_request_id"]
    assert len(doc["sent_message_ids"]) == 1


async def test_stopping_lets_the_send_in_flight_finish(stack: Stack) -> None:
    """``serve`` runs the stop hook while the broker still runs: the notifier drains before closing
    its LINE client, so a push whose answer is on its way is recorded ``sent`` and acknowledged."""
    await stack.add_inventory([stack.group])
    stack.line.delay_next(0.5)
    running = await stack.start_notifier()
    event = stack.event("opened")
    await stack.publish(event)
    await stack.line.wait_for_pushes(1)
    await running.stop()

    doc = await stack.delivery(claim_id(event.event_id, stack.group))
    assert doc["status"] == "sent"
    await stack.quiet()
    assert [r.status for r in push_requests(stack.line)] == [200]


async def test_unroutable_event_is_recorded_and_acknowledged(stack: Stack) -> None:
    """A system nobody owns in the inventory → no LINE request, an ``unroutable`` delivery saying
    why, and the event acknowledged."""
    await stack.start_notifier()
    event = stack.event("opened")
    await stack.publish(event)
    await stack.quiet()

    docs = await stack.db["deliveries"].find({}).to_list()
    assert [(d["status"], d["error"], d["incident_id"]) for d in docs] == [
        ("unroutable", "unknown_system", event.incident.id)
    ]
    assert push_requests(stack.line) == []  # (the quota watch reads LINE's figures)


async def test_bookkeeping_events_are_acknowledged_without_a_message(stack: Stack) -> None:
    """``noted``, ``suppressed``, ``flapping``, ``reopened``, ``escalated`` → acknowledged, nothing
    sent, no delivery recorded."""
    await stack.add_inventory([stack.group])
    await stack.start_notifier()
    for event_type in ("noted", "suppressed", "flapping", "reopened", "escalated"):
        await stack.publish(stack.event(event_type))
    await stack.quiet()
    assert push_requests(stack.line) == []  # (the quota watch reads LINE's figures)
    assert await stack.db["deliveries"].count_documents({}) == 0


async def test_muted_problem_sends_nothing_and_an_unmuted_one_sends_exactly_problem_and_fixed(
    stack: Stack, make_incident: Callable[..., Incident]
) -> None:
    """The product rule end to end. An incident inside maintenance (opened muted, resolved without
    the team ever being told) sends nothing. A child held back under its parent, still down when
    the parent recovered, sends exactly two messages: the problem (saying why it comes now, with
    the buttons) on ``unmuted``, and "back to normal" on ``resolved``."""
    await stack.add_inventory([stack.group])
    await stack.start_notifier()
    in_maintenance = make_incident("inc-maintenance", muted="maintenance", alerted=False)
    await stack.publish(stack.event("opened", in_maintenance))
    await stack.publish(stack.event("resolved", in_maintenance))

    held = make_incident("inc-child", muted="dependency", alerted=False, parent_incident_id="inc-parent")
    await stack.publish(stack.event("opened", held))
    told = held.model_copy(update={"muted": None, "alerted": True})
    await stack.publish(stack.event("unmuted", told, actor="fao", text="parent_resolved"))
    await stack.publish(stack.event("resolved", told, actor="fao"))

    pushes = await stack.line.wait_for_pushes(2)
    await stack.quiet()
    assert len(push_requests(stack.line)) == 2
    assert [body["to"] for body in pushes] == [stack.group, stack.group]
    problem, fixed = (flex(body) for body in pushes)
    assert problem["altText"].startswith("🔴 ระบบขัดข้อง")
    assert "ระบบที่ระบบนี้พึ่งพากลับมาใช้งานได้แล้ว แต่ระบบนี้ยังขัดข้องอยู่" in problem["altText"]
    assert len(problem["contents"]["footer"]["contents"]) == 2
    assert "กลับมาใช้งานได้ตามปกติ" in fixed["altText"]
    assert "footer" not in fixed["contents"]
    docs = await stack.db["deliveries"].find({}).to_list()
    assert sorted((d["incident_id"], d["event_type"], d["status"]) for d in docs) == [
        ("inc-child", "resolved", "sent"),
        ("inc-child", "unmuted", "sent"),
    ]


async def test_acknowledged_sends_one_short_text_message_without_buttons(
    stack: Stack, make_incident: Callable[..., Incident]
) -> None:
    """An acknowledgement of a problem the team was told about → one text message naming who."""
    await stack.add_inventory([stack.group])
    await stack.start_notifier()
    acked = make_incident(status="acknowledged", acknowledged_by="สมชาย")
    await stack.publish(stack.event("acknowledged", acked, actor="สมชาย"))

    [body] = await stack.line.wait_for_pushes(1)
    await stack.quiet()
    [message] = body["messages"]
    assert message["type"] == "text"
    assert message["text"] == f"👀 รับทราบโดย สมชาย: {stack.system_name_th} — หน้าแรก: HTTP 503"


async def test_zone_problem_goes_to_the_platform_team_groups(
    stack: Stack, make_incident: Callable[..., Incident]
) -> None:
    """A zone incident (system ``fao-platform``) → one push to each group of the platform team."""
    await stack.add_inventory([stack.group, stack.group_2], platform=True)
    await stack.start_notifier()
    zone = make_incident(
        kind="zone", system_id=PLATFORM_SYSTEM, severity="minor", zones=["chiangmai"], monitor_ids=["a", "b"]
    )
    await stack.publish(stack.event("opened", zone))

    pushes = await stack.line.wait_for_pushes(2)
    await stack.quiet()
    assert sorted(body["to"] for body in pushes) == sorted([stack.group, stack.group_2])
    for body in pushes:
        assert flex(body)["altText"].startswith("🟡 ปัญหาเฉพาะโซน chiangmai: รายการตรวจไม่ผ่าน 2 รายการ")


async def test_without_token_an_acknowledgement_is_kept_in_the_outbox_as_text(
    stack: Stack, make_incident: Callable[..., Incident]
) -> None:
    """Outbox mode keeps the message kind and the text; a text message has no Flex JSON."""
    await stack.add_inventory([stack.group])
    await stack.start_notifier(stack.settings(line_channel_access_token=None))
    acked = make_incident(status="acknowledged", acknowledged_by="สมชาย")
    event = stack.event("acknowledged", acked, actor="สมชาย")
    await stack.publish(event)
    doc = await stack.wait_delivery(claim_id(event.event_id, stack.group), "outbox")
    await stack.quiet()
    [kept] = await stack.db["outbox"].find({}).to_list()
    assert (kept["_id"], kept["kind"], kept["flex"]) == (doc["_id"], "acknowledged", None)
    assert "รับทราบโดย สมชาย" in kept["text"]
    assert stack.line.requests == []
