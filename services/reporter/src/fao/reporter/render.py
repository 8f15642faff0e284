"""Render a `MonthlyReport`: Thai HTML for people (`render_html`), JSON for machines (`render_json`).

The HTML comes from `templates/monthly.html.j2` (autoescaped; the Thai wording lives there), with
dates in Bangkok time and BE years. It is self-contained (inline CSS, no external assets) so the
same page can be mailed, archived, or handed to WeasyPrint for the PDF.

The JSON is a stable, versioned document (`schema_version`): keys in a fixed order, datetimes as
ISO-8601 UTC with a "Z" suffix, durations as whole seconds (fractions dropped), availability as a
number rounded to 3 decimals. Null means "no value" (e.g. no MTTR when nothing was resolved).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from fao.reporter.availability import IncidentLine, MonthlyReport, ReportTotals, SystemSummary
from fao.runtime.thai import (
    format_thai_date,
    format_thai_datetime,
    format_thai_duration,
    month_name,
    to_bangkok,
)

JSON_SCHEMA_VERSION: Final = 1
_TEMPLATE: Final = "monthly.html.j2"
_NO_VALUE: Final = "—"
_SECOND: Final = timedelta(seconds=1)
_MICROSECOND: Final = timedelta(microseconds=1)

_environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _duration_or_dash(duration: timedelta | None) -> str:
    return _NO_VALUE if duration is None else format_thai_duration(duration)


def _datetime_or_dash(moment: datetime | None) -> str:
    return _NO_VALUE if moment is None else format_thai_datetime(moment)


def _percent(value: Decimal | None) -> str:
    return _NO_VALUE if value is None else f"{value:.3f}"


_environment.filters.update(
    thai_duration=_duration_or_dash,
    thai_datetime=_datetime_or_dash,
    thai_date=format_thai_date,
    percent=_percent,
)


def render_html(report: MonthlyReport) -> str:
    """The monthly report as a complete Thai HTML page (`<html lang="th">`, inline CSS)."""
    last_moment = to_bangkok(report.period_end - _MICROSECOND)
    return _environment.get_template(_TEMPLATE).render(
        report=report,
        month_name=month_name(report.month.month),
        be_year=report.month.be_year,
        fiscal_year=report.month.fiscal_year,
        first_day=to_bangkok(report.month_start).date(),
        last_day=last_moment.date(),
    )


def render_json(report: MonthlyReport) -> str:
    """The monthly report as a JSON document (UTF-8 text, Thai kept readable, keys in fixed order)."""
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "month": str(report.month),
        "be_year": report.month.be_year,
        "fiscal_year_be": report.month.fiscal_year,
        "period": {
            "start": _iso(report.month_start),
            "end": _iso(report.period_end),
            "month_end": _iso(report.month_end),
            "complete": report.complete,
            "seconds": _seconds(report.period),
        },
        "generated_at": _iso(report.generated_at),
        "totals": _totals_json(report.totals),
        "systems": [_system_json(row) for row in report.systems],
        "incidents": [_incident_json(line) for line in report.incidents],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


def _seconds(duration: timedelta) -> int:
    return duration // _SECOND


def _seconds_or_none(duration: timedelta | None) -> int | None:
    return None if duration is None else _seconds(duration)


def _number(value: Decimal | None) -> float | None:
    # The Decimal already holds exactly 3 decimals; float() of it prints back as those digits.
    return None if value is None else float(value)


def _totals_json(totals: ReportTotals) -> dict[str, object]:
    return {
        "system_count": totals.system_count,
        "availability_percent": _number(totals.availability_percent),
        "downtime_seconds": _seconds(totals.downtime),
        "incident_count": totals.incident_count,
        "resolved_count": totals.resolved_count,
        "mttr_seconds": _seconds_or_none(totals.mttr),
        "acknowledged_count": totals.acknowledged_count,
        "mtta_seconds": _seconds_or_none(totals.mtta),
    }


def _system_json(row: SystemSummary) -> dict[str, object]:
    return {
        "system_id": row.system_id,
        "name": row.name,
        "name_th": row.name_th,
        "in_inventory": row.in_inventory,
        "availability_percent": _number(row.availability_percent),
        "downtime_seconds": _seconds(row.downtime),
        "incident_count": row.incident_count,
        "resolved_count": row.resolved_count,
        "mttr_seconds": _seconds_or_none(row.mttr),
        "acknowledged_count": row.acknowledged_count,
        "mtta_seconds": _seconds_or_none(row.mtta),
    }


def _incident_json(line: IncidentLine) -> dict[str, object]:
    return {
        "incident_id": line.incident_id,
        "system_id": line.system_id,
        "system_name": line.system_name,
        "title": line.title,
        "severity": line.severity,
        "status": line.status,
        "started_at": _iso(line.started_at),
        "acknowledged_at": _iso_or_none(line.acknowledged_at),
        "resolved_at": _iso_or_none(line.resolved_at),
        "ongoing": line.ongoing,
        "duration_seconds": _seconds(line.duration),
        "downtime_in_period_seconds": _seconds(line.downtime_in_period),
    }
