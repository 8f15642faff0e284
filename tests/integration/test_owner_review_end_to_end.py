"""The quarterly owner review, end to end: real nats-server and FerretDB, the notifier and the
gateway as processes, the fake LINE API receiving the review pushes and sending the taps back as
signed webhooks, and ``fao doctor``'s findings over what they stored.

The review is made due from the first instant of every quarter (``FAO_REVIEW_DAY=1``,
``FAO_REVIEW_HOUR=0``), so the current round is sent as soon as the notifier starts.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually
from tests.integration.scenario import Scenario, scenario

from fao.cli.doctor import diagnose, snapshot
from fao.notifier.review import round_of
from fao.runtime.launch import free_port
from fao.runtime.owner_review import REVIEWS
from fao.runtime.store import Document
from fao.testing.fake_line import postback_event

SECRET = "e2e-review-secret"
APPS_GROUP = "C" + "a1" * 16
PLATFORM_GROUP = "C" + "b2" * 16
MEMBER = "U" + "1" * 32
STRANGER = "U" + "3" * 32

INVENTORY = f"""
teams:
  - id: apps
    name: ทีมพัฒนาระบบงาน
    line_groups: ["{APPS_GROUP}"]
  - id: platform
    name: ทีมระบบ
    platform: true
    line_groups: ["{PLATFORM_GROUP}"]
people:
  - id: somchai
    name: สมชาย ใจดี
    role: หัวหน้าทีม
    teams: [apps]
    line_user_id: "{MEMBER}"
    phone: "+66 81 234 5678"
systems:
  - id: e-service
    name: e-Service portal
    name_th: ระบบบริการอิเล็กทรอนิกส์
    team: apps
"""


def buttons(push: dict[str, Any]) -> dict[str, str]:
    """The review message's buttons: label → postback data."""
    footer = push["messages"][0]["contents"]["footer"]["contents"]
    return {b["action"]["label"]: b["action"]["data"] for b in footer}


async def test_a_review_is_pushed_answered_by_a_member_and_the_unconfirmed_team_is_in_the_doctor(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, INVENTORY, services=()) as sc:
        sc.line.add_group(APPS_GROUP, 5)
        sc.line.add_group(PLATFORM_GROUP, 3)
        port = free_port()
        sc.env.update(
            FAO_REVIEW_ENABLED="true", FAO_REVIEW_DAY="1", FAO_REVIEW_HOUR="0",
            FAO_LINE_CHANNEL_SECRET=SECRET, FAO_GATEWAY_PORT=str(port),
        )  # fmt: skip
        round_id = round_of(datetime.now(UTC))
        await asyncio.gather(asyncio.to_thread(sc.start, "notifier"), asyncio.to_thread(sc.start, "gateway"))
        await sc.line.wait_for_pushes(2, timeout=20)
        [apps_push] = sc.line.pushes_to(APPS_GROUP)
        assert len(sc.line.pushes_to(PLATFORM_GROUP)) == 1
        text = sc.texts(apps_push)
        assert "ระบบบริการอิเล็กทรอนิกส์" in text
        assert "สมชาย ใจดี — หัวหน้าทีม" in text
        assert "81 234" not in str(apps_push)
        assert MEMBER not in str(apps_push)
        ok = buttons(apps_push)["ยืนยัน"]
        assert ok == f"action=review_ok&team=apps&round={round_id}"
        url = f"http://127.0.0.1:{port}/line/webhook"

        async def tap(user_id: str) -> None:
            event = postback_event(ok, group_id=APPS_GROUP, user_id=user_id)
            assert await sc.line.send_webhook(url, [event], channel_secret=SECRET) == 200

        await tap(STRANGER)
        await eventually(lambda: replied(sc, 1), 10, "the stranger's refusal")
        assert "ขออภัย" in reply_texts(sc)[0]
        assert await mongo_db[REVIEWS].count_documents({}) == 0
        await tap(MEMBER)

        async def confirmed() -> bool:
            doc = await mongo_db[REVIEWS].find_one({"_id": f"{round_id}:apps"})
            return doc is not None and (doc["status"], doc["by"]) == ("confirmed", "somchai")

        await eventually(confirmed, 10, "the member's confirmation in owner_reviews")
        await eventually(lambda: replied(sc, 2), 10, "the thanks")
        assert "ขอบคุณ" in reply_texts(sc)[1]
        found = [
            (f.subject, f.what)
            for f in diagnose(await snapshot(mongo_db, {}), datetime.now(UTC))
            if "confirm" in f.what
        ]
        assert [subject for subject, _ in found] == ["team platform"], found
        assert f"round {round_id}" in found[0][1]


def reply_texts(sc: Scenario) -> list[str]:
    return [m["text"] for body in sc.line.replies for m in body["messages"]]


async def replied(sc: Scenario, n: int) -> bool:
    return len(reply_texts(sc)) >= n
