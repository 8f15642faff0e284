"""The monthly report's owner review section: the latest round sent by the period's end and the
teams that have not confirmed it, read from FerretDB as the notifier (round claims) and the
gateway (answers) store them, shown in the JSON and the HTML (which the PDF prints)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from fao.reporter.availability import MonthlyReport, summarize
from fao.reporter.formats import RenderContext
from fao.reporter.formats.html import render_page
from fao.reporter.formats.json_doc import render_json
from fao.reporter.localize import Formatter
from fao.reporter.periods import ReportPeriod
from fao.reporter.produce import ReportRequest, load_report
from fao.reporter.read_model import FactStore
from fao.runtime.inventory import TEAMS, to_doc
from fao.runtime.owner_review import REVIEWS, ROUNDS
from fao.runtime.store import Document
from fao.runtime.thai import Month
from fao.schemas import Team

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


async def test_without_a_round_the_report_has_no_review_section(mongo_db: AsyncDatabase[Document]) -> None:
    report = summarize(Month.parse("2026-10"), [], [], OCTOBER_END)
    assert json.loads(render_json(report))["owner_review"] is None
    assert "owner-review" not in render_page(RenderContext(report, Formatter("th")), for_print=False)
