"""Report periods (months, fiscal years), when the monthly report is due, the LINE summary text
and how figures are written in Thai and English. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from fao.reporter.archive import ReportFile
from fao.reporter.availability import IncidentFact, SystemInfo, summarize
from fao.reporter.line_push import retry_key
from fao.reporter.localize import Formatter
from fao.reporter.periods import ReportPeriod
from fao.reporter.schedule import due_at, is_stale, latest_due, report_id, takeover_id
from fao.reporter.settings import ReporterSettings
from fao.reporter.summary import report_link, summary_text
from fao.runtime.thai import Month, thai_digits

PERIOD_CASES = [
    ("2026-10", "month", "2026-10", "2026-10", (datetime(2026, 9, 30, 17, tzinfo=UTC), datetime(2026, 10, 31, 17, tzinfo=UTC))),
    ("fy2570", "fiscal_year", "2026-10", "2027-09", (datetime(2026, 9, 30, 17, tzinfo=UTC), datetime(2027, 9, 30, 17, tzinfo=UTC))),
    ("FY2569", "fiscal_year", "2025-10", "2026-09", (datetime(2025, 9, 30, 17, tzinfo=UTC), datetime(2026, 9, 30, 17, tzinfo=UTC))),
]  # fmt: skip


@pytest.mark.parametrize(("text", "kind", "first", "last", "bounds"), PERIOD_CASES)
def test_periods_parse_to_bangkok_bounds(
    text: str, kind: str, first: str, last: str, bounds: tuple[datetime, datetime]
) -> None:
    period = ReportPeriod.parse(text)
    assert (period.kind, str(period.first), str(period.last)) == (kind, first, last)
    assert period.bounds() == bounds


def test_period_previous_and_keys() -> None:
    assert ReportPeriod.parse("2026-01").previous().key == "2025-12"
    assert ReportPeriod.parse("fy2570").previous().key == "fy2569"
    assert ReportPeriod.parse("fy2570").fiscal_year == 2570
    assert ReportPeriod.parse("2026-09").fiscal_year == 2569


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fy2026", r"the Buddhist-era year it ends in, e\.g\. fy2569 \(October 2025 to September 2026\)"),
        (
            "fy0001",
            r"^invalid fiscal year 'fy0001': expected fy2444 to fy2942 \(Buddhist era, e\.g\. fy2570\)$",
        ),
        ("fy2400", "expected fy2444 to fy2942"),
        ("fy9999", "expected fy2444 to fy2942"),
        ("2569-10", "looks like a Buddhist-era year"),
        ("2026-13", "month must be 01-12"),
        ("october", "expected YYYY-MM"),
    ],
)
def test_bad_periods_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReportPeriod.parse(text)


DUE_CASES = [
    # now (UTC), day, hour -> latest due month. 1 Nov 06:00 Bangkok is 31 Oct 23:00Z.
    (datetime(2026, 10, 31, 22, 59, tzinfo=UTC), 1, 6, "2026-09"),
    (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), 1, 6, "2026-10"),
    (datetime(2026, 11, 29, 19, 0, tzinfo=UTC), 1, 6, "2026-10"),
    (datetime(2026, 11, 2, 0, 0, tzinfo=UTC), 3, 0, "2026-09"),  # due 3 Nov 00:00 Bangkok
    (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), 1, 0, "2026-12"),  # year boundary: 07:00 Bangkok
]


@pytest.mark.parametrize(("now", "day", "hour", "month"), DUE_CASES)
def test_latest_due_month(now: datetime, day: int, hour: int, month: str) -> None:
    assert str(latest_due(now, day, hour)) == month


def test_scheduled_report_formats_are_checked_at_start() -> None:
    """An unknown format is refused when the reporter starts, not when the 1st of the month comes
    (it used to claim the month, fail, and hold the claim until it went stale)."""
    assert ReporterSettings(report_formats=" pdf, json ").formats() == ("pdf", "json")
    for bad in ("docx,pdf", " , "):
        with pytest.raises(ValidationError, match=r"use one or more of html, pdf, xlsx, json"):
            ReporterSettings(report_formats=bad)


def test_due_time_claim_ids_and_staleness() -> None:
    assert due_at(Month.parse("2026-12"), 1, 6) == datetime(2026, 12, 31, 23, tzinfo=UTC)
    assert report_id("2026-10") == "report:2026-10"
    assert takeover_id("2026-10", 2) == "report:2026-10#2"
    start = datetime(2026, 11, 1, tzinfo=UTC)
    assert not is_stale(start, start + timedelta(minutes=29), timedelta(minutes=30))
    assert is_stale(start, start + timedelta(minutes=30), timedelta(minutes=30))


def test_retry_key_is_deterministic_per_report_and_group() -> None:
    key = retry_key("2026-10", "C" + "1" * 32)
    assert key == retry_key("2026-10", "C" + "1" * 32)
    assert key != retry_key("2026-11", "C" + "1" * 32)
    assert key != retry_key("2026-10", "C" + "2" * 32)


def test_summary_names_availability_incidents_worst_and_the_pdf() -> None:
    systems = [
        SystemInfo(id="payroll", name="Payroll", name_th="ระบบเงินเดือน", sla_target=Decimal("99.9")),
        SystemInfo(id="web", name="Website"),
    ]
    facts = [
        IncidentFact(
            incident_id="a", system_id="payroll", title="t", severity="critical",
            started_at=datetime(2026, 10, 5, 7, tzinfo=UTC), resolved_at=datetime(2026, 10, 5, 8, tzinfo=UTC),
            status="resolved",
        )
    ]  # fmt: skip
    report = summarize(Month.parse("2026-10"), systems, facts, datetime(2026, 11, 2, tzinfo=UTC))
    text = summary_text(report, Formatter("th"), "https://fao.example/reports/fao-report-2026-10.pdf")
    assert text.splitlines() == [
        "รายงานสรุปเหตุขัดข้องระบบเทคโนโลยีสารสนเทศ ประจำเดือนตุลาคม พ.ศ. 2569",
        "ความพร้อมใช้งานเฉลี่ย 99.933% (2 ระบบ)",
        "เหตุขัดข้อง 1 ครั้ง เวลาหยุดทำงานรวม 1 ชม.",
        "ผ่านเป้าหมาย 0 ระบบ ไม่ผ่าน 1 ระบบ",
        "ระบบที่ต่ำสุด: ระบบเงินเดือน 99.866%",
        "รายงานฉบับเต็ม (PDF): https://fao.example/reports/fao-report-2026-10.pdf",
    ]
    thai = summary_text(report, Formatter("th", thai_digits=True), "/srv/r/fao-report-2026-10.pdf")
    assert "๙๙.๙๓๓%" in thai
    assert thai.endswith("/srv/r/fao-report-2026-10.pdf")


def test_the_summary_links_the_pdf_under_the_published_folder_or_names_its_path() -> None:
    files = [
        ReportFile("html", Path("/srv/reports/fao-report-2026-10.html"), 1, "a"),
        ReportFile("pdf", Path("/srv/reports/fao-report-2026-10.pdf"), 1, "b"),
    ]
    assert report_link(files, None) == "/srv/reports/fao-report-2026-10.pdf"
    assert (
        report_link(files, "https://fao.example/reports/")
        == "https://fao.example/reports/fao-report-2026-10.pdf"
    )
    assert report_link(files[:1], "https://fao.example/r") == "https://fao.example/r/fao-report-2026-10.html"
    assert report_link([], "https://fao.example/r") == "—"


FORMAT_CASES = [
    ("th", False, "5 ต.ค. 2569 14:03 น.", "1 วัน 2 ชม. 3 นาที", "99.933", "+0.120"),
    ("th", True, "๕ ต.ค. ๒๕๖๙ ๑๔:๐๓ น.", "๑ วัน ๒ ชม. ๓ นาที", "๙๙.๙๓๓", "+๐.๑๒๐"),
    ("en", False, "5 Oct 2026 14:03", "1 d 2 h 3 min", "99.933", "+0.120"),
    ("en", True, "5 Oct 2026 14:03", "1 d 2 h 3 min", "99.933", "+0.120"),  # Thai digits only in Thai
]


@pytest.mark.parametrize(("language", "digits", "when", "duration", "percent", "points"), FORMAT_CASES)
def test_formatter(language: str, digits: bool, when: str, duration: str, percent: str, points: str) -> None:
    fmt = Formatter("th" if language == "th" else "en", thai_digits=digits)
    assert fmt.when(datetime(2026, 10, 5, 7, 3, tzinfo=UTC)) == when
    assert fmt.duration(timedelta(days=1, hours=2, minutes=3, seconds=4)) == duration
    assert fmt.percent(Decimal("99.933")) == percent
    assert fmt.points(Decimal("0.12")) == points
    assert fmt.label("kinds", "brand-new-kind") == "brand-new-kind"


def test_thai_digits() -> None:
    assert thai_digits("พ.ศ. 2569, 99.9%") == "พ.ศ. ๒๕๖๙, ๙๙.๙%"
