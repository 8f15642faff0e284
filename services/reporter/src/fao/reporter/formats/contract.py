"""What every output format gets and gives: a `RenderContext` in, the file's bytes out."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final, Protocol

from fao.reporter.availability import IncidentLine, MonthlyReport
from fao.reporter.charts import Chart, draw_charts
from fao.reporter.localize import Formatter

# The PDF lists this many incidents, the longest first (a month of 10,000 incidents would be
# hundreds of pages nobody signs); the XLSX, HTML and JSON list them all.
PRINT_INCIDENT_LIMIT: Final = 100


@dataclass
class RenderContext:
    """One report in one language, shared by the formats rendered from it (charts drawn once)."""

    report: MonthlyReport
    fmt: Formatter
    print_incident_limit: int = PRINT_INCIDENT_LIMIT

    @cached_property
    def charts(self) -> tuple[Chart, ...]:
        return draw_charts(self.report, self.fmt)

    def longest_incidents(self, limit: int) -> tuple[IncidentLine, ...]:
        """At most `limit` incidents with the most downtime in the period, longest first."""
        ranked = sorted(
            self.report.incidents,
            key=lambda line: (-line.downtime_in_period, -line.duration, line.started_at, line.incident_id),
        )
        return tuple(ranked[:limit])


class Renderer(Protocol):
    """One output format. Adding a format is one module with one of these, and one registry line."""

    @property
    def name(self) -> str:
        """Registry key and CLI name: "pdf"."""
        ...

    @property
    def suffix(self) -> str:
        """File name suffix: ".pdf"."""
        ...

    @property
    def media_type(self) -> str: ...

    def render(self, context: RenderContext) -> bytes:
        """The whole file."""
        ...
