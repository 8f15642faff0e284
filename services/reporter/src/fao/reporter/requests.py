"""Reports asked for from the web face: ``report_requests`` (written by the gateway's API).

A request is ``{_id, period ("2026-10"), status: queued | done | failed, requested_by, at}``;
the reporter (with ``FAO_REPORTS_DIR``) produces the period through the same claim as the
schedule (``ReportArchive.claim``: once, whichever reporter), then sets ``status: done`` with the
``report_id`` to download (or ``failed`` with the ``error``). Setting the status is idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.store import Document

REPORT_REQUESTS: Final = "report_requests"


async def finish_request(
    db: AsyncDatabase[Document], request_id: Any, status: str, now: datetime, **fields: Any
) -> None:
    await db[REPORT_REQUESTS].update_one(
        {"_id": request_id}, {"$set": {"status": status, "finished_at": now, **fields}}
    )
