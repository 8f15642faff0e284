"""The quarterly owner review (``fao.notifier.review``, ``render_review``).

- the round and due-time arithmetic (pure: quarter boundaries in Bangkok time, day/hour settings);
- the message: the team's systems (Thai names) and members (names, roles), never contact details,
  long lists shortened, the two postback buttons;
- ``OwnerReview`` on a real FerretDB with an injected clock: two processes ticking at once record
  one claim and one delivery per (team, group); a claim left half done by a crash is completed by
  the next process; a recorded round is never recorded again;
- the notifier process (conftest's ``stack``: real NATS, FerretDB, fake LINE): one push per team
  group with two notifiers, none more after a restart.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from services.notifier.tests.stack import Stack

from fao.notifier.deliveries import Delivery, DeliveryStore
from fao.notifier.render import MAX_POSTBACK_DATA_UNITS, load_catalogue, utf16_units
from fao.notifier.render_review import MAX_LISTED, render_review, review_content, review_postback_data
from fao.notifier.review import OwnerReview, ReviewSchedule, due_at, due_round, round_of
from fao.notifier.settings import NotifierSettings
from fao.runtime.inventory import PEOPLE, SYSTEMS, TEAMS, to_doc
from fao.runtime.owner_review import ROUNDS
from fao.runtime.store import Document
from fao.schemas import Person, System, Team
from fao.testing.fake_line import FakeLineServer, message_texts

GROUP_A = "C" + "1" * 32
GROUP_B = "C" + "2" * 32
SCHEDULE = ReviewSchedule()  # day 1, 10:00 Bangkok
# 1 October 2026, 10:00 Bangkok = 03:00 UTC: round 2026-Q4 is due.
Q4_DUE = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)
LEAD = Person(
    id="lead", name="สมชาย ใจดี", role="หัวหน้าทีม", teams=["infra"], line_user_id="U" + "a" * 32,
    email="somchai@example.go.th", phone="+66 81 234 5678",
)  # fmt: skip
DEPUTY = Person(id="deputy", name="สมหญิง รักงาน", teams=["infra", "apps"], line_user_id="U" + "b" * 32)
DEV = Person(id="dev", name="วิชัย เขียนโค้ด", role="นักพัฒนา", teams=["apps"], phone="021234567")
TEAMS_ = [
    Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=[GROUP_A]),
    Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[GROUP_B]),
    Team(id="quiet", name="ทีมที่ไม่มีกลุ่ม", email=["quiet@example.go.th"]),
]
SYSTEMS_ = [
    System(id="egov-portal", name="e-Gov Portal", name_th="พอร์ทัลบริการภาครัฐ", team="infra"),
    System(id="mail", name="Mail", name_th="ระบบไปรษณีย์อิเล็กทรอนิกส์", team="infra"),
    System(id="e-service", name="e-Service", name_th="ระบบบริการอิเล็กทรอนิกส์", team="apps"),
]
CONTACTS = (
    LEAD.line_user_id, DEPUTY.line_user_id, LEAD.email, LEAD.phone, DEV.phone, "quiet@example.go.th",
)  # fmt: skip


def bangkok(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A Bangkok wall-clock time, in UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


# --- round and due-time arithmetic -------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ((2026, 1, 1, 0, 0), "2026-Q1"),
        ((2026, 3, 31, 23, 59), "2026-Q1"),
        ((2026, 4, 1, 0, 0), "2026-Q2"),
        ((2026, 9, 30, 23, 59), "2026-Q3"),
        ((2026, 10, 1, 0, 0), "2026-Q4"),
        ((2026, 12, 31, 23, 59), "2026-Q4"),
    ],
)
def test_a_round_is_the_quarter_in_bangkok_time(local: tuple[int, int, int, int, int], expected: str) -> None:
    assert round_of(bangkok(*local)) == expected


def test_the_round_changes_at_bangkok_midnight_not_utc_midnight() -> None:
    """31 December 17:00 UTC is already 1 January in Bangkok: the next year's first round."""
    assert round_of(datetime(2026, 12, 31, 16, 59, tzinfo=UTC)) == "2026-Q4"
    assert round_of(datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) == "2027-Q1"


def test_a_round_is_due_at_the_configured_day_and_hour_of_the_quarter_s_first_month() -> None:
    assert due_at("2026-Q4", SCHEDULE) == Q4_DUE
    assert due_at("2027-Q1", SCHEDULE) == bangkok(2027, 1, 1, 10, 0)
    assert due_at("2026-Q2", ReviewSchedule(day=15, hour=0)) == bangkok(2026, 4, 15, 0, 0)
    assert due_at("2026-Q3", ReviewSchedule(day=28, hour=23)) == bangkok(2026, 7, 28, 23, 0)
    with pytest.raises(ValueError, match="round id"):
        due_at("2026-Q5", SCHEDULE)


def test_the_current_round_is_due_from_its_hour_until_the_quarter_ends() -> None:
    assert due_round(Q4_DUE - timedelta(seconds=1), SCHEDULE) is None, "not before 10:00 on 1 October"
    assert due_round(Q4_DUE, SCHEDULE) == "2026-Q4"
    assert due_round(bangkok(2026, 12, 31, 23, 59), SCHEDULE) == "2026-Q4", "late, but still this quarter"
    assert due_round(bangkok(2027, 1, 1, 9, 59), SCHEDULE) is None, "a new quarter waits for its own hour"
    late = ReviewSchedule(day=10, hour=8)
    assert due_round(bangkok(2026, 10, 10, 7, 59), late) is None
    assert due_round(bangkok(2026, 10, 10, 8, 0), late) == "2026-Q4"


def test_a_half_yearly_or_yearly_review_has_rounds_in_its_quarters_only() -> None:
    half = ReviewSchedule(quarters=2)
    assert due_round(bangkok(2026, 1, 1, 10, 0), half) == "2026-Q1"
    assert due_round(bangkok(2026, 4, 1, 10, 0), half) is None, "no round in April"
    assert due_round(bangkok(2026, 7, 1, 10, 0), half) == "2026-Q3"
    assert due_round(bangkok(2026, 12, 31, 23, 0), half) is None
    yearly = ReviewSchedule(quarters=4)
    assert [due_round(bangkok(2026, month, 2, 0, 0), yearly) for month in (1, 4, 7, 10)] == [
        "2026-Q1",
        None,
        None,
        None,
    ]
    with pytest.raises(ValueError, match="every 1, 2 or 4 quarters"):
        ReviewSchedule(quarters=3)


@pytest.mark.parametrize(("day", "hour"), [(0, 10), (29, 10), (1, 24), (1, -1)])
def test_a_schedule_outside_every_month_or_day_is_refused(day: int, hour: int) -> None:
    with pytest.raises(ValueError, match="review day"):
        ReviewSchedule(day=day, hour=hour)


def test_the_settings_default_to_10_o_clock_on_the_first_day_and_refuse_day_29() -> None:
    settings = NotifierSettings()
    assert (settings.review_enabled, settings.review_day, settings.review_hour) == (True, 1, 10)
    with pytest.raises(ValueError, match="review_day"):
        NotifierSettings(review_day=29)
    assert settings.review_every_quarters == 1


def test_the_review_may_be_half_yearly_or_yearly_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAO_REVIEW_EVERY_QUARTERS", "2")
    assert NotifierSettings().review_every_quarters == 2
    monkeypatch.setenv("FAO_REVIEW_EVERY_QUARTERS", "3")
    with pytest.raises(ValueError, match="a review every 1, 2 or 4 quarters"):
        NotifierSettings()


# --- the message -------------------------------------------------------------------------------


def everything(message_json: str, alt_text: str, text: str) -> str:
    return "\n".join((message_json, alt_text, text))


def test_the_message_lists_the_team_s_systems_and_members_without_contact_details() -> None:
    cat = load_catalogue("th")
    content = review_content("2026-Q4", "infra", "ทีมโครงสร้างพื้นฐาน", SYSTEMS_, [LEAD, DEPUTY, DEV], cat)
    assert content.systems == ("พอร์ทัลบริการภาครัฐ", "ระบบไปรษณีย์อิเล็กทรอนิกส์")
    assert content.members == ("สมชาย ใจดี — หัวหน้าทีม", "สมหญิง รักงาน")
    message = render_review(content, cat)
    assert message.kind == "review"
    shown = everything(message.bubble_json(), message.alt_text, message.text)
    for name in (*content.systems, *content.members, "ทีมโครงสร้างพื้นฐาน", "2026-Q4", "ยืนยัน", "ต้องแก้ไข"):
        assert name in shown
    assert "ระบบบริการอิเล็กทรอนิกส์" not in shown, "another team's system"
    assert "วิชัย" not in shown, "another team's member"
    for contact in CONTACTS:
        assert contact is not None
        assert contact not in shown
    assert "\n" not in message.alt_text
    buttons = [b["action"] for b in message.bubble["footer"]["contents"]] if message.bubble else []
    assert [(b["label"], b["data"]) for b in buttons] == [
        ("ยืนยัน", "action=review_ok&team=infra&round=2026-Q4"),
        ("ต้องแก้ไข", "action=review_fix&team=infra&round=2026-Q4"),
    ]


def test_long_lists_are_shortened_and_the_message_stays_within_line_limits() -> None:
    cat = load_catalogue("th")
    team_id = "t" * 63  # the longest team id: the postback data still fits
    systems = [
        System(id=f"sys-{n:02}", name=f"S{n}", name_th=f"ระบบที่ {n:02} " + "ก" * 180, team=team_id)
        for n in range(40)
    ]
    people = [Person(id=f"p{n:02}", name=f"คนที่ {n:02}", role="ร" * 200, teams=[team_id]) for n in range(30)]
    message = render_review(review_content("2026-Q4", team_id, "ท" * 200, systems, people, cat), cat)
    assert f"และอีก {40 - MAX_LISTED}" in message.text
    assert f"และอีก {30 - MAX_LISTED}" in message.text
    assert "ระบบที่ 39" not in message.text
    assert "ระบบที่ 00" in message.text
    assert len(message.bubble_json().encode()) <= 30 * 1024
    assert len(message.alt_text) <= 1500
    assert utf16_units(message.text) <= 5000
    for action in ("review_ok", "review_fix"):
        assert utf16_units(review_postback_data(action, team_id, "2026-Q4")) <= MAX_POSTBACK_DATA_UNITS


def test_the_english_catalogue_says_it_in_english_with_english_names() -> None:
    cat = load_catalogue("en")
    content = review_content("2026-Q4", "apps", "Apps team", SYSTEMS_, [DEPUTY, DEV], cat)
    message = render_review(content, cat)
    assert content.systems == ("e-Service",)
    assert "Confirm" in message.bubble_json()
    assert "Needs changes" in message.bubble_json()
    assert "Members (2)" in message.text
    empty = render_review(review_content("2026-Q4", "nobody", "Nobody", SYSTEMS_, [], cat), cat)
    assert empty.text.count("— none —") == 2


# --- OwnerReview on FerretDB, with an injected clock -------------------------------------------


async def configure(db: AsyncDatabase[Document]) -> None:
    for team in TEAMS_:
        await db[TEAMS].replace_one({"_id": team.id}, to_doc(team, team.id), upsert=True)
    for system in SYSTEMS_:
        await db[SYSTEMS].replace_one({"_id": system.id}, to_doc(system, system.id), upsert=True)
    for person in (LEAD, DEPUTY, DEV):
        await db[PEOPLE].replace_one({"_id": person.id}, to_doc(person, person.id), upsert=True)


def reviewer(db: AsyncDatabase[Document], recorded: list[Delivery], holder: str) -> OwnerReview:
    """An ``OwnerReview`` as a new notifier process (``holder``) makes it."""
    return OwnerReview(
        db,
        deliveries=DeliveryStore(db),
        catalogue=load_catalogue("th"),
        schedule=SCHEDULE,
        recorded=recorded.append,
        holder=holder,
    )


async def review_deliveries(db: AsyncDatabase[Document]) -> list[Document]:
    return await db["deliveries"].find({"event_type": "review"}).to_list()


async def test_two_processes_ticking_at_once_record_each_team_group_once(db: AsyncDatabase[Document]) -> None:
    await configure(db)
    recorded: list[Delivery] = []
    first, second = reviewer(db, recorded, "n1"), reviewer(db, recorded, "n2")
    await asyncio.gather(
        first.tick(Q4_DUE - timedelta(minutes=1)), second.tick(Q4_DUE - timedelta(minutes=1))
    )
    assert await db[ROUNDS].count_documents({}) == 0, "nothing before the round is due"
    await asyncio.gather(first.tick(Q4_DUE), second.tick(Q4_DUE))
    claims = await db[ROUNDS].find({}).to_list()
    assert [(c["_id"], c["teams"], c["status"]) for c in claims] == [
        ("2026-Q4", {"infra": [GROUP_A], "apps": [GROUP_B]}, "recorded")
    ], "one claim; the team without a LINE group is skipped"
    docs = await review_deliveries(db)
    assert sorted(d["_id"] for d in docs) == [
        f"review:2026-Q4:apps:line:{GROUP_B}",
        f"review:2026-Q4:infra:line:{GROUP_A}",
    ]
    assert {d["status"] for d in docs} == {"pending"}
    # The process that lost the claim finds it not recorded yet and records it too (adding nothing):
    # each group's worker is woken, perhaps twice, which is harmless.
    assert {d.target for d in recorded} == {GROUP_A, GROUP_B}
    woken = len(recorded)
    infra = next(d for d in docs if d["target"] == GROUP_A)
    assert "พอร์ทัลบริการภาครัฐ" in infra["message"]["text"]
    assert "สมชาย ใจดี" in infra["message"]["text"]
    # Later ticks, and a restarted process, record nothing more.
    third = reviewer(db, recorded, "n3")
    await asyncio.gather(first.tick(Q4_DUE + timedelta(days=3)), third.tick(Q4_DUE + timedelta(days=30)))
    assert len(await review_deliveries(db)) == 2
    assert len(recorded) == woken, "a recorded round is not recorded (nor woken) again"


async def test_a_claim_left_half_done_by_a_crash_is_completed_by_the_next_process(
    db: AsyncDatabase[Document],
) -> None:
    """A process claimed the round, recorded infra's delivery and died: the next one records
    apps' delivery, leaves infra's as it was, and marks the claim recorded."""
    await configure(db)
    await db[ROUNDS].insert_one(
        {"_id": "2026-Q4", "round": "2026-Q4", "due_at": Q4_DUE, "status": "claimed", "claimed_by": "dead",
         "claimed_at": Q4_DUE, "teams": {"infra": [GROUP_A], "apps": [GROUP_B]}}
    )  # fmt: skip
    survivor = f"review:2026-Q4:infra:line:{GROUP_A}"
    await db["deliveries"].insert_one(
        {"_id": survivor, "event_id": "review:2026-Q4:infra", "incident_id": "review:2026-Q4:infra",
         "event_type": "review", "channel": "line", "target": GROUP_A, "status": "sent", "attempts": 1,
         "retry_key": "k", "kind": "review", "at": Q4_DUE, "message": None, "created_at": Q4_DUE,
         "updated_at": Q4_DUE}
    )  # fmt: skip
    recorded: list[Delivery] = []
    await reviewer(db, recorded, "next").tick(Q4_DUE + timedelta(hours=2))
    docs = {d["_id"]: d for d in await review_deliveries(db)}
    assert set(docs) == {survivor, f"review:2026-Q4:apps:line:{GROUP_B}"}
    assert docs[survivor]["status"] == "sent", "the delivery recorded before the crash is left as it was"
    assert docs[f"review:2026-Q4:apps:line:{GROUP_B}"]["status"] == "pending"
    assert [d.target for d in recorded] == [GROUP_B]
    claim = await db[ROUNDS].find_one({"_id": "2026-Q4"})
    assert claim is not None
    assert (claim["status"], claim["claimed_by"]) == ("recorded", "dead")


# --- the notifier process ----------------------------------------------------------------------


def review_pushes(line: FakeLineServer, group: str) -> list[dict[str, Any]]:
    return [
        body
        for body in line.pushes_to(group)
        if any("ทบทวน" in m.get("altText", "") for m in body["messages"])
    ]


async def incident_pushed(stack: Stack, incident_id: str, pushes_before: int) -> None:
    """Publish a new incident and wait until its problem message is pushed: the notifier serving
    it has finished its start (the review's first tick comes before it handles any event)."""
    incident = stack.event("opened").incident.model_copy(update={"id": incident_id})
    await stack.publish(stack.event("opened", incident))
    await stack.line.wait_for_pushes(pushes_before + 1, timeout=15)


async def test_the_notifier_sends_the_round_once_per_team_group_with_two_notifiers_and_after_a_restart(
    stack: Stack,
) -> None:
    await stack.add_inventory([stack.group])
    apps = Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[stack.group_2])
    await stack.db[TEAMS].replace_one({"_id": apps.id}, to_doc(apps, apps.id), upsert=True)
    for person in (LEAD, DEPUTY, DEV):
        await stack.db[PEOPLE].replace_one({"_id": person.id}, to_doc(person, person.id), upsert=True)
    # Due from the first instant of every quarter: the current round is due whenever this runs.
    settings = stack.settings(review_enabled=True, review_day=1, review_hour=0)
    round_id = round_of(datetime.now(UTC))
    first = await stack.start_notifier(settings)
    second = await stack.start_notifier(settings)
    pushes = await stack.line.wait_for_pushes(2, timeout=15)
    await incident_pushed(stack, "inc-review-first", len(pushes))
    for group, shown, hidden in (
        (stack.group, ["พอร์ทัลบริการภาครัฐ", "สมชาย ใจดี — หัวหน้าทีม", "สมหญิง รักงาน"], ["วิชัย"]),
        (stack.group_2, ["สมหญิง รักงาน", "วิชัย เขียนโค้ด — นักพัฒนา"], ["พอร์ทัลบริการภาครัฐ", "สมชาย"]),
    ):
        sent = review_pushes(stack.line, group)
        assert len(sent) == 1, f"one review message to {group}: {sent}"
        texts = "\n".join(message_texts(sent[0]["messages"][0]))
        body = json.dumps(sent[0], ensure_ascii=False)
        assert round_id in texts
        for name in shown:
            assert name in texts
        for name in hidden:
            assert name not in texts
        for contact in CONTACTS:
            assert contact is not None
            assert contact not in body
    await first.stop()
    await second.stop()
    before = len(stack.line.pushes)
    await stack.start_notifier(settings)
    await incident_pushed(stack, "inc-review-after-restart", before)
    assert [len(review_pushes(stack.line, g)) for g in (stack.group, stack.group_2)] == [1, 1]
    claim = await stack.db[ROUNDS].find_one({"_id": round_id})
    assert claim is not None
    assert claim["status"] == "recorded"
