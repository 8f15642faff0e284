"""``fao audit``: the audit log, newest last, with each change's fields before and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fao.runtime import audit
from fao.runtime.store import Document, connect
from fao.runtime.thai import BANGKOK
from fao.schemas.base import parse_duration


class SinceError(ValueError):
    pass


def parse_since(value: str, now: datetime) -> datetime:
    """``7d``/``12h``/``30m`` ago, or a date/time (Bangkok when it has no offset)."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = None
    if isinstance(seconds, float):
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise SinceError(f"--since {value!r}: use e.g. 7d, 12h or 2026-11-01 (Bangkok time)") from None
    return (when if when.tzinfo else when.replace(tzinfo=BANGKOK)).astimezone(UTC)


def format_entry(doc: Document) -> list[str]:
    at = doc.get("at")
    when = (
        at.replace(tzinfo=at.tzinfo or UTC).astimezone(BANGKOK).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(at, datetime)
        else "?"
    )
    changes: list[Any] = doc.get("changes") or []
    extra = f" {doc['folder']}" if doc.get("folder") else ""
    if doc.get("git_revision"):
        extra += f" @ {doc['git_revision']}"
    if doc.get("reference"):
        extra += f" {doc['reference']}"
    if doc.get("incident_id"):
        extra += f" {doc['incident_id']}"
    if doc.get("outcome"):
        extra += f" ({doc['outcome']}{': ' + str(doc['reason']) if doc.get('reason') else ''})"
    head = f"{when} {doc.get('actor', '?')} [{doc.get('source', '?')}] {doc.get('action', '?')}{extra}"
    lines = [head + (f": {len(changes)} change(s)" if changes else "")]
    for change in changes:
        if isinstance(change, dict):
            lines.extend("  " + line for line in audit.describe_change(change))
    return lines


async def audit_lines(mongo_url: str, mongo_db: str, since: datetime | None, limit: int) -> list[str]:
    client = connect(mongo_url)
    try:
        docs = await audit.read(client[mongo_db], since, limit)
    finally:
        await client.close()
    return [line for doc in docs for line in format_entry(doc)]
