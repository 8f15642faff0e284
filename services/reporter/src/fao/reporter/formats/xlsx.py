"""XLSX (openpyxl, write-only): one sheet per table, Thai (or English) headers, real values.

Percentages and counts are numbers; dates and times are Excel date-times in Bangkok time (Excel
has no time zones; the header says so); durations are Excel durations (`[h]:mm:ss`, days as the
unit), so sums and filters work. Every incident is listed, however many.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from fao.reporter.availability import KNOWN_KINDS, SEVERITIES
from fao.reporter.formats.contract import RenderContext
from fao.reporter.localize import Formatter
from fao.runtime.thai import to_bangkok

DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm"
DATE_FORMAT: Final = "yyyy-mm-dd"
DURATION_FORMAT: Final = "[h]:mm:ss"
PERCENT_FORMAT: Final = "0.000"
_HEADER_FONT: Final = Font(bold=True, color="FFFFFF")
_HEADER_FILL: Final = PatternFill("solid", fgColor="1F4E79")

Value = str | int | float | bool | datetime | timedelta | Decimal | None


def _local(moment: datetime | None) -> datetime | None:
    """Bangkok wall-clock time without a zone (what Excel can store)."""
    return None if moment is None else to_bangkok(moment).replace(tzinfo=None)


class _Sheet:
    def __init__(self, workbook: Workbook, title: str, headers: Sequence[str], widths: Sequence[int]) -> None:
        self.sheet: WriteOnlyWorksheet = workbook.create_sheet(title=title[:31])
        for index, width in enumerate(widths):
            self.sheet.column_dimensions[get_column_letter(index + 1)].width = width
        self.sheet.freeze_panes = "A2"
        row = []
        for header in headers:
            cell = WriteOnlyCell(self.sheet, value=header)
            cell.font = _HEADER_FONT
            cell.fill = _HEADER_FILL
            row.append(cell)
        self.sheet.append(row)

    def add(self, values: Iterable[Value]) -> None:
        row: list[object] = []
        for value in values:
            if isinstance(value, datetime):
                cell = WriteOnlyCell(self.sheet, value=_local(value))
                cell.number_format = DATETIME_FORMAT
                row.append(cell)
            elif isinstance(value, timedelta):
                cell = WriteOnlyCell(self.sheet, value=value)
                cell.number_format = DURATION_FORMAT
                row.append(cell)
            elif isinstance(value, Decimal):
                cell = WriteOnlyCell(self.sheet, value=float(value))
                cell.number_format = PERCENT_FORMAT
                row.append(cell)
            else:
                row.append(value)
        self.sheet.append(row)


def _summary(workbook: Workbook, context: RenderContext) -> None:
    report, f = context.report, context.fmt
    totals = report.totals
    sheet = _Sheet(workbook, f.t("sheet_summary"), [f.t("item"), f.t("value")], [44, 28])
    rows: list[tuple[str, Value]] = [
        (f.t("period_start"), report.month_start),
        (f.t("period_end"), report.period_end),
        (f.t("availability_avg") + " (%)", totals.availability_percent),
        (f.t("incidents"), totals.incident_count),
        (f.t("dependants"), totals.dependant_count),
        (f.t("downtime_total"), totals.downtime),
        (f.t("planned_downtime"), totals.planned_downtime),
        (f.t("mtta"), totals.mtta),
        (f.t("mttr"), totals.mttr),
        (f.t("mtbf"), totals.mtbf),
        (f.t("unacknowledged"), totals.unacknowledged_count),
        (f.t("sla_met"), totals.sla_met_count),
        (f.t("sla_missed"), totals.sla_missed_count),
    ]
    if totals.change is not None:
        points = totals.change.availability_points
        rows += [
            (f.t("change") + " (%)", None if points is None else float(points)),
            (f.t("change_downtime"), totals.change.downtime),
            (f.t("change_incidents"), totals.change.incident_count),
        ]
    for label, value in rows:
        sheet.add((label, value))


def _systems(workbook: Workbook, context: RenderContext) -> None:
    f = context.fmt
    headers = [
        f.t("system_id"), f.t("system"), f.t("name_en"), f.t("team"), f.t("availability") + " (%)",
        f.t("sla") + " (%)", f.t("sla_met_column"), f.t("downtime"), f.t("planned_downtime"), f.t("incidents"),
        f.t("dependants"), "MTTA", "MTTR", "MTBF", f.t("unacknowledged"), f.t("change") + " (%)",
    ]  # fmt: skip
    sheet = _Sheet(
        workbook,
        f.t("sheet_systems"),
        headers,
        [18, 34, 24, 18, 12, 10, 10, 14, 14, 10, 10, 12, 12, 14, 10, 10],
    )
    for row in context.report.systems:
        met = None if row.sla_met is None else f.t("answer_yes") if row.sla_met else f.t("answer_no")
        points = (
            None
            if row.change is None or row.change.availability_points is None
            else row.change.availability_points
        )
        sheet.add(
            (
                row.system_id, f.system_name(row), row.name if f.language == "th" else row.name_th, row.team_name or row.team, row.availability_percent,
                row.sla_target, met, row.downtime, row.planned_downtime, row.incident_count,
                row.dependency_count, row.mtta, row.mttr, row.mtbf, row.unacknowledged_count, points,
            )
        )  # fmt: skip


def _incidents(workbook: Workbook, context: RenderContext) -> None:
    f = context.fmt
    headers = [
        f.t("incident_id"), f.t("system_id"), f.t("system"), f.t("incident"), f.t("severity"), f.t("kind"),
        f.t("status"), f.t("started"), f.t("acknowledged"), f.t("ended"), f.t("duration"),
        f.t("downtime_in_period"), f.t("planned_downtime"), f.t("caused_by_parent"),
    ]  # fmt: skip
    sheet = _Sheet(
        workbook, f.t("sheet_incidents"), headers, [26, 18, 30, 40, 10, 14, 18, 17, 17, 17, 12, 12, 12, 10]
    )
    names = {row.system_id: f.system_name(row) for row in context.report.systems}
    for line in context.report.incidents:
        sheet.add(
            (
                line.incident_id, line.system_id, names.get(line.system_id, line.system_name), line.title,
                f.label("severities", line.severity), f.label("kinds", line.kind), f.label("statuses", line.status),
                line.started_at, line.acknowledged_at, line.resolved_at, line.duration, line.downtime_in_period,
                line.planned_in_period, f.t("answer_yes") if line.dependant else f.t("answer_no"),
            )
        )  # fmt: skip


def _counts(
    workbook: Workbook, f: Formatter, key: str, group: str, counts: dict[str, int], order: tuple[str, ...]
) -> None:
    sheet = _Sheet(workbook, f.t(f"sheet_{key}"), [f.t(key), f.t("count")], [28, 10])
    for name in [*order, *sorted(set(counts) - set(order))]:
        sheet.add((f.label(group, name), counts.get(name, 0)))


def _teams(workbook: Workbook, context: RenderContext) -> None:
    f = context.fmt
    sheet = _Sheet(workbook, f.t("sheet_teams"), [f.t("team"), f.t("downtime"), f.t("count")], [30, 14, 10])
    for team in context.report.teams:
        sheet.add((team.team_name or team.team or "—", team.downtime, team.system_count))


def _days(workbook: Workbook, context: RenderContext) -> None:
    f = context.fmt
    headers = [f.t("date"), *(f.label("severities", s) for s in SEVERITIES), f.t("incidents")]
    sheet = _Sheet(workbook, f.t("sheet_days"), headers, [14, 10, 10, 10, 12])
    for day in context.report.days:
        counts = [day.by_severity.get(s, 0) for s in SEVERITIES]
        cell = WriteOnlyCell(sheet.sheet, value=day.day)
        cell.number_format = DATE_FORMAT
        sheet.sheet.append([cell, *counts, sum(day.by_severity.values())])


class XlsxRenderer:
    name: Final = "xlsx"
    suffix: Final = ".xlsx"
    media_type: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def render(self, context: RenderContext) -> bytes:
        workbook = Workbook(write_only=True)
        totals = context.report.totals
        _summary(workbook, context)
        _systems(workbook, context)
        _incidents(workbook, context)
        _counts(workbook, context.fmt, "severity", "severities", dict(totals.by_severity), SEVERITIES)
        _counts(workbook, context.fmt, "kind", "kinds", dict(totals.by_kind), KNOWN_KINDS)
        _teams(workbook, context)
        _days(workbook, context)
        buffer = io.BytesIO()
        workbook.save(buffer)
        return buffer.getvalue()


RENDERER: Final = XlsxRenderer()
