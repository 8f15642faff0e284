"""Maintenance windows made by a person (``fao maintenance``, the gateway's API and dashboard).

Each change is written to MongoDB (``maintenance``, the record), then put in the
``fao-maintenance`` KV bucket by ``publish`` (the correlator follows it live), then recorded in
``audit``. When the KV write fails (NATS down), the MongoDB write is undone and
``UnavailableError`` says so in one line: a change is in both stores or in neither.
``fao apply`` never removes a window made here. Times without an offset are Bangkok time.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, NoReturn

from nats.errors import Error as NatsError
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from fao.runtime import audit
from fao.runtime.inventory import (
    MAINTENANCE,
    MONITORS,
    SYSTEMS,
    TEAMS,
    maintenance_from_doc,
    maintenance_to_doc,
)
from fao.runtime.store import Document
from fao.runtime.thai import format_thai_datetime
from fao.schemas import MaintenanceWindow
from fao.schemas.base import parse_duration
from fao.schemas.maintenance import BANGKOK, next_occurrence, occurrence_at

TIME_HELP: Final = "use YYYY-MM-DD HH:MM (Bangkok time) or ISO 8601 with an offset"
GENERATED_ID_ATTEMPTS: Final = 5
# A window starts and ends within this of now: a date near the calendar's ends (years 1 and 9999)
# has no UTC or Bangkok time, so it could be neither stored nor shown.
FARTHEST: Final = timedelta(days=36525)

Publish = Callable[[MaintenanceWindow], Awaitable[None]]
# What a ``publish`` raises when NATS or its KV bucket does not take the window.
PUBLISH_FAILURES: Final = (OSError, TimeoutError, NatsError)


class MaintenanceError(Exception):
    """Bad input or an impossible change: the message is one line for the user."""


class UnavailableError(MaintenanceError):
    """NATS did not take the change, so it was not made (the API answers 503)."""


def parse_time(text: str) -> datetime:
    """``2026-12-01 22:00`` (Bangkok), ``2026-12-01T15:00Z`` or any ISO 8601 time; aware."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MaintenanceError(f"bad time {text!r}: {TIME_HELP}") from None
    return value.replace(tzinfo=BANGKOK) if value.tzinfo is None else value


def parse_positive_duration(text: str) -> timedelta:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise MaintenanceError(str(exc)) from None
    if not isinstance(seconds, float) or seconds <= 0:
        raise MaintenanceError(f"bad duration {text!r}: it must be longer than zero, e.g. 30m or 2h")
    if seconds > FARTHEST.total_seconds():
        raise MaintenanceError(f"bad duration {text!r}: a window lasts at most a hundred years")
    return timedelta(seconds=seconds)


def within_reach(value: datetime, now: datetime, name: str) -> datetime:
    """``value`` when it is at most a hundred years (``FARTHEST``) before or after ``now``."""
    if abs(value - now) > FARTHEST:
        raise MaintenanceError(f"the {name} must be within a hundred years of now")
    return value


def resolve_span(
    start: str | None, end: str | None, duration: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """``--start/--end``, ``--start/--duration``, ``--duration`` or ``--end`` alone (from now)."""
    if end is not None and duration is not None:
        raise MaintenanceError("give an end or a duration, not both")
    if end is None and duration is None:
        raise MaintenanceError("give an end or a duration (with a start, or from now without one)")
    begin = within_reach(parse_time(start), now, "start") if start is not None else now
    finish = within_reach(
        parse_time(end) if end is not None else begin + parse_positive_duration(duration or ""), now, "end"
    )
    if finish <= begin:
        raise MaintenanceError(
            f"end ({format_thai_datetime(finish)}) must be after start ({format_thai_datetime(begin)})"
        )
    if finish <= now:
        raise MaintenanceError(f"the window would already be over: it ends {format_thai_datetime(finish)}")
    return begin, finish


def new_window_id(start: datetime) -> str:
    """``mw-<yyyymmdd of the start in Bangkok>-<4 hex>``."""
    return f"mw-{start.astimezone(BANGKOK):%Y%m%d}-{secrets.token_hex(2)}"


def one_line(exc: ValidationError) -> str:
    """The first problem of a validation error, as ``field: message``."""
    first = exc.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {message}" if where else message


def build_window(
    *,
    window_id: str | None,
    reason: str | None,
    systems: Sequence[str],
    teams: Sequence[str],
    tags: Sequence[str],
    start: datetime,
    end: datetime,
    created_by: str,
) -> MaintenanceWindow:
    if not (systems or teams or tags):
        raise MaintenanceError("name at least one system, team or tag")
    if reason is None or not reason.strip():
        raise MaintenanceError("give a reason: why the systems are down on purpose")
    try:
        return MaintenanceWindow(
            id=window_id or new_window_id(start),
            reason=reason.strip(),
            systems=list(dict.fromkeys(systems)),
            teams=list(dict.fromkeys(teams)),
            tags=list(dict.fromkeys(tags)),
            start=start,
            end=end,
            created_by=created_by,
        )
    except ValidationError as exc:
        raise MaintenanceError(one_line(exc)) from None


async def check_references(db: AsyncDatabase[Document], window: MaintenanceWindow) -> None:
    """When the inventory is in MongoDB (``fao apply`` ran), every system and team must exist and
    every tag must be on a monitor (a window whose tag matches nothing would mute nothing)."""
    for collection, wanted, noun in ((SYSTEMS, window.systems, "system"), (TEAMS, window.teams, "team")):
        known = {doc["_id"] for doc in await db[collection].find({}, {"_id": 1}).to_list()}
        unknown = [ref for ref in wanted if ref not in known]
        if known and unknown:
            raise MaintenanceError(f"unknown {noun} {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if window.tags and await db[SYSTEMS].find_one({}, {"_id": 1}) is not None:
        monitors = await db[MONITORS].find({}, {"tags": 1}).to_list()
        in_use = {tag for doc in monitors for tag in doc.get("tags") or ()}
        if untagged := [tag for tag in window.tags if tag not in in_use]:
            known_tags = ", ".join(sorted(in_use)) or "none"
            raise MaintenanceError(f"no monitor has the tag {untagged[0]!r} (tags in use: {known_tags})")


async def _audit(
    db: AsyncDatabase[Document],
    action: str,
    window: MaintenanceWindow,
    actor: str,
    source: audit.AuditSource,
    now: datetime,
    before: Document | None = None,
) -> None:
    after = await db[MAINTENANCE].find_one({"_id": window.id})
    kind: audit.ChangeKind = "change" if before is not None else "add"
    await audit.record(
        db,
        audit.entry(
            at=now,
            actor=actor,
            source=source,
            action=action,
            changes=[audit.Change(MAINTENANCE, window.id, kind, before=before, after=after)],
            window_id=window.id,
            window=window.model_dump(mode="json"),
        ),
    )


async def add(
    db: AsyncDatabase[Document],
    publish: Publish,
    window: MaintenanceWindow,
    *,
    generated_id: bool,
    actor: str,
    source: audit.AuditSource,
    now: datetime,
) -> MaintenanceWindow:
    """Record ``window`` (a generated id is re-drawn if taken); raises ``MaintenanceError``."""
    await check_references(db, window)
    for attempt in range(GENERATED_ID_ATTEMPTS):
        try:
            await db[MAINTENANCE].insert_one(maintenance_to_doc(window, "cli"))
            break
        except DuplicateKeyError:
            if not generated_id:
                raise MaintenanceError(f"a maintenance window {window.id!r} already exists") from None
            if attempt == GENERATED_ID_ATTEMPTS - 1:
                raise MaintenanceError("could not find a free window id; give one with --id") from None
            assert window.start is not None
            window = window.model_copy(update={"id": new_window_id(window.start)})
    failure = await _published(publish, window)
    if failure is not None:
        await _undo(db, window.id, failure, "added", db[MAINTENANCE].delete_one({"_id": window.id}))
    await _audit(db, "maintenance.add", window, actor, source, now)
    return window


async def _published(publish: Publish, window: MaintenanceWindow) -> str | None:
    """None once ``window`` is in the KV bucket, else why it is not (one line)."""
    try:
        await publish(window)
    except PUBLISH_FAILURES as exc:
        return f"cannot reach NATS ({type(exc).__name__}: {exc or 'no answer'})"
    return None


async def _undo(
    db: AsyncDatabase[Document], window_id: str, failure: str, verb: str, undo: Awaitable[object]
) -> NoReturn:
    """Take back the MongoDB write of a change NATS did not take; raises ``UnavailableError``."""
    try:
        await undo
    except PyMongoError:
        raise UnavailableError(
            f"{failure}; {window_id} is {verb} in MongoDB but not in the KV bucket"
            " (fao apply --check names it; run the command again when NATS is back)"
        ) from None
    raise UnavailableError(f"{failure}; the window was not {verb}, nothing was changed")


@dataclass(frozen=True)
class Ended:
    window: MaintenanceWindow
    changed: bool
    message: str


def _over_message(window: MaintenanceWindow) -> str:
    if window.weekly is not None:
        return f"{window.id}: no occurrence is in progress; nothing to end"
    if window.ended_at is not None:
        return f"{window.id} is already over: it was ended at {format_thai_datetime(window.ended_at)}"
    assert window.end is not None
    return f"{window.id} is already over: it ended at {format_thai_datetime(window.end)}"


class UnknownWindowError(MaintenanceError):
    """No window has that id."""


async def end(
    db: AsyncDatabase[Document],
    publish: Publish,
    window_id: str,
    *,
    actor: str,
    source: audit.AuditSource,
    now: datetime,
) -> Ended:
    """Set ``ended_at = now`` on a window in progress (or cancel a one-off one not yet started)."""
    doc = await db[MAINTENANCE].find_one({"_id": window_id})
    if doc is None:
        raise UnknownWindowError(f"no maintenance window {window_id!r} (see: fao maintenance list --all)")
    window, origin = maintenance_from_doc(doc)
    current = occurrence_at(window, now)
    if current is not None:
        message = f"ended {window.id} at {format_thai_datetime(now)}"
    elif window.weekly is None and next_occurrence(window, now) is not None:
        message = f"cancelled {window.id}: it had not started"
    else:
        return Ended(window, changed=False, message=_over_message(window))
    ended = window.model_copy(update={"ended_at": now})
    await db[MAINTENANCE].replace_one({"_id": window.id}, maintenance_to_doc(ended, origin))
    failure = await _published(publish, ended)
    if failure is not None:
        await _undo(db, window.id, failure, "ended", db[MAINTENANCE].replace_one({"_id": window.id}, doc))
    await _audit(db, "maintenance.end", ended, actor, source, now, before=doc)
    return Ended(ended, changed=True, message=message)
