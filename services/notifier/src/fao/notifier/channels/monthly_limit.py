"""LINE's monthly limit: "not this month", kept in MongoDB, told once as a platform incident.

When LINE answers 429 "You have reached your monthly limit." (the rate-limit 429 is something
else and stays transient), retrying is pointless until the month's quota renews, and every try
is one more failing request. So:

- ``exhausted_until`` = the start of the next month, Asia/Bangkok (LINE does not document its
  month boundary: Bangkok midnight is the Thai customer's month; a few hours off at worst, and
  the first delivery after it simply tries LINE again), is written with ``$set`` on that one
  field of ``line_state {_id: "quota"}`` (the quota module writes ``limit``, ``usage``,
  ``checked_at`` of the same document and shows this field in ``fao line quota``);
- until then no LINE push is attempted: ``MonthlyLimit.check`` raises ``MonthlyLimitError``
  (``fresh=False``) and the workers give the message to the team's fallback channels at once;
- one incident for the platform team: an ``open_manual`` ``Command`` (``system_id`` None →
  ``fao-platform``), ``command_id`` = uuid5 of ``line-quota-<YYYY-MM>`` (the month it ends,
  Bangkok), published on ``fao.commands.v1.open_manual`` with ``Nats-Msg-Id`` = the command id:
  the stream drops a repeat within its 24 h window and the correlator applies a command id once,
  so replicas, restarts and repeated 429s still make one incident. After a successful publish
  ``notifier_state {_id: "line_quota_incident:<YYYY-MM>"}`` is inserted, so a restarted notifier
  that finds the limit reached and no such document (it stopped in between) publishes it then;
  a publish that fails (NATS away) is tried again at the next LINE delivery.
  That incident's own LINE message cannot go out either: it falls back to e-mail like the rest.

The document is re-read at most every ``REFRESH`` seconds, so removing ``exhausted_until`` (after
buying more messages) takes effect without a restart. On FerretDB (tests, ``fao dev up``) a
``$set`` is an unlocked read-modify-write: one racing with the quota module's ``$set`` on the same
document can drop the other's fields; MongoDB applies both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final
from uuid import UUID, uuid5

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.notifier.errors import MonthlyLimitError
from fao.runtime.store import Document
from fao.runtime.thai import BANGKOK
from fao.schemas import Command

log = structlog.get_logger()

LINE_STATE: Final = "line_state"
QUOTA_DOC: Final = "quota"
EXHAUSTED_FIELD: Final = "exhausted_until"
NOTIFIER_STATE: Final = "notifier_state"
# Fixed forever: the platform incident of a month has one command id in every process.
QUOTA_COMMAND_NAMESPACE: Final = UUID("3e0c2a8f-6d1b-4c57-9f3a-b2e4d6a8c0f1")
ACTOR: Final = "fao:notifier"
REFRESH: Final = 30.0

PublishCommand = Callable[[Command], Awaitable[None]]
Clock = Callable[[], datetime]


def limit_until(now: datetime) -> datetime:
    """The start of the month after ``now``'s month, Bangkok time (as UTC)."""
    local = now.astimezone(BANGKOK)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=BANGKOK).astimezone(UTC)


def month_key(until: datetime) -> str:
    """``YYYY-MM`` of the month whose quota ran out (the month before ``until``, Bangkok)."""
    local = until.astimezone(BANGKOK)
    year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    return f"{year:04d}-{month:02d}"


def quota_command_id(month: str) -> UUID:
    return uuid5(QUOTA_COMMAND_NAMESPACE, f"line-quota-{month}")


class MonthlyLimit:
    """The LINE monthly limit as the notifier knows it (see the module docstring)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        report: Callable[[datetime], str],
        publish: PublishCommand | None,
        clock: Clock,
    ) -> None:
        self._line_state = db[LINE_STATE]
        self._state = db[NOTIFIER_STATE]
        self._report = report
        self._publish = publish
        self._clock = clock
        self._until: datetime | None = None
        self._read_at: float | None = None
        self._raised: set[str] = set()
        self._lock = asyncio.Lock()

    async def _refresh(self, force: bool = False) -> None:
        loop_now = asyncio.get_running_loop().time()
        if not force and self._read_at is not None and loop_now - self._read_at < REFRESH:
            return
        doc = await self._line_state.find_one({"_id": QUOTA_DOC})
        until = doc.get(EXHAUSTED_FIELD) if doc else None
        self._until = (
            until.replace(tzinfo=UTC) if isinstance(until, datetime) and until.tzinfo is None else until
        )
        self._read_at = loop_now

    async def load(self) -> None:
        """Read the state at start-up; raise the month's incident if a previous process could not."""
        await self._refresh(force=True)
        now = self._clock()
        if self._until is not None and now < self._until:
            log.warning("line_monthly_limit_reached", until=self._until.isoformat(), since_start=True)
            await self._ensure_incident(self._until)

    def known_until(self, now: datetime) -> datetime | None:
        """When LINE may be tried again, if the limit is known to be reached (no database read)."""
        return self._until if self._until is not None and now < self._until else None

    async def check(self) -> None:
        """Raise ``MonthlyLimitError`` (not fresh) while the limit is known to be reached."""
        await self._refresh()
        until = self._until
        if until is not None and self._clock() < until:
            await self._ensure_incident(until)
            raise MonthlyLimitError(
                f"LINE's monthly limit was reached: no LINE push until {until.isoformat()}",
                until=until,
                fresh=False,
            )

    async def reached(self, error: MonthlyLimitError) -> None:
        """LINE answered "monthly limit": store it and raise the month's platform incident."""
        async with self._lock:
            until = error.until
            if self._until != until:
                await self._line_state.update_one(
                    {"_id": QUOTA_DOC}, {"$set": {EXHAUSTED_FIELD: until}}, upsert=True
                )
                self._until = until
                self._read_at = asyncio.get_running_loop().time()
                log.error("line_monthly_limit_reached", until=until.isoformat(), error=error.message)
            await self._ensure_incident(until)

    async def _ensure_incident(self, until: datetime) -> None:
        """Raise the month's incident unless done; a failure (NATS away) is logged and tried again
        at the next LINE delivery, never in the way of the fallbacks."""
        if month_key(until) in self._raised:
            return
        try:
            await self._raise_incident(until)
        except Exception as exc:  # NATS or MongoDB failed: the next delivery tries again
            log.error("line_monthly_limit_incident_failed", error=f"{type(exc).__name__}: {exc}")

    async def _raise_incident(self, until: datetime) -> None:
        month = month_key(until)
        if month in self._raised:
            return
        marker = f"line_quota_incident:{month}"
        if await self._state.find_one({"_id": marker}) is not None:
            self._raised.add(month)
            return
        command = Command(
            command_id=quota_command_id(month),
            action="open_manual",
            actor=ACTOR,
            source="api",
            at=self._clock(),
            system_id=None,
            text=self._report(until),
        )
        if self._publish is None:
            log.error("line_monthly_limit_incident_not_raised", reason="no command publisher", month=month)
            self._raised.add(month)
            return
        await self._publish(command)
        # Another replica may have raised it too: the same command id, one incident.
        with contextlib.suppress(DuplicateKeyError):
            await self._state.insert_one(
                {"_id": marker, "command_id": str(command.command_id), "at": command.at}
            )
        self._raised.add(month)
        log.error("line_monthly_limit_incident", month=month, command_id=str(command.command_id))
