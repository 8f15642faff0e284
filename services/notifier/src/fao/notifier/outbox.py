"""The outbox: where messages go when no LINE access token is configured (``fao dev up``).

Each delivery becomes one document in ``outbox`` (``_id`` = the delivery's claim id, so a
redelivered event does not add a second one) holding the target, the message kind (problem,
fixed, acknowledged), the plain Thai text and the Flex JSON that LINE would have received (None for
a text-only message); the dashboard lists them. A log line ``outbox_message`` carries
the text as well, so a developer sees the message in the service's output.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.deliveries import Claim
from fao.notifier.render import RenderedMessage
from fao.runtime.store import Document, IndexSpec

log = structlog.get_logger()

OUTBOX: Final = "outbox"
INDEXES: Final = [IndexSpec(OUTBOX, [("created_at", 1)])]


class Outbox:
    """The ``outbox`` collection (written by the notifier only)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._col = db[OUTBOX]

    async def put(self, claim: Claim, message: RenderedMessage, now: datetime) -> bool:
        """Store the message of one delivery; False when this delivery was stored before."""
        doc: Document = {
            "_id": claim.id,
            "target": claim.target,
            "incident_id": claim.incident_id,
            "event_type": claim.event_type,
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
            target=claim.target,
            incident=claim.incident_id,
            event_type=claim.event_type,
            kind=message.kind,
            text=message.text,
        )
        return True
