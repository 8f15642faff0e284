"""Exclusive claims for channels that are not idempotent (e-mail, webhook): one sender per attempt.

LINE drops a repeated push by its retry key; an SMTP server or a webhook receiver does not, so
two notifier processes (a standby that took over while the old holder was paused, a replica)
must never both send the same delivery. FerretDB v1 has no atomic ``find_one_and_update``
(docs/notes/ferretdb.md), so the claim is an insert with a unique ``_id``, atomic on FerretDB and
MongoDB alike: before attempt *n* of delivery *d* the sender inserts ``delivery_claims
{_id: "<d>#<n>", delivery, n, at, holder}``; the one whose insert fails skips (the winner sends).

Attempt *n + 1* may be claimed only once attempt *n* is over: its holder marked it ``failed``
(a transient failure; the delivery is then retried under the next number), or it is *stale* —
older than ``stale_after`` (the channel's timeout, twice, plus a margin) with no outcome, i.e.
its holder died or hung mid-send. An attempt that went through is marked ``sent`` before the
delivery is recorded final, so a sender that read the delivery before that (and may even have
written it back to ``claimed``) finds ``sent`` instead of claiming another attempt.

The trade-off, per delivery:

- racing processes: **at most once** — each attempt number has one sender, and a number is only
  reached after the previous attempt ended without a send;
- a process that dies between the server accepting the message and recording it: the stale claim
  lets the next attempt go, so **at least once** — that one message may arrive twice (an e-mail
  with the same ``Message-ID``, a webhook with the same ``X-Fao-Delivery``, so receivers can drop
  it). The alternative (never re-send after a stale claim) would lose the alert whenever the
  sender died *before* sending, which is the likelier case; for an alert a rare duplicate is the
  lesser harm.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Final, Literal

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.runtime.store import Document

CLAIMS: Final = "delivery_claims"
# Attempts looked at in one ``acquire`` before giving up for now (a delivery's attempts are
# counted in ``deliveries``, so the search starts near the last one).
MAX_PROBES: Final = 50


Acquired = int | Literal["busy", "sent"]
"""The attempt number now held, ``busy`` (another sender holds the current attempt) or ``sent``
(an attempt went through: nothing more to send)."""


def claim_key(delivery_id: str, attempt: int) -> str:
    return f"{delivery_id}#{attempt}"


def default_holder() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ClaimStore:
    """The ``delivery_claims`` collection (inserts and ``_id``-filtered reads and updates only)."""

    def __init__(self, db: AsyncDatabase[Document], holder: str | None = None) -> None:
        self._col = db[CLAIMS]
        self.holder = holder or default_holder()

    async def acquire(self, delivery_id: str, after: int, now: datetime, stale_after: float) -> Acquired:
        """Claim the next attempt of ``delivery_id`` after attempt ``after`` (the attempts known
        to be over; ``Acquired`` says what came of it)."""
        attempt = after + 1
        for _ in range(MAX_PROBES):
            doc = await self._col.find_one({"_id": claim_key(delivery_id, attempt)})
            if doc is None:
                try:
                    await self._col.insert_one(
                        {
                            "_id": claim_key(delivery_id, attempt),
                            "delivery": delivery_id,
                            "n": attempt,
                            "at": now,
                            "holder": self.holder,
                        }
                    )
                except DuplicateKeyError:
                    return "busy"
                return attempt
            if doc.get("outcome") == "sent":
                return "sent"
            if doc.get("outcome") is None and not self._stale(doc, now, stale_after):
                return "busy"
            attempt += 1
        return "busy"

    @staticmethod
    def _stale(doc: Document, now: datetime, stale_after: float) -> bool:
        at = doc.get("at")
        if not isinstance(at, datetime):
            return True
        if at.tzinfo is None and now.tzinfo is not None:
            at = at.replace(tzinfo=now.tzinfo)
        return now - at > timedelta(seconds=stale_after)

    async def failed(self, delivery_id: str, attempt: int, error: str, now: datetime) -> None:
        """Attempt ``attempt`` ended without a send: the next one may be claimed."""
        await self._col.update_one(
            {"_id": claim_key(delivery_id, attempt)},
            {"$set": {"outcome": "failed", "error": error[:500], "ended_at": now}},
        )

    async def sent(self, delivery_id: str, attempt: int, now: datetime) -> None:
        """Attempt ``attempt`` went through: no other attempt may be claimed."""
        await self._col.update_one(
            {"_id": claim_key(delivery_id, attempt)}, {"$set": {"outcome": "sent", "ended_at": now}}
        )
