"""``fao maintenance add|list|end``: maintenance windows made by hand (``source: cli``).

Adding and ending are ``fao.runtime.maintenance_windows`` (shared with the gateway's API and
dashboard): MongoDB, then the ``fao-maintenance`` KV bucket, then ``audit`` (source ``cli``);
with NATS down the MongoDB write is undone and the command fails in one line.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

import nats

from fao.cli.nats_errors import quiet
from fao.runtime import maintenance_windows as windows
from fao.runtime.bus import maintenance_bucket
from fao.runtime.inventory import MAINTENANCE, MaintenanceSource, maintenance_from_doc
from fao.runtime.maintenance_windows import Ended, MaintenanceError, build_window, resolve_span
from fao.runtime.store import connect
from fao.runtime.thai import format_thai_datetime, format_thai_duration
from fao.schemas import MaintenanceWindow, TimeSpan
from fao.schemas.maintenance import WEEKDAYS, next_occurrence, occurrence_at
from fao.schemas.subjects import maintenance_key

WEEKDAYS_TH: Final = dict(zip(WEEKDAYS, ("จ.", "อ.", "พ.", "พฤ.", "ศ.", "ส.", "อา."), strict=True))
Status = Literal["active", "upcoming", "over"]
STATUS_TH: Final[dict[Status, str]] = {
    "active": "กำลังปิดปรับปรุง",
    "upcoming": "รอเริ่ม",
    "over": "สิ้นสุดแล้ว",
}

__all__ = [
    "Ended",
    "MaintenanceError",
    "add_window",
    "build_window",
    "end_window",
    "format_line",
    "list_windows",
    "resolve_span",
]


async def _publish(nats_url: str, window: MaintenanceWindow) -> None:
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=2, error_cb=quiet)
    try:
        kv = await maintenance_bucket(nc.jetstream())
        await kv.put(maintenance_key(window.id), window.model_dump_json().encode())
    finally:
        await nc.close()


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

        async def publish(window: MaintenanceWindow) -> None:
            await _publish(nats_url, window)

        return await windows.add(
            client[mongo_db], publish, window, generated_id=generated_id, actor=actor, source="cli", now=now
        )
    finally:
        await client.close()


async def end_window(
    mongo_url: str, mongo_db: str, nats_url: str, window_id: str, *, actor: str, now: datetime
) -> Ended:
    """Set ``ended_at = now`` on a window in progress (or cancel a one-off one not yet started)."""
    client = connect(mongo_url)
    try:

        async def publish(window: MaintenanceWindow) -> None:
            await _publish(nats_url, window)

        return await windows.end(client[mongo_db], publish, window_id, actor=actor, source="cli", now=now)
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
