"""HTML: the report as one self-contained page (inline CSS, charts as data URIs), Thai or English.

`render_page` also makes the page the PDF is printed from (`for_print`: A4, Sarabun from the
installed font files, the incident list cut to the longest ones).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from fao.reporter.availability import KNOWN_KINDS, SEVERITIES
from fao.reporter.fonts import font_face_css
from fao.reporter.formats.contract import RenderContext

_TEMPLATE: Final = "report.html.j2"
# "พ.ศ. 2569" in the heading: kept on one line (WeasyPrint breaks after a no-break space).
_ERA_YEAR: Final = re.compile(r"พ\.ศ\. [0-9๐-๙]+")

_environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _counts(found: Mapping[str, int], order: tuple[str, ...]) -> list[tuple[str, int]]:
    """(name, count) rows: the known names in `order` (zeros included), then any others."""
    return [(name, found.get(name, 0)) for name in order] + sorted(
        (name, n) for name, n in found.items() if name not in order
    )


def render_page(context: RenderContext, *, for_print: bool) -> str:
    report, fmt = context.report, context.fmt
    if for_print and len(report.incidents) > context.print_incident_limit:
        incidents = context.longest_incidents(context.print_incident_limit)
        heading = fmt.t(
            "incident_list_top",
            shown=fmt.number(len(incidents)),
            total=fmt.number(len(report.incidents)),
        )
    else:
        incidents, heading = report.incidents, fmt.t("incident_list")
    charts = [
        (chart.name, chart.title, "data:image/png;base64," + base64.b64encode(chart.png).decode("ascii"))
        for chart in context.charts
    ]
    title = fmt.title(report.report_period)
    title_markup = Markup(
        _ERA_YEAR.sub(lambda m: f'<span class="era">{m.group(0)}</span>', str(escape(title)))
    )
    return _environment.get_template(_TEMPLATE).render(
        r=report,
        f=fmt,
        title=title,
        title_markup=title_markup,
        systems={row.system_id: row for row in report.systems},
        severity_counts=_counts(report.totals.by_severity, SEVERITIES),
        kind_counts=_counts(report.totals.by_kind, KNOWN_KINDS),
        charts=charts,
        incidents=incidents,
        incidents_heading=heading,
        for_print=for_print,
        font_css=font_face_css() if for_print else "",
    )


class HtmlRenderer:
    name: Final = "html"
    suffix: Final = ".html"
    media_type: Final = "text/html"

    def render(self, context: RenderContext) -> bytes:
        return render_page(context, for_print=False).encode("utf-8")


RENDERER: Final = HtmlRenderer()
