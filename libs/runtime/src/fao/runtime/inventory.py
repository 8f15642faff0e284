"""The applied inventory, as other services read it.

``fao apply`` is the only writer of the config collections (``teams``, ``people``, ``systems``,
``monitors``)
and of the ``fao-monitors`` KV bucket. A config document is the model's JSON dump plus ``_id``,
nothing else, so reading it back is one ``model_validate``. The ``maintenance`` collection is
written by ``fao apply`` (windows from the config files, ``source: config``) and by
``fao maintenance`` (``source: cli``); its documents carry that ``source`` field besides ``_id``.

``MonitorCatalog`` and ``MaintenanceCatalog`` follow their KV buckets live (one generic
``KvCatalog``): the prober and the correlator see an applied change within milliseconds, with no
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final, Generic, Literal, TypeVar, get_args

import structlog
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel

from fao.runtime.bus import maintenance_bucket, monitors_bucket
from fao.runtime.store import Document
from fao.schemas import MaintenanceWindow, Monitor
from fao.schemas.subjects import MAINTENANCE_BUCKET, MONITORS_BUCKET, maintenance_key, monitor_key

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")

TEAMS = "teams"
PEOPLE = "people"
SYSTEMS = "systems"
MONITORS = "monitors"
MAINTENANCE = "maintenance"
AUDIT = "audit"

MaintenanceSource = Literal["config", "cli"]
MAINTENANCE_SOURCES: Final[tuple[MaintenanceSource, ...]] = get_args(MaintenanceSource)


def to_doc(model: BaseModel, key: str) -> Document:
    return {"_id": key, **model.model_dump(mode="json")}


def from_doc(kind: type[M], doc: Document) -> M:
    return kind.model_validate({k: v for k, v in doc.items() if k != "_id"})


def maintenance_to_doc(window: MaintenanceWindow, source: MaintenanceSource) -> Document:
    """A ``maintenance`` document: the window's JSON, ``_id`` and who owns it (``source``)."""
    return {**to_doc(window, window.id), "source": source}


def maintenance_from_doc(doc: Document) -> tuple[MaintenanceWindow, MaintenanceSource]:
    source = doc.get("source")
    if source not in MAINTENANCE_SOURCES:
        raise ValueError(f"maintenance document {doc.get('_id')!r} has no valid source: {source!r}")
    window = MaintenanceWindow.model_validate({k: v for k, v in doc.items() if k not in ("_id", "source")})
    return window, source


class KvCatalog(Generic[V]):
    """Live view of one KV bucket of values keyed ``<prefix><id>``, each read by ``decode``;
    ``listener(id, value_or_None)`` on every change. ``start()`` replays the bucket and returns once
    the initial values are in (``ready``), then follows it, re-watching after any failure; a value
    that ``decode`` refuses is logged and skipped (the previous value, if any, stays)."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        bucket: str,
        open_bucket: Callable[[JetStreamContext], Awaitable[KeyValue]],
        key: Callable[[str], str],
        decode: Callable[[bytes], V],
        name: str,
        listener: Callable[[str, V | None], None] | None = None,
    ) -> None:
        self._js = js
        self._bucket = bucket
        self._open_bucket = open_bucket
        self._prefix = key("")
        self._decode = decode
        self._name = name
        self._listener = listener
        self.entries: dict[str, V] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self._stopping = False

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109  # a start-up deadline
        """Replay the bucket, then follow it; returns once the initial values are in."""
        self._task = asyncio.create_task(self._follow(), name=f"{self._name}-catalog")
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"could not read the {self._bucket} bucket within {timeout}s") from None

    async def _follow(self) -> None:
        """Watch forever; after any failure (NATS restarting...) watch again from a full replay."""
        while not self._stopping:
            try:
                await self._watch_once()
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # being stopped: never turn a cancellation into a retry
                log.error(f"{self._name}_catalog_watch_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)

    async def _watch_once(self) -> None:
        kv = await self._open_bucket(self._js)
        watcher = await kv.watch(f"{self._prefix}*")
        replayed: set[str] | None = set()  # ids present in the replay; None once it is complete
        try:
            while not self._stopping:
                try:
                    entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
                except NatsTimeoutError:
                    continue
                if entry is None:  # the replay is complete: forget what was deleted meanwhile
                    if replayed is not None:
                        for gone in set(self.entries) - replayed:
                            self._apply(gone, None)
                        replayed = None
                        self.ready.set()
                    continue
                item_id = entry.key.removeprefix(self._prefix)
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self._apply(item_id, None)
                    continue
                try:
                    value = self._decode(entry.value)
                except Exception as exc:  # not a valid value: keep the previous one, if any
                    log.error(f"{self._name}_definition_invalid", key=entry.key, error=str(exc))
                    if item_id in self.entries and replayed is not None:
                        replayed.add(item_id)
                    continue
                if replayed is not None:
                    replayed.add(item_id)
                self._apply(item_id, value)
        finally:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated

    def _apply(self, item_id: str, value: V | None) -> None:
        if value is None:
            self.entries.pop(item_id, None)
        else:
            self.entries[item_id] = value
        if self._listener is not None:
            self._listener(item_id, value)

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
            log.warning(f"{self._name}_catalog_stopped_with_error", error=f"{type(exc).__name__}: {exc}")


MonitorListener = Callable[[str, Monitor | None], None]
MaintenanceListener = Callable[[str, MaintenanceWindow | None], None]


class MonitorCatalog(KvCatalog[Monitor]):
    """Live view of the ``fao-monitors`` bucket; ``listener(id, monitor_or_None)`` on every change."""

    def __init__(self, js: JetStreamContext, listener: MonitorListener | None = None) -> None:
        super().__init__(
            js,
            bucket=MONITORS_BUCKET,
            open_bucket=monitors_bucket,
            key=monitor_key,
            decode=Monitor.model_validate_json,
            name="monitor",
            listener=listener,
        )

    @property
    def monitors(self) -> dict[str, Monitor]:
        return self.entries


class MaintenanceCatalog(KvCatalog[MaintenanceWindow]):
    """Live view of the ``fao-maintenance`` bucket; ``listener(id, window_or_None)`` on every change."""

    def __init__(self, js: JetStreamContext, listener: MaintenanceListener | None = None) -> None:
        super().__init__(
            js,
            bucket=MAINTENANCE_BUCKET,
            open_bucket=maintenance_bucket,
            key=maintenance_key,
            decode=MaintenanceWindow.model_validate_json,
            name="maintenance",
            listener=listener,
        )

    @property
    def windows(self) -> dict[str, MaintenanceWindow]:
        return self.entries
