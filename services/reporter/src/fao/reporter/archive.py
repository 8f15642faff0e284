"""Stored reports (`reports` collection) and the claims that make each one happen once.

A scheduled report is claimed by *inserting* its document, `_id` ``report:<period>``: a unique
insert is atomic on MongoDB and FerretDB alike (FerretDB v1 has no atomic find-and-modify,
docs/architecture.md §1), so with any number of reporters exactly one produces it. The document
then carries the metadata of what was produced. A claim whose reporter died (still ``producing``
after `report_claim_timeout`) is taken over by inserting ``report:<period>#<attempt>`` into
``report_claims``, again unique, so one reporter takes it over. Only the claim holder writes the
document afterwards.

Document (docs/contracts.md, "reports"): ``period``, ``kind`` (month | fiscal_year), ``state``
(producing | done), ``attempt``, ``claimed_by``, ``claimed_at``, then ``generated_at``,
``language``, ``files`` (format, path, size, sha256), ``figures`` (summary numbers) and ``line``
(the management summary push: ``pushed_at``, ``retry_key``, ``request_id`` or ``error``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.reporter.availability import MonthlyReport
from fao.reporter.periods import ReportPeriod
from fao.reporter.schedule import is_stale, report_id, takeover_id
from fao.runtime.store import Document

REPORTS: Final = "reports"
CLAIMS: Final = "report_claims"


@dataclass(frozen=True)
class ReportFile:
    format: str
    path: Path
    size: int
    sha256: str


def figures_summary(report: MonthlyReport) -> Document:
    """The few numbers stored with a report (and shown without opening it)."""
    totals = report.totals
    return {
        "availability_percent": None
        if totals.availability_percent is None
        else float(totals.availability_percent),
        "system_count": totals.system_count,
        "incident_count": totals.incident_count,
        "downtime_seconds": int(totals.downtime.total_seconds()),
        "planned_downtime_seconds": int(totals.planned_downtime.total_seconds()),
        "sla_met_count": totals.sla_met_count,
        "sla_missed_count": totals.sla_missed_count,
        "worst_system_ids": list(report.worst),
        "skipped_facts": len(report.skipped_facts),
    }


class ReportArchive:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def get(self, period: ReportPeriod) -> Document | None:
        return await self._db[REPORTS].find_one({"_id": report_id(period.key)})

    async def claim(
        self, period: ReportPeriod, holder: str, now: datetime, stale_after: timedelta
    ) -> int | None:
        """The attempt number this reporter now holds for `period`, or None (done, or someone
        else's live claim)."""
        doc_id = report_id(period.key)
        current = await self._db[REPORTS].find_one({"_id": doc_id})
        if current is None:
            try:
                await self._db[REPORTS].insert_one(
                    {
                        "_id": doc_id,
                        "period": period.key,
                        "kind": period.kind,
                        "state": "producing",
                        "attempt": 1,
                        "claimed_by": holder,
                        "claimed_at": now,
                    }
                )
            except DuplicateKeyError:
                return None
            return 1
        if current.get("state") == "done" or not is_stale(current["claimed_at"], now, stale_after):
            return None
        attempt = int(current.get("attempt", 1)) + 1
        try:
            await self._db[CLAIMS].insert_one(
                {"_id": takeover_id(period.key, attempt), "claimed_by": holder, "claimed_at": now}
            )
        except DuplicateKeyError:
            return None
        await self._db[REPORTS].update_one(
            {"_id": doc_id}, {"$set": {"attempt": attempt, "claimed_by": holder, "claimed_at": now}}
        )
        return attempt

    async def complete(
        self,
        period: ReportPeriod,
        report: MonthlyReport,
        files: Sequence[ReportFile],
        language: str,
        line: Document | None,
    ) -> None:
        await self._db[REPORTS].update_one(
            {"_id": report_id(period.key)},
            {
                "$set": {
                    "state": "done",
                    "generated_at": report.generated_at,
                    "language": language,
                    "files": [
                        {"format": f.format, "path": str(f.path), "size": f.size, "sha256": f.sha256}
                        for f in files
                    ],
                    "figures": figures_summary(report),
                    "line": line,
                }
            },
        )
