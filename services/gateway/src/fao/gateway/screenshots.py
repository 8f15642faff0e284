"""Screenshots of failing browser checks, shown on the dashboard's incident page and served by
the API: an incident names them (``Incident.screenshots``, object names in the ``fao-screenshots``
object store the probers write); the gateway reads them from there.

Only a screenshot an incident names is served, by its place in that list
(``/incidents/<id>/screenshots/<n>`` for a signed-in viewer, ``/api/v1/incidents/<id>/screenshots/<n>``
for a viewer token), never an object by a name the caller chose, and never on the public status
page. The object store keeps them 35 days: an older incident's screenshot answers 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from fastapi import Response
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore
from pymongo.asynchronous.database import AsyncDatabase

from fao.gateway import views
from fao.gateway.problems import Problem
from fao.runtime.bus import screenshots_bucket
from fao.runtime.store import Document
from fao.schemas.subjects import SCREENSHOT_NAME

log = structlog.get_logger()

ReadScreenshot = Callable[[str], Awaitable[bytes | None]]
"""The bytes of the screenshot named so, ``None`` when the store does not have it."""

MEDIA_TYPES: Final = {"png": "image/png", "jpg": "image/jpeg"}
READ_TIMEOUT: Final = 5.0


class ScreenshotStore:
    """Reads the ``fao-screenshots`` object store (opened on first use; never created here)."""

    def __init__(self, js: JetStreamContext, timeout: float = READ_TIMEOUT) -> None:
        self._js = js
        self._timeout = timeout
        self._store: ObjectStore | None = None

    async def read(self, name: str) -> bytes | None:
        try:
            async with asyncio.timeout(self._timeout):
                if self._store is None:
                    self._store = await screenshots_bucket(self._js, create=False)
                result = await self._store.get(name)
        except (BucketNotFoundError, ObjectNotFoundError):
            return None
        except Exception as exc:  # NATS away or slow: the page says so, the gateway stays up
            log.warning("screenshot_unreadable", name=name, error=f"{type(exc).__name__}: {exc}")
            raise Problem(
                503, "the screenshot store is not answering", headers={"Retry-After": "5"}
            ) from None
        return bytes(result.data) if result.data is not None else None


async def screenshot_response(
    db: AsyncDatabase[Document], read: ReadScreenshot | None, incident_id: str, number: str
) -> Response:
    """The ``number``-th (from 0) screenshot of incident ``incident_id`` as an image."""
    incident = await views.get_incident(db, incident_id)
    if incident is None:
        raise Problem(404, f"no incident {incident_id!r}")
    index = int(number) if number.isdecimal() and len(number) < 4 else -1
    if not 0 <= index < len(incident.screenshots):
        raise Problem(404, f"incident {incident_id} has no screenshot {number!r}")
    name = incident.screenshots[index]
    match = SCREENSHOT_NAME.match(name)
    if match is None:
        raise Problem(404, f"incident {incident_id} names no valid screenshot at {index}")
    if read is None:
        raise Problem(503, "screenshots are not available here", headers={"Retry-After": "5"})
    data = await read(name)
    if data is None:
        raise Problem(404, f"screenshot {name} is no longer kept (the store keeps them 35 days)")
    return Response(
        content=data,
        media_type=MEDIA_TYPES[match.group(1)],
        headers={"Cache-Control": "private, max-age=86400", "Content-Disposition": "inline"},
    )
