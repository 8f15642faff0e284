"""The monthly report's owner review section: the latest round sent by the period's end and the
teams that have not confirmed it, read from FerretDB as the notifier (round claims) and the
gateway (answers) store them; the systems without a reachable owner and the LINE groups the bot
has left, as ``fao doctor`` finds them; shown in the JSON and the HTML (which the PDF prints)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from fao.cli.doctor import diagnose, snapshot
from fao.reporter.availability import MonthlyReport, summarize
from fao.reporter.formats import RenderContext, renderer
from fao.reporter.formats.html import render_page
from fao.reporter.formats.json_doc import render_json
from fao.reporter.localize import Formatter
from fao.reporter.periods import ReportPeriod
from fao.reporter.produce import ReportRequest, load_report
from fao.reporter.read_model import FactStore
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.owner_review import REVIEWS, ROUNDS
from fao.runtime.reachability import BROKEN_TARGETS, LINE_GROUPS
from fao.runtime.store import Document
from fao.runtime.thai import Month
from fao.schemas import System, Team

Q3_SENT = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
Q4_SENT = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)
OCTOBER_END = datetime(2026, 10, 31, 17, 0, tzinfo=UTC)
ASKED = {"apps": ["C" + "1" * 32], "infra": ["C" + "2" * 32], "noc": ["C" + "3" * 32]}


async def store_review(db: AsyncDatabase[Document]) -> None:
    for team in (Team(id="apps", name="ทีมพัฒนาระบบงาน"), Team(id="infra", name="ทีมโครงสร้างพื้นฐาน")):
        await db[TEAMS].insert_one(to_doc(team, team.id))
    for round_id, sent in (("2026-Q3", Q3_SENT), ("2026-Q4", Q4_SENT)):
        await db[ROUNDS].insert_one(
            {"_id": round_id, "round": round_id, "due_at": sent, "claimed_at": sent, "teams": ASKED,
             "status": "recorded"}
        )  # fmt: skip
    answers = [
        ("2026-Q3", "apps", "confirmed"),
        ("2026-Q4", "noc", "confirmed"),
        ("2026-Q4", "infra", "needs_changes"),
    ]
    for round_id, team_id, status in answers:
        await db[REVIEWS].insert_one(
            {"_id": f"{round_id}:{team_id}", "round": round_id, "team": team_id, "status": status, "by": "somchai",
             "at": datetime(2026, 10, 2, tzinfo=UTC)}
        )  # fmt: skip


async def test_the_latest_round_sent_by_the_period_s_end_and_its_unconfirmed_teams_are_read(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = FactStore(mongo_db)
    assert await store.owner_review(OCTOBER_END) is None, "before the first round: no section"
    await store_review(mongo_db)
    october = await store.owner_review(OCTOBER_END)
    assert october is not None
    assert (october.round_id, october.sent_at, october.team_count) == ("2026-Q4", Q4_SENT, 3)
    assert [(t.team, t.team_name, t.status) for t in october.unconfirmed] == [
        ("apps", "ทีมพัฒนาระบบงาน", "not_confirmed"),
        ("infra", "ทีมโครงสร้างพื้นฐาน", "needs_changes"),
    ], "apps confirmed the previous round only; noc confirmed this one"
    august = await store.owner_review(datetime(2026, 8, 31, 17, tzinfo=UTC))
    assert august is not None
    assert august.round_id == "2026-Q3", "a report of August shows the round sent by then"
    assert [t.team for t in august.unconfirmed] == ["infra", "noc"]


async def october_report(db: AsyncDatabase[Document]) -> MonthlyReport:
    """October's report as ``fao report`` and the scheduler load it (``produce.load_report``)."""
    await store_review(db)
    request = ReportRequest(ReportPeriod.parse("2026-10"))
    return await load_report(db, request, datetime(2026, 11, 3, tzinfo=UTC))


async def test_the_json_and_the_html_list_the_teams_that_have_not_confirmed(
    mongo_db: AsyncDatabase[Document],
) -> None:
    report = await october_report(mongo_db)
    document = json.loads(render_json(report))
    assert document["owner_review"] == {
        "round": "2026-Q4",
        "sent_at": "2026-10-01T03:00:00Z",
        "team_count": 3,
        "unconfirmed": [
            {"team": "apps", "team_name": "ทีมพัฒนาระบบงาน", "status": "not_confirmed"},
            {"team": "infra", "team_name": "ทีมโครงสร้างพื้นฐาน", "status": "needs_changes"},
        ],
        "unowned_systems": [],
        "left_groups": [],
    }
    for for_print in (False, True):
        html = render_page(RenderContext(report, Formatter("th")), for_print=for_print)
        section = html[html.index('class="owner-review"') :]
        assert "การทบทวนระบบและสมาชิกทีมรายไตรมาส" in section
        assert "รอบ 2026-Q4" in section
        assert "ยังไม่ยืนยัน 2 ทีม" in section
        assert "ทีมพัฒนาระบบงาน" in section
        assert "แจ้งว่าต้องแก้ไข" in section
        assert "noc" not in section, "noc confirmed"
    english = render_page(RenderContext(report, Formatter("en")), for_print=False)
    assert "asked for changes" in english


async def test_without_a_round_nor_anything_to_list_the_report_has_no_review_section(
    mongo_db: AsyncDatabase[Document],
) -> None:
    report = summarize(Month.parse("2026-10"), [], [], OCTOBER_END)
    assert json.loads(render_json(report))["owner_review"] is None
    assert "owner-review" not in render_page(RenderContext(report, Formatter("th")), for_print=False)


APPS_GROUP, INFRA_GROUP, INFRA_OLD_GROUP = "C" + "a" * 32, "C" + "b" * 32, "C" + "c" * 32


async def store_reach(db: AsyncDatabase[Document]) -> None:
    """apps: its LINE group left and its e-mail marked broken (no channel works); noc: no channel;
    infra: one group working, one left; ops: a webhook that works."""
    teams = [
        Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[APPS_GROUP], email=["apps@example.go.th"]),
        Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=[INFRA_GROUP, INFRA_OLD_GROUP]),
        Team(id="noc", name="ทีมเครือข่าย"),
        Team(id="ops", name="Operations", webhooks=[{"url": "https://hooks.example.go.th/ops"}]),
    ]
    systems = [
        System(id="e-service", name="e-Service", name_th="บริการอิเล็กทรอนิกส์", team="apps"),
        System(id="portal", name="Portal", team="apps"),
        System(id="core", name="Core network", team="infra"),
        System(id="dns", name="DNS", name_th="ระบบชื่อโดเมน", team="noc"),
        System(id="mail", name="Mail", team="ops"),
    ]
    for team in teams:
        await db[TEAMS].insert_one(to_doc(team, team.id))
    for system in systems:
        await db[SYSTEMS].insert_one(to_doc(system, system.id))
    await db[LINE_GROUPS].insert_many([
        {"_id": APPS_GROUP, "name": "แอป แจ้งเตือน", "in_group": False},
        {"_id": INFRA_GROUP, "name": "โครงสร้าง", "in_group": True},
        {"_id": INFRA_OLD_GROUP, "name": None, "in_group": False},
    ])  # fmt: skip
    await db[BROKEN_TARGETS].insert_one(
        {
            "_id": "email:apps@example.go.th",
            "since": datetime(2026, 10, 20, tzinfo=UTC),
            "error": "550 no such user",
        }
    )


async def test_systems_without_a_reachable_owner_and_left_groups_are_listed_as_fao_doctor_finds_them(
    mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    await store_reach(mongo_db)
    report = await load_report(
        mongo_db, ReportRequest(ReportPeriod.parse("2026-10")), datetime(2026, 11, 3, tzinfo=UTC)
    )
    review = json.loads(render_json(report))["owner_review"]
    assert (review["round"], review["sent_at"], review["unconfirmed"]) == (None, None, []), (
        "no round sent yet"
    )
    assert review["unowned_systems"] == [
        {"system": "e-service", "name": "e-Service", "name_th": "บริการอิเล็กทรอนิกส์", "team": "apps",
         "team_name": "ทีมพัฒนาระบบงาน"},
        {"system": "portal", "name": "Portal", "name_th": None, "team": "apps", "team_name": "ทีมพัฒนาระบบงาน"},
        {"system": "dns", "name": "DNS", "name_th": "ระบบชื่อโดเมน", "team": "noc", "team_name": "ทีมเครือข่าย"},
    ]  # fmt: skip
    assert review["left_groups"] == [
        {"group": APPS_GROUP, "group_name": "แอป แจ้งเตือน", "team": "apps", "team_name": "ทีมพัฒนาระบบงาน"},
        {"group": INFRA_OLD_GROUP, "group_name": None, "team": "infra", "team_name": "ทีมโครงสร้างพื้นฐาน"},
    ]

    # the same systems and groups as fao doctor names
    findings = [str(f) for f in diagnose(await snapshot(mongo_db, {}), datetime(2026, 11, 3, tzinfo=UTC))]
    unowned = [f for f in findings if "systems without a reachable owner" in f]
    assert [re.findall(r"reachable owner: ([^\n]+)", f)[0] for f in unowned] == ["e-service, portal", "dns"]
    left = sorted(re.findall(r"the bot has left its LINE group (\S+):", "\n".join(findings)))
    assert left == sorted([APPS_GROUP, INFRA_OLD_GROUP])

    for for_print in (False, True):
        html = render_page(RenderContext(report, Formatter("th")), for_print=for_print)
        section = html[html.index('class="owner-review"') :]
        assert "ยังไม่ได้ส่งการทบทวนรอบใด" in section
        assert "ระบบที่ไม่มีผู้ดูแลที่ติดต่อได้" in section
        assert "กลุ่ม LINE ที่บอทออกไปแล้ว" in section
        for shown in ("บริการอิเล็กทรอนิกส์", "Portal", "ระบบชื่อโดเมน", "แอป แจ้งเตือน", INFRA_OLD_GROUP):
            assert shown in section, shown
        for reachable in ("Core network", "Mail", INFRA_GROUP):
            assert reachable not in section, reachable
    english = render_page(RenderContext(report, Formatter("en")), for_print=False)
    section = english[english.index('class="owner-review"') :]
    for shown in ("No review round has been sent yet", "Systems without a reachable owner",
                  "LINE groups the bot has left", "e-Service", "DNS"):  # fmt: skip
        assert shown in section, shown

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(renderer("pdf").render(RenderContext(report, Formatter("th"))))
    process = await asyncio.create_subprocess_exec("pdftotext", str(pdf), "-", stdout=asyncio.subprocess.PIPE)
    text, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    flat = re.sub(r"\s+", "", text.decode())
    for shown in ("ระบบที่ไม่มีผู้ดูแลที่ติดต่อได้", "บริการอิเล็กทรอนิกส์", "ระบบชื่อโดเมน", "กลุ่มLINEที่บอทออกไปแล้ว",
                  "แอปแจ้งเตือน"):  # fmt: skip
        assert shown in flat, shown


async def test_with_every_team_reachable_a_round_shows_no_reachability_tables(
    mongo_db: AsyncDatabase[Document],
) -> None:
    await mongo_db[TEAMS].insert_one(to_doc(Team(id="ops", name="Ops", email=["ops@example.go.th"]), "ops"))
    await mongo_db[SYSTEMS].insert_one(to_doc(System(id="mail", name="Mail", team="ops"), "mail"))
    assert await FactStore(mongo_db).owner_review(OCTOBER_END) is None, "no round, nothing to list"
    report = await october_report(mongo_db)
    assert report.owner_review is not None
    assert (report.owner_review.unowned_systems, report.owner_review.left_groups) == ((), ())
    html = render_page(RenderContext(report, Formatter("en")), for_print=False)
    assert "unowned-systems" not in html
    assert "left-groups" not in html
