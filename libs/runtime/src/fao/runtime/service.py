"""The common start-up and shutdown of a Fao service process.

``serve`` configures logging, connects MongoDB (creating the service's indexes) and NATS (creating
streams and buckets), runs the service's own start hook, starts FastStream subscribers, serves
``/healthz`` and ``/metrics``, and shuts everything down cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.bus import ensure_bus
from fao.runtime.http import HealthCheck, OpsServer
from fao.runtime.logging import configure_logging
from fao.runtime.settings import ServiceSettings
from fao.runtime.store import Document, IndexSpec, connect, ensure_indexes

log = structlog.get_logger()


@dataclass
class Runtime:
    """What a running service gets: its settings, the broker, JetStream and (if used) its database."""

    settings: ServiceSettings
    broker: NatsBroker
    js: JetStreamContext
    mongo: AsyncMongoClient[Document] | None

    @property
    def db(self) -> AsyncDatabase[Document]:
        if self.mongo is None:
            raise RuntimeError("this service was built with uses_mongo=False")
        return self.mongo[self.settings.mongo_db]


Hook = Callable[[Runtime], Awaitable[None]]


def new_broker(settings: ServiceSettings) -> NatsBroker:
    """The broker every service uses. FastStream logs through the stdlib logger ``fao.faststream``
    (so its lines come out as the same JSON as ours), and its per-message "Received/Processed"
    lines are at DEBUG: ``log_level`` is the level FastStream writes them at, not a filter."""
    return NatsBroker(settings.nats_url, logger=logging.getLogger("fao.faststream"), log_level=logging.DEBUG)


async def _wait_mongo(client: AsyncMongoClient[Document], attempts: int = 30) -> None:
    for attempt in range(attempts):
        try:
            await client.admin.command("ping")
            return
        except Exception as exc:
            if attempt == attempts - 1:
                raise
            log.warning("mongo_unavailable", error=str(exc), attempt=attempt + 1)
            await asyncio.sleep(1.0)


@dataclass
class ServiceApp:
    """A service as ``serve`` runs it: subscribers are already registered on ``broker``."""

    name: str
    settings: ServiceSettings
    broker: NatsBroker
    indexes: Sequence[IndexSpec] = ()
    on_start: Hook | None = None
    on_stop: Hook | None = None
    extra_health: dict[str, HealthCheck] = field(default_factory=dict)
    uses_mongo: bool = True


async def serve(
    svc: ServiceApp, stop_event: asyncio.Event | None = None, ready: asyncio.Event | None = None
) -> None:
    """Run one service until SIGTERM/SIGINT (or ``stop_event``); ``ready`` is set once it consumes."""
    settings, broker = svc.settings, svc.broker
    configure_logging(svc.name, settings.log_level, settings.log_format)
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    mongo: AsyncMongoClient[Document] | None = None
    checks = dict(svc.extra_health)
    if svc.uses_mongo:
        mongo = connect(settings.mongo_url)
        await _wait_mongo(mongo)
        await ensure_indexes(mongo[settings.mongo_db], svc.indexes)
        client = mongo

        async def mongo_ok() -> bool:
            await client.admin.command("ping")
            return True

        checks["mongo"] = mongo_ok
    await broker.connect()
    js = broker.connection.jetstream()
    await ensure_bus(js)
    runtime = Runtime(settings, broker, js, mongo)
    if svc.on_start is not None:
        await svc.on_start(runtime)
    await broker.start()

    async def nats_ok() -> bool:
        return bool(broker.connection.is_connected)

    checks["nats"] = nats_ok
    ops: OpsServer | None = None
    if settings.http_port >= 0:
        ops = OpsServer(settings.http_host, settings.http_port, checks)
        await ops.start()
    log.info("service_started", nats=settings.nats_url, db=settings.mongo_db)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("service_stopping")
        if svc.on_stop is not None:
            await svc.on_stop(runtime)  # before the broker stops: it may still publish
        await broker.stop()
        if ops is not None:
            await ops.stop()
        if mongo is not None:
            await mongo.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("service_stopped")


def run(build: Callable[[], ServiceApp]) -> None:
    """Entry point of ``python -m fao.<service>``: uvloop when available, then ``serve``."""
    try:
        import uvloop  # optional speed-up, not a hard dependency
    except ImportError:
        asyncio.run(serve(build()))
    else:
        uvloop.run(serve(build()))
