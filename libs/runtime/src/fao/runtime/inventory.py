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
from fao.schemas.subjects import MONITORS_BUCKET

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
        self._stopping = False

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109  # a start-up deadline
        """Replay the bucket, then follow it; returns once the initial values are in."""
        self._task = asyncio.create_task(self._follow(), name="monitor-catalog")
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"could not read the {MONITORS_BUCKET} bucket within {timeout}s") from None

    async def _follow(self) -> None:
        """Watch forever; after any failure (NATS restarting...) watch again from a full replay."""
        while not self._stopping:
            try:
                await self._watch_once()
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # being stopped: never turn a cancellation into a retry
                log.error("monitor_catalog_watch_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)

    async def _watch_once(self) -> None:
        kv = await monitors_bucket(self._js)
        watcher = await kv.watch("monitor.*")
        replayed: set[str] | None = set()  # ids present in the replay; None once it is complete
        try:
            while not self._stopping:
                try:
                    entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
                except NatsTimeoutError:
                    continue
                if entry is None:  # the replay is complete: forget what was deleted meanwhile
                    if replayed is not None:
                        for gone in set(self.monitors) - replayed:
                            self._apply(gone, None)
                        replayed = None
                        self.ready.set()
                    continue
                monitor_id = entry.key.removeprefix("monitor.")
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self._apply(monitor_id, None)
                    continue
                try:
                    monitor = Monitor.model_validate_json(entry.value)
                except ValidationError as exc:  # keep running the previous definition, if any
                    log.error("monitor_definition_invalid", key=entry.key, error=str(exc))
                    if monitor_id in self.monitors and replayed is not None:
                        replayed.add(monitor_id)
                    continue
                if replayed is not None:
                    replayed.add(monitor_id)
                self._apply(monitor_id, monitor)
        finally:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated

    def _apply(self, monitor_id: str, monitor: Monitor | None) -> None:
        if monitor is None:
            self.monitors.pop(monitor_id, None)
        else:
            self.monitors[monitor_id] = monitor
        if self._listener is not None:
            self._listener(monitor_id, monitor)

    async def stop(self) -> None:
        """Stop following. Cancels, and also sets a flag the loops check: on Python 3.11,
        ``asyncio.wait_for`` (inside nats-py's ``updates``) can swallow a cancellation that races
        with a result, which once left a test waiting here forever."""
        self._stopping = True
        if self._task is None:
            return
        while not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        if not self._task.cancelled() and (exc := self._task.exception()) is not None:
            log.warning("monitor_catalog_stopped_with_error", error=f"{type(exc).__name__}: {exc}")
