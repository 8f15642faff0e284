"""The report's charts as PNG images (matplotlib, Agg, Sarabun): they show the same in a browser,
in the PDF (WeasyPrint) and when mailed. matplotlib shapes Thai with its bundled libraqm, so Thai
system names are drawn correctly; the images carry no text for WeasyPrint to mis-shape
(docs: ../shared/notes/thai-pdf.md, "no Thai inside inline SVG").

- availability per system: horizontal bars, the `MAX_BARS` least available when there are more;
- incidents per day: stacked bars by severity;
- downtime per team: horizontal bars, in hours.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from fao.reporter.availability import SEVERITIES, MonthlyReport, SystemSummary
from fao.reporter.fonts import FAMILY, font_files
from fao.reporter.localize import Formatter

MAX_BARS: Final = 25
DPI: Final = 150
WIDTH_INCHES: Final = 7.0
SEVERITY_COLOURS: Final = {"critical": "#b42318", "major": "#f79009", "minor": "#1f4e79"}
OTHER_COLOUR: Final = "#7b8794"
BAR_COLOUR: Final = "#1f4e79"
MISSED_COLOUR: Final = "#b42318"


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    png: bytes


@cache
def _register_fonts() -> None:
    for path in font_files().values():
        font_manager.fontManager.addfont(str(path))


def _figure(height: float) -> Figure:
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    figure.patch.set_facecolor("white")
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _tick_text(fmt: Formatter, pattern: str) -> FuncFormatter:
    return FuncFormatter(lambda value, _position: fmt.digits(pattern.format(value)))


def availability_chart(report: MonthlyReport, fmt: Formatter) -> Chart:
    rows: Sequence[SystemSummary] = sorted(
        report.systems, key=lambda r: (r.availability_percent, -r.downtime, r.system_id)
    )[:MAX_BARS]
    title = (
        fmt.t("chart_availability")
        if len(report.systems) <= MAX_BARS
        else fmt.t("chart_availability_worst", count=len(rows))
    )
    figure = _figure(max(1.6, 0.8 + 0.24 * len(rows)))
    axes = figure.subplots()
    names = [fmt.system_name(r) for r in reversed(rows)]
    values = [float(r.availability_percent) for r in reversed(rows)]
    colours = [MISSED_COLOUR if r.sla_met is False else BAR_COLOUR for r in reversed(rows)]
    axes.barh(names, values, color=colours)
    low = min(values, default=100.0)
    axes.set_xlim(max(0.0, min(low - (100.0 - low) * 0.2, 99.0)), 100.0)
    axes.xaxis.set_major_formatter(_tick_text(fmt, "{:.2f}"))
    axes.tick_params(labelsize=8)
    axes.set_title(title, fontsize=10)
    return Chart("availability", title, _png(figure))


def timeline_chart(report: MonthlyReport, fmt: Formatter) -> Chart:
    title = fmt.t("chart_timeline")
    figure = _figure(2.4)
    axes = figure.subplots()
    positions = list(range(len(report.days)))
    bottom = [0] * len(report.days)
    severities = [*SEVERITIES, *sorted({s for d in report.days for s in d.by_severity} - set(SEVERITIES))]
    for severity in severities:
        heights = [day.by_severity.get(severity, 0) for day in report.days]
        if any(heights):
            axes.bar(
                positions,
                heights,
                bottom=bottom,
                color=SEVERITY_COLOURS.get(severity, OTHER_COLOUR),
                label=fmt.label("severities", severity),
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    step = max(1, len(report.days) // 12)
    axes.set_xticks(positions[::step], [fmt.short_day(d.day) for d in report.days][::step])
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_formatter(_tick_text(fmt, "{:,.0f}"))
    if any(bottom):
        axes.legend(fontsize=8, frameon=False)
    axes.tick_params(labelsize=8)
    axes.set_title(title, fontsize=10)
    return Chart("timeline", title, _png(figure))


def hours_axis(hours: Sequence[float]) -> tuple[float, float]:
    """The downtime axis from 0: a quiet month gets 0–1 h (matplotlib centred an all-zero axis on
    0 and printed "-0.0" ticks), otherwise a little room after the longest bar."""
    longest = max(hours, default=0.0)
    return 0.0, longest * 1.05 if longest > 0 else 1.0


def teams_chart(report: MonthlyReport, fmt: Formatter) -> Chart:
    title = fmt.t("chart_teams")
    teams = list(report.teams)[:MAX_BARS]
    figure = _figure(max(1.4, 0.8 + 0.3 * len(teams)))
    axes = figure.subplots()
    names = [t.team_name or t.team or "—" for t in reversed(teams)]
    hours = [t.downtime.total_seconds() / 3600 for t in reversed(teams)]
    axes.barh(names, hours, color=BAR_COLOUR)
    axes.set_xlim(*hours_axis(hours))
    axes.xaxis.set_major_formatter(_tick_text(fmt, "{:,.1f}"))
    axes.tick_params(labelsize=8)
    axes.set_title(title, fontsize=10)
    return Chart("teams", title, _png(figure))


CHARTS: Final[tuple[Callable[[MonthlyReport, Formatter], Chart], ...]] = (
    availability_chart,
    timeline_chart,
    teams_chart,
)


def draw_charts(report: MonthlyReport, fmt: Formatter) -> tuple[Chart, ...]:
    """Every chart of the report, in the order the report shows them."""
    _register_fonts()
    with rc_context({"font.family": FAMILY, "axes.unicode_minus": False}):
        return tuple(draw(report, fmt) for draw in CHARTS)
