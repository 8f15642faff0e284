"""Telling the people who reported a problem to the LINE Official Account that it is resolved.

The gateway records each report in ``oa_reports`` (``{_id, incident_id, user_id: "U…",
reference, created_at}``; the gateway is that collection's only writer). When a ``resolved``
event arrives for an incident with reports, each reporting user gets **one** push — whatever the
number of their reports for it (their references are listed together) — saying that the report
is resolved and when. Nothing else: reporters are often citizens, so the message carries no
system name, host, URL or error detail (the catalogue's ``reports.resolved`` may use only
``{reference}`` and ``{resolved_at}``, checked at start-up).

Each push is an ordinary delivery (``DeliveryStore.record_message``) with the claim id
``"<event_id>:report:line:<user_id>"``: a redelivered ``resolved`` event records nothing new.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Final

import structlog
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import LINE, Delivery, DeliveryStore, claim_id
from fao.notifier.render import Catalogue, render_report_resolved
from fao.notifier.workers import DELIVERIES
from fao.runtime.store import Document
from fao.schemas import IncidentEvent

log = structlog.get_logger()

OA_REPORTS: Final = "oa_reports"  # written by the gateway; read here only
LINE_USER_ID: Final = re.compile(r"U[0-9a-f]{32}")


def report_claim_id(event: IncidentEvent, user_id: str) -> str:
    """``"<event_id>:report:line:<user_id>"``: the resolved event told to one reporter."""
    return claim_id(f"{event.event_id}:report", user_id)


class ReportFollowUp:
    """Records the "your report is resolved" pushes of a ``resolved`` event."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        deliveries: DeliveryStore,
        catalogue: Catalogue,
        recorded: Callable[[Delivery], None],
    ) -> None:
        self._reports = db[OA_REPORTS]
        self._deliveries = deliveries
        self._catalogue = catalogue
        self._recorded = recorded

    async def resolved(self, event: IncidentEvent, now: datetime) -> int:
        """Record one push per reporter of ``event``'s incident; how many were new."""
        incident = event.incident
        references: dict[str, list[str]] = {}
        async for doc in self._reports.find({"incident_id": incident.id}):
            user_id = doc.get("user_id")
            if not isinstance(user_id, str) or LINE_USER_ID.fullmatch(user_id) is None:
                log.warning("oa_report_without_user", report=doc.get("_id"), incident=incident.id)
                continue
            references.setdefault(user_id, []).append(str(doc.get("reference") or doc["_id"]))
        recorded = 0
        resolved_at = incident.resolved_at or event.at
        for user_id, refs in references.items():
            message = render_report_resolved(sorted(refs), resolved_at, self._catalogue)
            delivery, fresh = await self._deliveries.record_message(
                report_claim_id(event, user_id),
                event_id=str(event.event_id),
                incident_id=incident.id,
                event_type=event.type,
                target=user_id,
                message=message,
                at=event.at,
                now=now,
                report_references=sorted(refs),
            )
            if not delivery.final:
                self._recorded(delivery)
            DELIVERIES.labels(LINE, "recorded" if fresh else "duplicate").inc()
            recorded += fresh
        if references:
            log.info("oa_reporters_told", incident=incident.id, reporters=len(references), new=recorded)
        return recorded
