"""LINE both ways, end to end: real nats-server and FerretDB, the correlator, notifier and gateway as
processes (the gateway on the real uvicorn server), the fake LINE API sending signed webhooks like
LINE's and receiving the bot's pushes and replies through the real line-bot-sdk.

- a team member's Acknowledge → a command → the correlator acknowledges the incident → the group
  gets exactly one short update naming the person and the team's escalation timer is cancelled;
  a stranger's tap → a refusal reply, nothing changes (no command in the stream, the timer still
  armed); a replayed event → still one command;
- a citizen's message to the Official Account → a manual incident, a reply with a reference and
  an ``oa_reports`` record with the incident id; with an incident open, the citizen picks the
  system from a quick reply and the report joins that incident; when each incident is resolved
  the citizen gets one push naming that report's reference.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually
from tests.integration.scenario import Scenario, scenario

from fao.runtime.launch import free_port
from fao.runtime.store import Document
from fao.schemas import Command, CommandAction
from fao.schemas import subjects as s
from fao.testing.backlog import correlator_drained, drained
from fao.testing.fake_line import join_event, message_event, postback_event

SECRET = "e2e-channel-secret"
GROUP = "C" + "a1" * 16
PLATFORM_GROUP = "C" + "b2" * 16
MEMBER = "U" + "1" * 32
STRANGER = "U" + "3" * 32
CITIZEN = "U" + "4" * 32

INVENTORY = f"""
teams:
  - id: apps
    name: ทีมพัฒนาระบบงาน
    line_groups: ["{GROUP}"]
    escalation:
      steps:
        - {{after: 10m, people: [somchai]}}
  - id: platform
    name: ทีมระบบ
    platform: true
    line_groups: ["{PLATFORM_GROUP}"]
people:
  - id: somchai
    name: สมชาย ใจดี
    teams: [apps]
    line_user_id: "{MEMBER}"
systems:
  - id: e-service
    name: e-Service portal
    name_th: ระบบบริการอิเล็กทรอนิกส์
    team: apps
"""


async def _commands(sc: Scenario) -> int:
    """Commands as they were sent (the correlator's copies routed to a partition not counted)."""
    info = await sc.js.stream_info(s.COMMANDS_STREAM, subjects_filter=s.PLATFORM_COMMANDS_FILTER)
    return sum((info.state.subjects or {}).values())


async def _settled(sc: Scenario) -> bool:
    """Every command and incident event handled, every delivery final."""
    if not await correlator_drained(sc.js, s.COMMANDS_STREAM) or not await drained(
        sc.js, s.INCIDENTS_STREAM, (s.NOTIFIER_CONSUMER,)
    ):
        return False
    return await sc.db["deliveries"].count_documents({"status": {"$in": ["pending", "claimed"]}}) == 0


def _replies(sc: Scenario) -> list[str]:
    return [m["text"] for body in sc.line.replies for m in body["messages"]]


async def test_acknowledge_from_line_and_an_official_account_report_end_to_end(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, INVENTORY) as sc:
        sc.line.add_group(GROUP, 5)
        sc.line.add_group(PLATFORM_GROUP, 3)
        sc.line.set_group_name(GROUP, "แจ้งเตือนทีมพัฒนา")
        port = free_port()
        sc.env.update(
            FAO_LINE_CHANNEL_SECRET=SECRET, FAO_GATEWAY_PORT=str(port), FAO_HOUSEKEEPING_INTERVAL="0.2"
        )
        await asyncio.to_thread(sc.start, "gateway")
        url = f"http://127.0.0.1:{port}/line/webhook"

        async def send(*events: dict[str, object]) -> int:
            return await sc.line.send_webhook(url, list(events), channel_secret=SECRET)

        # The bot is added to the team's group: recorded with the name LINE gives.
        assert await send(join_event(GROUP)) == 200

        async def group_named() -> bool:
            doc = await sc.db["line_groups"].find_one({"_id": GROUP})
            return doc is not None and doc.get("name") == "แจ้งเตือนทีมพัฒนา"

        await eventually(group_named, 10, "the joined group recorded with its name")

        # A citizen reports while nothing is open: a manual incident (for the platform team).
        assert await send(message_event("เข้าเว็บไซต์ไม่ได้ครับ", user_id=CITIZEN)) == 200
        await eventually(holds(lambda: _has_reply(sc, "FAO-")), 10, "the reply with a reference")
        reference = re.search(r"FAO-[0-9A-Z]{8}", _replies(sc)[0])
        assert reference is not None
        report_incident = await _linked(sc, reference.group())
        incident = await sc.db["incidents"].find_one({"_id": report_incident})
        assert incident is not None
        assert (incident["kind"], incident["system_id"]) == ("manual", "fao-platform")
        assert incident["cause"] == "เข้าเว็บไซต์ไม่ได้ครับ"

        # An outage of e-service, reported by hand from the CLI: the group is told once.
        opening = Command(
            command_id=uuid.uuid4(), action="open_manual", actor="noc", source="cli", at=datetime.now(UTC),
            system_id="e-service", text="ระบบล่ม",
        )  # fmt: skip
        await sc.command(opening)
        await eventually(lambda: _settled(sc), 20, "the opened incident delivered")
        [opened] = sc.line.pushes_to(GROUP)
        doc = await sc.db["incidents"].find_one({"system_id": "e-service"})
        assert doc is not None
        incident_id = doc["_id"]
        before = await _commands(sc)
        await eventually(
            holds_async(lambda: _escalation(sc, incident_id), "active"), 20, "the escalation armed"
        )

        # A stranger taps Acknowledge: refused politely, nothing published, nothing changed.
        ack = f"action=ack&incident={incident_id}"
        assert await send(postback_event(ack, group_id=GROUP, user_id=STRANGER)) == 200
        await eventually(holds(lambda: _has_reply(sc, "ขออภัย")), 10, "the refusal reply")
        assert await _commands(sc) == before
        assert await _escalation(sc, incident_id) == "active"
        # The team member taps Acknowledge, and LINE delivers the same event twice.
        tap = postback_event(ack, group_id=GROUP, user_id=MEMBER)
        started = time.monotonic()
        assert await send(tap) == 200
        assert time.monotonic() - started < 2.0, "LINE waits 2 s for the webhook's answer"
        assert await send({**tap, "deliveryContext": {"isRedelivery": True}}) == 200
        assert await _commands(sc) == before + 1

        async def acknowledged() -> bool:
            current = await sc.db["incidents"].find_one({"_id": incident_id})
            return current is not None and current["acknowledged_by"] == "line:สมชาย ใจดี"

        await eventually(acknowledged, 20, "the correlator acknowledged the incident")
        await eventually(lambda: _settled(sc), 20, "the acknowledgement delivered")
        pushes = sc.line.pushes_to(GROUP)
        assert len(pushes) == 2, "one problem message, then exactly one update"
        assert pushes[0] == opened
        assert "สมชาย ใจดี" in sc.texts(pushes[1])
        await eventually(
            holds_async(lambda: _escalation(sc, incident_id), "cancelled"), 20, "the escalation stopped"
        )

        # A citizen reports while e-service is down: picks it from the quick reply → joins it.
        assert await send(message_event("ยื่นแบบออนไลน์ไม่ได้", user_id=CITIZEN)) == 200
        await eventually(
            holds(lambda: _quick_reply(sc) is not None), 10, "the quick reply of affected systems"
        )
        choice = _quick_reply(sc)
        assert choice is not None
        assert choice["label"] == "ระบบบริการอิเล็กทรอนิกส์"[:19] + "…"
        assert await send(postback_event(choice["data"], user_id=CITIZEN)) == 200
        await eventually(holds(lambda: len(_refs(sc)) == 2), 10, "the second reference")
        assert await _linked(sc, _refs(sc)[1]) == incident_id, "the report joined the open incident"
        await eventually(lambda: _settled(sc), 20, "the note applied")
        assert len(sc.line.pushes_to(GROUP)) == 2, "a note sends nothing"
        assert await _commands(sc) == before + 2

        # Both incidents are resolved: the citizen hears once of each, with that report's reference.
        first, second = _refs(sc)
        await sc.command(command("resolve", report_incident))
        await sc.command(command("resolve", incident_id))
        await eventually(holds(lambda: len(sc.line.pushes_to(CITIZEN)) >= 2), 20, "two pushes to the citizen")
        await eventually(lambda: _settled(sc), 20, "the resolutions delivered")
        assert len(sc.line.pushes_to(CITIZEN)) == 2
        texts = [sc.texts(push) for push in sc.line.pushes_to(CITIZEN)]
        assert [first in text for text in texts].count(True) == 1
        assert [second in text for text in texts].count(True) == 1
        assert all("ได้รับการแก้ไขแล้ว" in text for text in texts)


def command(action: CommandAction, incident_id: str) -> Command:
    return Command(
        command_id=uuid.uuid4(), action=action, actor="noc", source="cli", at=datetime.now(UTC),
        incident_id=incident_id,
    )  # fmt: skip


async def _escalation(sc: Scenario, incident_id: str) -> str | None:
    """The status of the escalation timer of ``incident_id`` (None: none armed)."""
    doc = await sc.db["escalations"].find_one({"_id": incident_id})
    return None if doc is None else str(doc["status"])


def holds_async(read: Callable[[], Awaitable[object]], expected: object) -> Callable[[], Awaitable[bool]]:
    """The async check that ``read()`` gives ``expected``."""

    async def check() -> bool:
        return await read() == expected

    return check


def holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``condition`` as the async check ``eventually`` polls."""

    async def check() -> bool:
        return condition()

    return check


def _has_reply(sc: Scenario, text: str) -> bool:
    return any(text in reply for reply in _replies(sc))


def _refs(sc: Scenario) -> list[str]:
    return [m.group() for reply in _replies(sc) if (m := re.search(r"FAO-[0-9A-Z]{8}", reply))]


def _quick_reply(sc: Scenario) -> dict[str, str] | None:
    for body in sc.line.replies:
        for message in body["messages"]:
            items = (message.get("quickReply") or {}).get("items") or []
            if items:
                action = items[0]["action"]
                return {"label": action["label"], "data": action["data"]}
    return None


async def _linked(sc: Scenario, reference: str) -> str:
    """The incident of report ``reference`` once the gateway has learnt it."""
    found: list[str] = []

    async def linked() -> bool:
        doc = await sc.db["oa_reports"].find_one({"_id": reference})
        if doc is not None and doc.get("incident_id"):
            found.append(doc["incident_id"])
            return True
        return False

    await eventually(linked, 20, f"report {reference} linked to its incident")
    return found[0]
