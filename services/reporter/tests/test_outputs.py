"""The report's files (`fao.reporter.formats`): the PDF read back with poppler (pdftotext, pdffonts,
pdftoppm), the XLSX reopened with openpyxl cell by cell, the English version, the registry.

The first PDF page is kept as a PNG under ``test-artifacts/`` (ignored by git) for people to look
at; the test prints its path.
"""

from __future__ import annotations

import logging
import re
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image

from fao.reporter.availability import (
    IncidentFact,
    MaintenanceSpan,
    MonthlyReport,
    SystemInfo,
    summarize_with_previous,
)
from fao.reporter.charts import hours_axis
from fao.reporter.formats import FORMATS, PRINT_INCIDENT_LIMIT, RENDERERS, RenderContext, renderer
from fao.reporter.localize import Formatter
from fao.runtime.thai import Month

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
OCTOBER = Month.parse("2026-10")
AFTER_OCTOBER = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
MARKS = "ที่ นี้ ปี่ ฤๅ น้ำ"
SYSTEMS = [
    SystemInfo(id="payroll", name="Payroll", name_th="ระบบเงินเดือน", team="apps", team_name="ทีมพัฒนาระบบงาน",
               sla_target=Decimal("99.9")),
    SystemInfo(id="eservice", name="e-Service portal", name_th="ระบบบริการอิเล็กทรอนิกส์", team="apps",
               team_name="ทีมพัฒนาระบบงาน"),
    SystemInfo(id="water", name="Water bills", name_th="ระบบค่าน้ำประปา", team="infra", team_name="ทีมโครงสร้างพื้นฐาน"),
]  # fmt: skip


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


FACTS = [
    IncidentFact(
        incident_id="inc-1", system_id="payroll", title=f"หน้าเว็บตอบ HTTP 503 {MARKS}", severity="critical",
        started_at=utc(5, 7, 3), acknowledged_at=utc(5, 7, 10), resolved_at=utc(5, 7, 33), status="resolved",
        alerted=True,
    ),
    IncidentFact(
        incident_id="inc-2", system_id="water", title="ระบบไม่เสถียร", severity="minor", kind="flapping",
        started_at=utc(12, 1), resolved_at=utc(12, 5), status="resolved",
        maintenance=(MaintenanceSpan(start=utc(12, 1), end=utc(12, 2)),),
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def report() -> MonthlyReport:
    return summarize_with_previous(OCTOBER, SYSTEMS, FACTS, AFTER_OCTOBER)


@pytest.fixture(scope="module")
def thai(report: MonthlyReport) -> RenderContext:
    """One Thai context for the module: its charts are drawn once."""
    return RenderContext(report, Formatter("th"))


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def thai_pdf(thai: RenderContext) -> tuple[bytes, list[logging.LogRecord]]:
    """The Thai PDF, and WeasyPrint's warnings while making it."""
    handler = _Collector()
    records = handler.records
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        return renderer("pdf").render(thai), records
    finally:
        logger.removeHandler(handler)


def pdf_text(data: bytes, tmp_path: Path, *options: str) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", *options, str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def unspaced(text: str) -> str:
    """Without any whitespace: Thai wraps between words that have no space, and a table cell may
    wrap a name over two lines, so a name is compared character for character without spacing."""
    return re.sub(r"\s+", "", text)


def test_pdf_text_extracts_thai_marks_and_names_exactly(
    thai_pdf: tuple[bytes, list[logging.LogRecord]], tmp_path: Path
) -> None:
    """Stacked marks and SARA AM (ำ) survive extraction: no "ประจา", no "นา" for "น้ำ"; every system
    name, the Thai title and BE dates come back character for character; no glyph was missing."""
    data, warnings = thai_pdf
    assert data.startswith(b"%PDF-")
    assert not [r for r in warnings if "notdef" in r.getMessage()]
    text = squeeze(pdf_text(data, tmp_path))
    assert MARKS in text
    assert "รายงานสรุปเหตุขัดข้องระบบเทคโนโลยีสารสนเทศ ประจำเดือนตุลาคม พ.ศ. 2569" in text
    for name in ("ระบบเงินเดือน", "ระบบบริการอิเล็กทรอนิกส์", "ระบบค่าน้ำประปา"):
        assert unspaced(name) in unspaced(text), name
    for phrase in ("จำนวนเหตุการณ์", "ทีมพัฒนาระบบงาน", "ปีงบประมาณ พ.ศ. 2570", "1 ตุลาคม 2569 ถึง 31 ตุลาคม 2569"):
        assert unspaced(phrase) in unspaced(text), phrase
    # The maintenance rule (excluded by default) is printed on what executives sign.
    assert unspaced("เวลาหยุดทำงานในช่วงบำรุงรักษาตามแผนไม่นับเป็นเวลาหยุดทำงาน (แสดงแยกไว้)") in unspaced(text)
    assert "ประจา" not in text
    assert "้ำา" not in text
    # The heading wraps before "พ.ศ. 2569", never between the era and its year.
    assert not re.search(r"พ\.ศ\.\s*\n", pdf_text(data, tmp_path, "-l", "1"))


def test_pdf_is_a4_in_sarabun_and_its_first_page_is_kept_as_png(
    thai_pdf: tuple[bytes, list[logging.LogRecord]], tmp_path: Path
) -> None:
    """A4 pages, only the Sarabun faces embedded, the three chart images, a first page that is not blank."""
    data = thai_pdf[0]
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info), info
    fonts = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
    embedded = [line.split()[0] for line in fonts.splitlines()[2:]]
    assert embedded, fonts
    assert all("Sarabun" in name for name in embedded), fonts
    images = subprocess.run(
        ["pdfimages", "-list", str(path)], check=True, capture_output=True, text=True
    ).stdout
    assert [line.split()[2] for line in images.splitlines()[2:]].count("image") == 3, images  # the charts
    ARTIFACTS.mkdir(exist_ok=True)
    stem = ARTIFACTS / "report-2026-10-page1"
    subprocess.run(
        ["pdftoppm", "-r", "100", "-png", "-singlefile", "-f", "1", "-l", "1", str(path), str(stem)],
        check=True,
    )
    png = stem.with_suffix(".png")
    print(f"first PDF page: {png}")
    with Image.open(png) as page:
        assert page.size == (827, 1170)  # A4 (210 × 297 mm) at 100 dpi
        colours = page.convert("L").getcolors(maxcolors=256 * 256)
    assert colours is not None
    assert len(colours) > 20, "the page looks blank"


def test_pdf_lists_only_the_longest_incidents_when_there_are_many(tmp_path: Path) -> None:
    """Over the print limit the PDF lists the longest incidents with a note; the longest is in it and
    a shorter one beyond the limit is not."""
    facts = [
        IncidentFact(incident_id=f"inc-{i:04d}", system_id="payroll", title=f"เหตุที่ {i}", severity="major",
                     started_at=utc(1 + i % 28, 1), resolved_at=utc(1 + i % 28, 1) + timedelta(seconds=60 + i),
                     status="resolved")
        for i in range(12)
    ]  # fmt: skip
    report = summarize_with_previous(OCTOBER, SYSTEMS, facts, AFTER_OCTOBER)
    context = RenderContext(report, Formatter("th"), print_incident_limit=10)
    text = squeeze(pdf_text(renderer("pdf").render(context), tmp_path))
    assert unspaced("แสดง 10 รายการที่นานที่สุดจากทั้งหมด 12 รายการ") in unspaced(text)
    assert "inc-0011" in text
    assert "inc-0002" in text
    assert "inc-0000" not in text
    assert "inc-0001" not in text
    assert PRINT_INCIDENT_LIMIT == 100


def test_xlsx_has_one_sheet_per_table_with_thai_headers_and_real_values(
    report: MonthlyReport, thai: RenderContext
) -> None:
    data = renderer("xlsx").render(thai)
    book = load_workbook(BytesIO(data))
    assert book.sheetnames == ["สรุป", "รายระบบ", "เหตุการณ์", "ตามความรุนแรง", "ตามประเภท", "ตามทีม", "รายวัน"]
    summary = book["สรุป"]
    assert [c.value for c in summary[1]] == ["รายการ", "ค่า"]
    assert summary["A2"].value == "เริ่มช่วงข้อมูล"
    assert summary["B2"].value == datetime(2026, 10, 1, 0, 0)  # Bangkok wall clock
    assert summary["B2"].number_format == "yyyy-mm-dd hh:mm"
    assert summary["A4"].value == "ความพร้อมใช้งานเฉลี่ย (%)"
    assert summary["B4"].value == pytest.approx(float(report.totals.availability_percent or 0))
    systems = book["รายระบบ"]
    header = [c.value for c in systems[1]]
    assert header[:8] == [
        "รหัสระบบ",
        "ระบบ",
        "ชื่อภาษาอังกฤษ",
        "ทีม",
        "ความพร้อมใช้งาน (%)",
        "เป้าหมาย SLA (%)",
        "ผ่าน SLA",
        "เวลาหยุดทำงาน",
    ]
    payroll = [c.value for c in systems[2]]
    assert payroll[:7] == ["payroll", "ระบบเงินเดือน", "Payroll", "ทีมพัฒนาระบบงาน", 99.933, 99.9, "ใช่"]
    assert payroll[7] == timedelta(minutes=30)
    assert systems.cell(row=2, column=5).number_format == "0.000"
    assert systems.cell(row=2, column=8).number_format == "[h]:mm:ss"
    assert systems.cell(row=2, column=10).value == 1  # incidents: a number
    water = [c.value for c in systems[4]]
    assert water[0] == "water"
    assert (water[7], water[8]) == (timedelta(hours=3), timedelta(hours=1))  # downtime, planned
    incidents = book["เหตุการณ์"]
    assert [c.value for c in incidents[1]][:8] == [
        "รหัสเหตุการณ์",
        "รหัสระบบ",
        "ระบบ",
        "เหตุการณ์",
        "ความรุนแรง",
        "ประเภท",
        "สถานะ",
        "เริ่ม",
    ]
    first = [c.value for c in incidents[2]]
    assert first[:7] == [
        "inc-1",
        "payroll",
        "ระบบเงินเดือน",
        f"หน้าเว็บตอบ HTTP 503 {MARKS}",
        "วิกฤต",
        "ระบบหยุดทำงาน",
        "แก้ไขแล้ว",
    ]
    assert first[7:10] == [
        datetime(2026, 10, 5, 14, 3),
        datetime(2026, 10, 5, 14, 10),
        datetime(2026, 10, 5, 14, 33),
    ]
    assert incidents.max_row == 3
    assert [c.value for c in book["ตามประเภท"]["A"]][1:] == ["ระบบหยุดทำงาน", "ไม่เสถียร", "ตอบสนองช้า", "ผู้ใช้แจ้ง"]
    assert [c.value for c in book["ตามประเภท"]["B"]][1:] == [1, 1, 0, 0]
    days = book["รายวัน"]
    assert days["A2"].value == datetime(2026, 10, 1, 0, 0)
    assert [c.value for c in days[6]] == [datetime(2026, 10, 5, 0, 0), 1, 0, 0, 1]
    assert days.max_row == 32


def test_english_version_of_the_same_report(report: MonthlyReport, tmp_path: Path) -> None:
    """`--language en`: the same figures in English words, CE dates; the XLSX headers too."""
    context = RenderContext(report, Formatter("en"))
    html = renderer("html").render(context).decode()
    assert '<html lang="en">' in html
    assert "IT systems incident report, October 2026" in html
    assert "Period: 1 October 2026 to 31 October 2026" in html
    assert "99.933" in html
    assert "30 min" in html
    text = squeeze(pdf_text(renderer("pdf").render(context), tmp_path))
    assert "Availability per system" in text
    assert "Payroll" in text  # systems by their English name
    assert "e-Service portal" in text
    book = load_workbook(BytesIO(renderer("xlsx").render(context)))
    assert book.sheetnames[:3] == ["Summary", "Systems", "Incidents"]
    assert [c.value for c in book["Systems"][2]][:3] == ["payroll", "Payroll", "ระบบเงินเดือน"]
    assert book["Incidents"]["C2"].value == "Payroll"


def test_thai_digits_apply_to_figures_not_to_identifiers(report: MonthlyReport) -> None:
    html = renderer("html").render(RenderContext(report, Formatter("th", thai_digits=True))).decode()
    assert "๙๙.๙๓๓" in html
    assert "ประจำเดือนตุลาคม พ.ศ. ๒๕๖๙" in html
    assert "inc-1" in html  # ids stay as they are


def test_registry_names_every_format_once() -> None:
    assert FORMATS == ("html", "pdf", "xlsx", "json")
    assert {r.suffix for r in RENDERERS.values()} == {".html", ".pdf", ".xlsx", ".json"}
    with pytest.raises(ValueError, match="unknown report format 'docx'"):
        renderer("docx")


def test_charts_are_png_images_in_the_html(thai: RenderContext) -> None:
    context = thai
    assert [c.name for c in context.charts] == ["availability", "timeline", "teams"]
    for chart in context.charts:
        with Image.open(BytesIO(chart.png)) as image:
            assert image.format == "PNG"
            assert image.width > 500
    html = renderer("html").render(context).decode()
    assert html.count('src="data:image/png;base64,') == 3


@pytest.mark.parametrize(
    ("hours", "axis"),
    [
        pytest.param([0.0, 0.0], (0.0, 1.0), id="quiet month: 0-1 h, no -0.0 ticks"),
        pytest.param([], (0.0, 1.0), id="no teams"),
        pytest.param([2.0, 0.5], (0.0, 2.1), id="room after the longest bar"),
    ],
)
def test_downtime_by_team_axis_starts_at_zero(hours: list[float], axis: tuple[float, float]) -> None:
    assert hours_axis(hours) == pytest.approx(axis)
