"""JSON: a stable, versioned document for machines (`schema_version`).

Keys in a fixed order; datetimes ISO-8601 UTC with "Z"; durations whole seconds (fractions
dropped); percentages numbers with 3 decimals; null means "no value" (no MTTR without repairs).
Version 2 added the period kind, maintenance, severity/kind counts, MTBF, SLA, changes, longest,
worst, teams, days and skipped facts; version 3 the owner review (``owner_review``: the latest
round sent by the period's end and the teams that have not confirmed it; null before the first);
version 4 added to it the systems without a reachable owner (``unowned_systems``) and the LINE
groups the bot has left (``left_groups``), as ``fao doctor`` finds them when the report is made;
``round`` and ``sent_at`` are null before the first round, and ``owner_review`` is null only when
there is no round and nothing to list.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from fao.reporter.availability import (
    Change,
    IncidentLine,
    MonthlyReport,
    OwnerReviewState,
    ReportTotals,
    SystemSummary,
)
from fao.reporter.formats.contract import RenderContext

JSON_SCHEMA_VERSION: Final = 4
_SECOND: Final = timedelta(seconds=1)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _seconds(duration: timedelta | None) -> int | None:
    return None if duration is None else duration // _SECOND


def _number(value: Decimal | None) -> float | None:
    # The Decimal already holds exactly 3 decimals; float() of it prints back as those digits.
    return None if value is None else float(value)


def _change(change: Change | None) -> dict[str, object] | None:
    if change is None:
        return None
    return {
        "availability_points": _number(change.availability_points),
        "downtime_seconds": _seconds(change.downtime),
        "incident_count": change.incident_count,
    }


def _totals(totals: ReportTotals) -> dict[str, object]:
    return {
        "system_count": totals.system_count,
        "availability_percent": _number(totals.availability_percent),
        "downtime_seconds": _seconds(totals.downtime),
        "planned_downtime_seconds": _seconds(totals.planned_downtime),
        "incident_count": totals.incident_count,
        "dependant_count": totals.dependant_count,
        "by_severity": dict(sorted(totals.by_severity.items())),
        "by_kind": dict(sorted(totals.by_kind.items())),
        "resolved_count": totals.resolved_count,
        "mttr_seconds": _seconds(totals.mttr),
        "acknowledged_count": totals.acknowledged_count,
        "mtta_seconds": _seconds(totals.mtta),
        "unacknowledged_count": totals.unacknowledged_count,
        "failure_count": totals.failure_count,
        "mtbf_seconds": _seconds(totals.mtbf),
        "sla_met_count": totals.sla_met_count,
        "sla_missed_count": totals.sla_missed_count,
        "change": _change(totals.change),
    }


def _system(row: SystemSummary) -> dict[str, object]:
    return {
        "system_id": row.system_id,
        "name": row.name,
        "name_th": row.name_th,
        "team": row.team,
        "in_inventory": row.in_inventory,
        "availability_percent": _number(row.availability_percent),
        "downtime_seconds": _seconds(row.downtime),
        "planned_downtime_seconds": _seconds(row.planned_downtime),
        "incident_count": row.incident_count,
        "dependency_count": row.dependency_count,
        "by_severity": dict(sorted(row.by_severity.items())),
        "by_kind": dict(sorted(row.by_kind.items())),
        "resolved_count": row.resolved_count,
        "mttr_seconds": _seconds(row.mttr),
        "acknowledged_count": row.acknowledged_count,
        "mtta_seconds": _seconds(row.mtta),
        "unacknowledged_count": row.unacknowledged_count,
        "failure_count": row.failure_count,
        "mtbf_seconds": _seconds(row.mtbf),
        "sla_target_percent": _number(row.sla_target),
        "sla_met": row.sla_met,
        "change": _change(row.change),
    }


def _incident(line: IncidentLine) -> dict[str, object]:
    return {
        "incident_id": line.incident_id,
        "system_id": line.system_id,
        "system_name": line.system_name,
        "title": line.title,
        "severity": line.severity,
        "kind": line.kind,
        "status": line.status,
        "dependant": line.dependant,
        "started_at": _iso(line.started_at),
        "acknowledged_at": _iso(line.acknowledged_at),
        "resolved_at": _iso(line.resolved_at),
        "ongoing": line.ongoing,
        "duration_seconds": _seconds(line.duration),
        "downtime_in_period_seconds": _seconds(line.downtime_in_period),
        "planned_in_period_seconds": _seconds(line.planned_in_period),
    }


def _owner_review(review: OwnerReviewState | None) -> dict[str, object] | None:
    if review is None:
        return None
    return {
        "round": review.round_id,
        "sent_at": _iso(review.sent_at),
        "team_count": review.team_count,
        "unconfirmed": [
            {"team": t.team, "team_name": t.team_name, "status": t.status} for t in review.unconfirmed
        ],
        "unowned_systems": [
            {
                "system": u.system,
                "name": u.name,
                "name_th": u.name_th,
                "team": u.team,
                "team_name": u.team_name,
            }
            for u in review.unowned_systems
        ],
        "left_groups": [
            {"group": g.group, "group_name": g.group_name, "team": g.team, "team_name": g.team_name}
            for g in review.left_groups
        ],
    }


def report_document(report: MonthlyReport) -> dict[str, object]:
    period = report.report_period
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "period": {
            "key": period.key,
            "kind": period.kind,
            "first_month": str(period.first),
            "last_month": str(period.last),
            "fiscal_year_be": period.fiscal_year,
            "start": _iso(report.month_start),
            "end": _iso(report.period_end),
            "period_end": _iso(report.month_end),
            "complete": report.complete,
            "seconds": _seconds(report.period),
        },
        "month": str(report.month),
        "be_year": report.month.be_year,
        "fiscal_year_be": period.fiscal_year,
        "generated_at": _iso(report.generated_at),
        "maintenance_included": report.options.include_maintenance,
        "totals": _totals(report.totals),
        "longest_incident_id": None if report.longest is None else report.longest.incident_id,
        "worst_system_ids": list(report.worst),
        "teams": [
            {"team": t.team, "team_name": t.team_name, "downtime_seconds": _seconds(t.downtime)}
            for t in report.teams
        ],
        "days": [
            {"date": d.day.isoformat(), "by_severity": dict(sorted(d.by_severity.items()))}
            for d in report.days
        ],
        "systems": [_system(row) for row in report.systems],
        "incidents": [_incident(line) for line in report.incidents],
        "skipped_facts": list(report.skipped_facts),
        "owner_review": _owner_review(report.owner_review),
    }


def render_json(report: MonthlyReport) -> str:
    """The report as a JSON document (UTF-8 text, Thai kept readable, keys in fixed order)."""
    return json.dumps(report_document(report), ensure_ascii=False, indent=2) + "\n"


class JsonRenderer:
    name: Final = "json"
    suffix: Final = ".json"
    media_type: Final = "application/json"

    def render(self, context: RenderContext) -> bytes:
        return render_json(context.report).encode("utf-8")


RENDERER: Final = JsonRenderer()
