"""Rendering the monthly report: the Thai HTML page and the JSON document (`fao.reporter.formats`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from fao.reporter.availability import IncidentFact, MonthlyReport, SystemInfo, summarize
from fao.reporter.formats import RenderContext
from fao.reporter.formats.html import render_page
from fao.reporter.formats.json_doc import render_json
from fao.reporter.localize import Formatter
from fao.runtime.thai import Month

OCTOBER = Month.parse("2026-10")
AFTER_OCTOBER = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
SYSTEMS = [
    SystemInfo(id="payroll", name="Payroll", name_th="ระบบเงินเดือน"),
    SystemInfo(id="website", name="Website"),
]
VOID_ELEMENTS = {"meta", "br", "hr", "img", "link", "input", "col", "wbr", "source", "area", "base"}


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


FACTS = [
    IncidentFact(
        incident_id="inc-1",
        system_id="payroll",
        title="หน้าเว็บตอบ HTTP 503",
        severity="critical",
        started_at=utc(5, 7, 3),
        acknowledged_at=utc(5, 7, 10),
        resolved_at=utc(5, 7, 33),
        status="resolved",
    ),
    IncidentFact(
        incident_id="inc-2",
        system_id="retired-erp",
        title="<script>alert(1)</script>",
        severity="minor",
        started_at=utc(31, 16),
        status="open",
    ),
]


def render_html(report: MonthlyReport) -> str:
    return render_page(RenderContext(report, Formatter("th")), for_print=False)


@pytest.fixture
def report() -> MonthlyReport:
    return summarize(OCTOBER, SYSTEMS, FACTS, AFTER_OCTOBER)


class TagBalance(HTMLParser):
    """Collects structural problems: end tags that do not close the innermost open element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> while open: {self.open}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(html)
    parser.close()
    return parser


def test_html_is_well_formed(report: MonthlyReport) -> None:
    """Every element is closed in order and nothing is left open (so WeasyPrint/mail clients agree)."""
    parsed = parse(render_html(report))
    assert parsed.problems == []
    assert parsed.open == []


def test_html_title_names_thai_month_be_year_and_fiscal_year(report: MonthlyReport) -> None:
    """The heading is the official Thai title with month name and BE year, plus the fiscal year."""
    html = render_html(report)
    title = "รายงานสรุปเหตุขัดข้องระบบเทคโนโลยีสารสนเทศ ประจำเดือนตุลาคม พ.ศ. 2569"
    assert f"<title>{title}</title>" in html
    # In the heading the era is kept with its year when the line wraps.
    heading = title.replace("พ.ศ. 2569", '<span class="era">พ.ศ. 2569</span>')
    assert f"<h1>{heading}</h1>" in html
    assert "ปีงบประมาณ พ.ศ. 2570" in html


def test_html_is_thai_with_sarabun_font(report: MonthlyReport) -> None:
    """The page declares Thai, UTF-8 and the Sarabun font with a sans-serif fallback."""
    html = render_html(report)
    assert html.startswith('<!DOCTYPE html>\n<html lang="th">')
    assert '<meta charset="utf-8">' in html
    assert 'font-family: "Sarabun", "TH Sarabun New", sans-serif' in html


def test_html_system_table_shows_thai_name_availability_and_durations(report: MonthlyReport) -> None:
    """Systems appear by Thai name with 3-decimal availability, Thai downtime and MTTR."""
    text = " ".join(parse(render_html(report)).text)
    for heading in ("ระบบ", "ความพร้อมใช้งาน (%)", "เวลาหยุดทำงาน", "จำนวนเหตุการณ์", "MTTR"):
        assert heading in text
    assert "ระบบเงินเดือน" in text
    assert "99.933" in text
    assert "30 นาที" in text
    assert "7 นาที" in text  # MTTA
    assert "100.000" in text  # website, no incidents


def test_html_marks_systems_missing_from_inventory(report: MonthlyReport) -> None:
    """An incident's unknown system is shown by its id and flagged."""
    html = render_html(report)
    assert "retired-erp" in html
    assert "ไม่พบในทะเบียนระบบ" in html


def test_html_incident_table_in_bangkok_time_with_status(report: MonthlyReport) -> None:
    """Incidents are numbered, timed in Bangkok with BE years, and statuses read in Thai."""
    text = " ".join(parse(render_html(report)).text)
    for heading in ("ลำดับ", "เริ่ม", "สิ้นสุด", "เวลาหยุดในช่วงรายงาน", "สถานะ"):
        assert heading in text
    assert "5 ต.ค. 2569 14:03 น." in text
    assert "5 ต.ค. 2569 14:33 น." in text
    assert "แก้ไขแล้ว" in text
    assert "ยังไม่สิ้นสุด" in text  # the open incident


def test_html_escapes_incident_text(report: MonthlyReport) -> None:
    """Titles come from monitored systems and operators: they are escaped, never executed."""
    html = render_html(report)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_for_quiet_month_says_there_were_no_incidents() -> None:
    """A month without incidents still renders, with an explicit 'no incidents' row."""
    report = summarize(OCTOBER, SYSTEMS, [], AFTER_OCTOBER)
    html = render_html(report)
    assert "ไม่มีเหตุขัดข้องในช่วงรายงานนี้" in html
    assert parse(html).problems == []


def test_html_for_month_in_progress_says_figures_are_so_far() -> None:
    """A report run mid-month says the month is not over and up to when the data runs."""
    report = summarize(OCTOBER, SYSTEMS, [], utc(10, 7, 3))
    html = render_html(report)
    assert "ยังไม่สิ้นสุดช่วงรายงาน" in html
    assert "10 ต.ค. 2569 14:03 น." in html


def test_html_for_finished_month_gives_first_and_last_day() -> None:
    """A complete month's data range is the 1st to the last day in Thai dates."""
    html = render_html(summarize(OCTOBER, SYSTEMS, [], AFTER_OCTOBER))
    assert "1 ตุลาคม 2569 ถึง 31 ตุลาคม 2569" in html


def test_html_without_systems_renders() -> None:
    """An empty inventory renders a valid page instead of failing on missing totals."""
    html = render_html(summarize(OCTOBER, [], [], AFTER_OCTOBER))
    assert "ไม่มีระบบในรายงานนี้" in html
    assert parse(html).problems == []


def test_json_round_trips_and_is_stable(report: MonthlyReport) -> None:
    """The JSON parses back and re-serialises byte-for-byte (fixed key order, Thai kept as UTF-8)."""
    text = render_json(report)
    document = json.loads(text)
    assert json.dumps(document, ensure_ascii=False, indent=2) + "\n" == text
    assert render_json(report) == text
    assert "ระบบเงินเดือน" in text


def test_json_top_level_and_row_keys_are_in_fixed_order(report: MonthlyReport) -> None:
    """Consumers may rely on the documented key order (schema version 3)."""
    document = json.loads(render_json(report))
    assert document["schema_version"] == 4
    assert list(document) == [
        "schema_version", "period", "month", "be_year", "fiscal_year_be", "generated_at",
        "maintenance_included", "totals", "longest_incident_id", "worst_system_ids", "teams", "days",
        "systems", "incidents", "skipped_facts", "owner_review",
    ]  # fmt: skip
    assert list(document["systems"][0]) == [
        "system_id", "name", "name_th", "team", "in_inventory", "availability_percent", "downtime_seconds",
        "planned_downtime_seconds", "incident_count", "dependency_count", "by_severity", "by_kind",
        "resolved_count", "mttr_seconds", "acknowledged_count", "mtta_seconds", "unacknowledged_count",
        "failure_count", "mtbf_seconds", "sla_target_percent", "sla_met", "change",
    ]  # fmt: skip


def test_json_values_use_utc_iso_seconds_and_three_decimal_availability(report: MonthlyReport) -> None:
    """Datetimes are ISO-8601 UTC ("Z"), durations whole seconds, availability a 3-decimal number."""
    document = json.loads(render_json(report))
    assert document["month"] == "2026-10"
    assert (document["be_year"], document["fiscal_year_be"]) == (2569, 2570)
    assert document["period"] == {
        "key": "2026-10",
        "kind": "month",
        "first_month": "2026-10",
        "last_month": "2026-10",
        "fiscal_year_be": 2570,
        "start": "2026-09-30T17:00:00Z",
        "end": "2026-10-31T17:00:00Z",
        "period_end": "2026-10-31T17:00:00Z",
        "complete": True,
        "seconds": 31 * 86_400,
    }
    payroll = document["systems"][0]
    assert payroll["availability_percent"] == 99.933
    assert '"availability_percent": 99.933,' in render_json(report)
    assert payroll["downtime_seconds"] == 1800
    assert payroll["mttr_seconds"] == 1800
    assert payroll["mtta_seconds"] == 420
    assert document["systems"][1]["mttr_seconds"] is None
    first = document["incidents"][0]
    assert datetime.fromisoformat(first["started_at"]) == report.incidents[0].started_at
    assert first["started_at"] == "2026-10-05T07:03:00Z"
    assert first["resolved_at"] == "2026-10-05T07:33:00Z"
    second = document["incidents"][1]
    assert second["resolved_at"] is None
    assert second["ongoing"] is True
    assert second["downtime_in_period_seconds"] == 3600
