"""The outbox: where messages go when no LINE access token is configured (``fao dev up``), and where
the platform team finds the notifier's own notices (LINE deliveries failing, then recovered).

Each delivery becomes one document in ``outbox`` (``_id`` = the delivery's claim id, so doing it
twice does not add a second one) holding the target, the message kind (problem, fixed,
acknowledged), the plain Thai text and the Flex JSON that LINE would have received (None for a
text-only message); the dashboard lists them. A log line ``outbox_message`` carries the text as
well, so a developer sees the message in the service's output.

A notice (``put_notice``) has ``kind`` ``delivery_failing``, ``delivery_recovered`` or
``target_broken``, no single target but the platform teams and their groups (``teams``,
``groups``), and its figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.render import RenderedMessage
from fao.runtime.store import Document, IndexSpec

log = structlog.get_logger()

OUTBOX: Final = "outbox"
INDEXES: Final = [IndexSpec(OUTBOX, [("created_at", 1)])]


class Outbox:
    """The ``outbox`` collection (written by the notifier only)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._col = db[OUTBOX]

    async def put(
        self,
        delivery_id: str,
        *,
        target: str,
        incident_id: str,
        event_type: str,
        message: RenderedMessage,
        now: datetime,
    ) -> bool:
        """Store the message of one delivery; False when this delivery was stored before."""
        doc: Document = {
            "_id": delivery_id,
            "target": target,
            "incident_id": incident_id,
            "event_type": event_type,
            "kind": message.kind,
            "alt_text": message.alt_text,
            "text": message.text,
            "flex": message.bubble_json() if message.bubble is not None else None,
            "created_at": now,
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            return False
        log.info(
            "outbox_message",
            target=target,
            incident=incident_id,
            event_type=event_type,
            kind=message.kind,
            text=message.text,
        )
        return True

    async def put_notice(self, notice_id: str, kind: str, text: str, now: datetime, **fields: Any) -> bool:
        """Store one notice for the platform team; False when ``notice_id`` was stored before."""
        doc: Document = {
            "_id": notice_id,
            "target": None,
            "incident_id": None,
            "event_type": None,
            "kind": kind,
            "alt_text": text,
            "text": text,
            "flex": None,
            "created_at": now,
            **fields,
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True
