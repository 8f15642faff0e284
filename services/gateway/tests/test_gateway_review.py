"""Answers to the quarterly owner review through signed webhooks (``fao.gateway.reviews``): a
member's "ยืนยัน" / "ต้องแก้ไข" is recorded in ``owner_reviews`` (the latest tap wins) and answered
through the fake LINE API; anyone else is refused politely and nothing is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from services.gateway.tests.stack import GROUP, MEMBER, PLATFORM_MEMBER, STRANGER, GatewayStack

from fao.gateway.postback import ReviewAnswer, parse_postback
from fao.gateway.replies import load_replies
from fao.notifier.render_review import review_postback_data
from fao.runtime.owner_review import REVIEWS
from fao.testing.fake_line import postback_event

REPLIES = load_replies()
ROUND = "2026-Q4"
OK = review_postback_data("review_ok", "apps", ROUND)
FIX = review_postback_data("review_fix", "apps", ROUND)


def tap(data: str, user_id: str | None, timestamp_ms: int | None = None) -> dict[str, Any]:
    event = postback_event(data, group_id=GROUP, user_id=user_id)
    if timestamp_ms is not None:
        event["timestamp"] = timestamp_ms
    return event


def test_the_notifier_s_review_buttons_are_read_back_and_anything_else_is_ignored() -> None:
    assert parse_postback(OK) == ReviewAnswer(ok=True, team_id="apps", round_id=ROUND)
    assert parse_postback(FIX) == ReviewAnswer(ok=False, team_id="apps", round_id=ROUND)
    for data in (
        "action=review_ok&team=apps",
        "action=review_ok&team=apps&round=2026-Q5",
        "action=review_ok&team=Apps!&round=2026-Q4",
        "action=review_ok&team=apps&round=2026-Q4&round=2026-Q3",
        "action=review_maybe&team=apps&round=2026-Q4",
    ):
        assert parse_postback(data) is None, data


async def test_a_member_s_confirmation_is_recorded_and_thanked(gw: GatewayStack) -> None:
    response = await gw.post([tap(OK, MEMBER)])
    assert response.status_code == 200
    doc = await gw.db[REVIEWS].find_one({"_id": f"{ROUND}:apps"})
    assert doc is not None
    assert (doc["round"], doc["team"], doc["status"], doc["by"]) == (ROUND, "apps", "confirmed", "somchai")
    assert gw.reply_texts() == [
        REPLIES.text("review_confirmed", name="สมชาย", team="ทีมพัฒนาระบบงาน", round=ROUND)
    ]
    assert "ขอบคุณ" in gw.reply_texts()[0]
    assert await gw.command_count() == 0, "an answer is no command to the correlator"
    (entry,) = await gw.db["audit"].find({}).to_list()
    assert (entry["source"], entry["actor"], entry["action"]) == ("line", "somchai", "review.confirmed")
    (change,) = entry["changes"]
    assert (change["collection"], change["key"], change["kind"]) == (REVIEWS, f"{ROUND}:apps", "add")
    assert change["diff"]["status"] == {"before": None, "after": "confirmed"}


async def test_needs_changes_says_what_to_do_and_the_latest_tap_wins(gw: GatewayStack) -> None:
    first = tap(FIX, MEMBER)
    stamp = int(first["timestamp"])
    assert (await gw.post([first])).status_code == 200
    assert "fao apply" in gw.reply_texts()[0]

    async def status() -> str:
        doc = await gw.db[REVIEWS].find_one({"_id": f"{ROUND}:apps"})
        assert doc is not None
        return str(doc["status"])

    assert await status() == "needs_changes"
    # An older tap delivered late (LINE does not promise the order) changes nothing.
    assert (await gw.post([tap(OK, MEMBER, stamp - 60_000)])).status_code == 200
    assert await status() == "needs_changes"
    # A later one does: the config was fixed and the team confirms.
    assert (await gw.post([tap(OK, MEMBER, stamp + 60_000)])).status_code == 200
    assert await status() == "confirmed"
    entries = await gw.db["audit"].find({}).sort("_id", 1).to_list()  # inserted in order
    assert [e["action"] for e in entries] == ["review.needs_changes", "review.confirmed"], (
        "the late tap: none"
    )
    assert entries[1]["changes"][0]["diff"]["status"] == {"before": "needs_changes", "after": "confirmed"}


@pytest.mark.parametrize(
    ("user_id", "reply"),
    [
        (STRANGER, "review_not_member"),
        (PLATFORM_MEMBER, "review_not_member"),  # a known person, in another team
        (None, "review_no_user_id"),  # LINE gave no user id
    ],
)
async def test_anyone_but_a_member_is_refused_politely_and_nothing_is_recorded(
    gw: GatewayStack, user_id: str | None, reply: str
) -> None:
    assert (await gw.post([tap(OK, user_id)])).status_code == 200
    assert await gw.db[REVIEWS].count_documents({}) == 0
    assert gw.reply_texts() == [REPLIES.text(reply)]
    assert gw.reply_texts()[0].startswith("ขออภัย")
