"""``fao maintenance add|list|end``: maintenance windows made by hand (``source: cli``).

Each change is written to MongoDB (``maintenance``, the record), then put in the
``fao-maintenance`` KV bucket (the correlator follows it live), then recorded in ``audit``.
``fao apply`` never removes a window made here. Times without an offset are Bangkok time.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import nats
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fao.runtime import audit
from fao.runtime.bus import maintenance_bucket
from fao.runtime.inventory import (
    MAINTENANCE,
    SYSTEMS,
    TEAMS,
    MaintenanceSource,
    maintenance_from_doc,
    maintenance_to_doc,
)
from fao.runtime.store import Document, connect
from fao.runtime.thai import format_thai_datetime, format_thai_duration
from fao.schemas import MaintenanceWindow, TimeSpan
from fao.schemas.base import parse_duration
from fao.schemas.maintenance import BANGKOK, WEEKDAYS, next_occurrence, occurrence_at
from fao.schemas.subjects import maintenance_key

WEEKDAYS_TH: Final = dict(zip(WEEKDAYS, ("จ.", "อ.", "พ.", "พฤ.", "ศ.", "ส.", "อา."), strict=True))
Status = Literal["active", "upcoming", "over"]
STATUS_TH: Final[dict[Status, str]] = {
    "active": "กำลังปิดปรับปรุง",
    "upcoming": "รอเริ่ม",
    "over": "สิ้นสุดแล้ว",
}
TIME_HELP: Final = "use YYYY-MM-DD HH:MM (Bangkok time) or ISO 8601 with an offset"
GENERATED_ID_ATTEMPTS: Final = 5


class MaintenanceError(Exception):
    """Bad input or an impossible change: the message is one line for the user."""


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
    return timedelta(seconds=seconds)


def resolve_span(
    start: str | None, end: str | None, duration: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """``--start/--end``, ``--start/--duration``, ``--duration`` or ``--end`` alone (from now)."""
    if end is not None and duration is not None:
        raise MaintenanceError("give --end or --duration, not both")
    if end is None and duration is None:
        raise MaintenanceError("give --end or --duration (with --start, or from now without it)")
    begin = parse_time(start) if start is not None else now
    finish = parse_time(end) if end is not None else begin + parse_positive_duration(duration or "")
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
        raise MaintenanceError("give at least one --system, --team or --tag")
    if reason is None or not reason.strip():
        raise MaintenanceError("give --reason TEXT: why the systems are down on purpose")
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


async def _check_references(db: AsyncDatabase[Document], window: MaintenanceWindow) -> None:
    """When the inventory is in MongoDB (``fao apply`` ran), every system and team must exist."""
    for collection, wanted, noun in ((SYSTEMS, window.systems, "system"), (TEAMS, window.teams, "team")):
        known = {doc["_id"] for doc in await db[collection].find({}, {"_id": 1}).to_list()}
        unknown = [ref for ref in wanted if ref not in known]
        if known and unknown:
            raise MaintenanceError(f"unknown {noun} {unknown[0]!r} (known: {', '.join(sorted(known))})")


async def _publish(nats_url: str, window: MaintenanceWindow) -> None:
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        kv = await maintenance_bucket(nc.jetstream())
        await kv.put(maintenance_key(window.id), window.model_dump_json().encode())
    finally:
        await nc.close()


async def _audit(
    db: AsyncDatabase[Document],
    action: str,
    window: MaintenanceWindow,
    actor: str,
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
            source="cli",
            action=action,
            changes=[audit.Change(MAINTENANCE, window.id, kind, before=before, after=after)],
            window_id=window.id,
            window=window.model_dump(mode="json"),
        ),
    )


async def add_window(
    mongo_url: str,
    mongo_db: str,
    nats_url: str,
    window: MaintenanceWindow,
    *,
    generated_id: bool,
    actor: str,
    now: datetime,
) -> MaintenanceWindow:
    """Record ``window`` (a generated id is re-drawn if taken); raises ``MaintenanceError``."""
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        await _check_references(db, window)
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
        await _publish(nats_url, window)
        await _audit(db, "maintenance.add", window, actor, now)
        return window
    finally:
        await client.close()


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


async def end_window(
    mongo_url: str, mongo_db: str, nats_url: str, window_id: str, *, actor: str, now: datetime
) -> Ended:
    """Set ``ended_at = now`` on a window in progress (or cancel a one-off one not yet started)."""
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        doc = await db[MAINTENANCE].find_one({"_id": window_id})
        if doc is None:
            raise MaintenanceError(f"no maintenance window {window_id!r} (see: fao maintenance list --all)")
        window, source = maintenance_from_doc(doc)
        current = occurrence_at(window, now)
        if current is not None:
            message = f"ended {window.id} at {format_thai_datetime(now)}"
        elif window.weekly is None and next_occurrence(window, now) is not None:
            message = f"cancelled {window.id}: it had not started"
        else:
            return Ended(window, changed=False, message=_over_message(window))
        ended = window.model_copy(update={"ended_at": now})
        await db[MAINTENANCE].replace_one({"_id": window.id}, maintenance_to_doc(ended, source))
        await _publish(nats_url, ended)
        await _audit(db, "maintenance.end", ended, actor, now, before=doc)
        return Ended(ended, changed=True, message=message)
    finally:
        await client.close()


def status_at(window: MaintenanceWindow, now: datetime) -> tuple[Status, TimeSpan | None]:
    """Whether ``window`` is in force now, still to come or over, with the relevant occurrence."""
    if (span := occurrence_at(window, now)) is not None:
        return "active", span
    if (span := next_occurrence(window, now)) is not None:
        return "upcoming", span
    return "over", None


def _selectors(window: MaintenanceWindow) -> str:
    parts = [
        f"{label}: {', '.join(values)}"
        for label, values in (("ระบบ", window.systems), ("ทีม", window.teams), ("แท็ก", window.tags))
        if values
    ]
    return "  ".join(parts)


def _when(window: MaintenanceWindow, status: Status, span: TimeSpan | None) -> str:
    if window.weekly is not None:
        days = " ".join(WEEKDAYS_TH[day] for day in sorted(set(window.weekly.days), key=WEEKDAYS.index))
        every = (
            f"ทุกสัปดาห์ {days} {window.weekly.at} น. "
            f"นาน {format_thai_duration(timedelta(seconds=window.weekly.duration))}"
        )
        if span is not None and span.end is not None:
            if status == "active":
                return f"{every} (ครั้งนี้ถึง {format_thai_datetime(span.end)})"
            return f"{every} (ครั้งถัดไป {format_thai_datetime(span.start)})"
        return every
    assert window.start is not None
    assert window.end is not None
    text = f"{format_thai_datetime(window.start)} – {format_thai_datetime(window.end)}"
    if window.ended_at is not None and window.ended_at < window.end:
        text += f" (จบก่อนกำหนด {format_thai_datetime(window.ended_at)})"
    return text


def format_line(window: MaintenanceWindow, source: MaintenanceSource, now: datetime) -> str:
    status, span = status_at(window, now)
    origin = source if window.created_by is None else f"{source}, {window.created_by}"
    return (
        f"{window.id}  {STATUS_TH[status]:<16} {_when(window, status, span)}  "
        f"{_selectors(window)}  — {window.reason}  ({origin})"
    )


async def list_windows(mongo_url: str, mongo_db: str, now: datetime, show_all: bool) -> list[str]:
    """Active and upcoming windows (all with ``show_all``): active first, then by start."""
    client = connect(mongo_url)
    try:
        docs = await client[mongo_db][MAINTENANCE].find({}).to_list()
    finally:
        await client.close()
    rank: dict[Status, int] = {"active": 0, "upcoming": 1, "over": 2}
    rows: list[tuple[int, datetime, str]] = []
    for doc in docs:
        try:
            window, source = maintenance_from_doc(doc)
        except ValueError:
            continue  # edited by hand into something that is not a window: nothing to show
        status, span = status_at(window, now)
        if status == "over" and not show_all:
            continue
        since = span.start if span is not None else (window.end or window.start or now)
        rows.append((rank[status], since, format_line(window, source, now)))
    return [line for _, _, line in sorted(rows)]
