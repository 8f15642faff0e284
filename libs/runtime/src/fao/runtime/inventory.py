"""The applied inventory, as other services read it.

``fao apply`` is the only writer of the config collections (``teams``, ``systems``, ``monitors``)
and of the ``fao-monitors`` KV bucket. A config document is the model's JSON dump plus ``_id``,
nothing else, so reading it back is one ``model_validate``.

``MonitorCatalog`` follows the KV bucket live: the prober and the correlator see an applied change
within milliseconds, with no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

import structlog
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from fao.runtime.bus import monitors_bucket
from fao.runtime.store import Document
from fao.schemas import Monitor

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)

TEAMS = "teams"
SYSTEMS = "systems"
MONITORS = "monitors"
AUDIT = "audit"


def to_doc(model: BaseModel, key: str) -> Document:
    return {"_id": key, **model.model_dump(mode="json")}


def from_doc(kind: type[M], doc: Document) -> M:
    return kind.model_validate({k: v for k, v in doc.items() if k != "_id"})


MonitorListener = Callable[[str, Monitor | None], None]


class MonitorCatalog:
    """Live view of the ``fao-monitors`` bucket; ``listener(id, monitor_or_None)`` on every change."""

    def __init__(self, js: JetStreamContext, listener: MonitorListener | None = None) -> None:
        self._js = js
        self._listener = listener
        self.monitors: dict[str, Monitor] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        """Replay the bucket (``ready`` is set once the initial values are in), then follow it."""
        kv = await monitors_bucket(self._js)
        watcher = await kv.watch("monitor.*")
        self._task = asyncio.create_task(self._follow(watcher), name="monitor-catalog")
        await self.ready.wait()

    async def _follow(self, watcher: object) -> None:
        updates = watcher.updates  # type: ignore[attr-defined]  # nats-py's KeyWatcher is untyped
        while True:
            try:
                entry = await updates(timeout=5.0)
            except NatsTimeoutError:
                continue
            if entry is None:  # the initial replay is complete
                self.ready.set()
                continue
            monitor_id = entry.key.removeprefix("monitor.")
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self._apply(monitor_id, None)
                continue
            try:
                monitor = Monitor.model_validate_json(entry.value)
            except ValidationError as exc:
                log.error("monitor_definition_invalid", key=entry.key, error=str(exc))
                continue
            self._apply(monitor_id, monitor)

    def _apply(self, monitor_id: str, monitor: Monitor | None) -> None:
        if monitor is None:
            self.monitors.pop(monitor_id, None)
        else:
            self.monitors[monitor_id] = monitor
        if self._listener is not None:
            self._listener(monitor_id, monitor)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
