"""The short summary management gets in LINE when a monthly report is ready. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

from fao.reporter.archive import ReportFile
from fao.reporter.availability import MonthlyReport
from fao.reporter.localize import Formatter

WORST_LISTED: Final = 3
MAX_CHARS: Final = 4900  # LINE allows 5,000 UTF-16 units in a text message
_LINK: Final = "\x00link\x00"


def report_link(files: Sequence[ReportFile], link_base: str | None) -> str:
    """What the summary points to: the PDF (else the first file written) as a URL under
    `link_base` when the reports folder is published there, else its path; "—" without files."""
    chosen = next((f for f in files if f.format == "pdf"), files[0] if files else None)
    if chosen is None:
        return "—"
    if link_base:
        return f"{link_base.rstrip('/')}/{quote(chosen.path.name)}"
    return str(chosen.path)


def summary_text(report: MonthlyReport, fmt: Formatter, link: str) -> str:
    """Title, availability, incidents, downtime, SLA, the least available systems and the PDF."""
    rows = {row.system_id: row for row in report.systems}
    worst = ", ".join(
        f"{fmt.system_name(rows[i])} {fmt.percent(rows[i].availability_percent)}%"
        for i in report.worst[:WORST_LISTED]
    )
    totals = report.totals
    text = fmt.t(
        "line_summary",
        title=fmt.title(report.report_period),
        availability=fmt.percent(totals.availability_percent),
        systems=fmt.number(totals.system_count),
        incidents=fmt.number(totals.incident_count),
        downtime=fmt.duration(totals.downtime),
        sla=fmt.t(
            "sla_summary", met=fmt.number(totals.sla_met_count), missed=fmt.number(totals.sla_missed_count)
        ),
        worst=worst or fmt.t("line_no_worst"),
        link=_LINK,
    )
    # The link is put in last, so Thai digits never change it.
    return text.replace(_LINK, link)[:MAX_CHARS]
