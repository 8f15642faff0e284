"""The common start-up and shutdown of a Fao service process.

``serve`` configures logging, connects MongoDB (creating the service's indexes) and NATS (creating
streams and buckets), runs the service's own start hook, starts FastStream subscribers, serves
``/healthz`` and ``/metrics``, and shuts everything down cleanly on SIGTERM/SIGINT.

A ``singleton`` service runs as one active instance with any number of standbys: ``serve`` starts
``/healthz`` and ``/metrics`` first, logs ``standby``, waits for the service's lease
(``fao.runtime.lease``) before the start hook, logs ``active``, and releases the lease on a clean
stop. If the lease is lost, the service is stopped and ``serve`` raises ``LeaseLostError``: ``run``
exits non-zero (crash-only) and the supervisor restarts the process as a standby.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import structlog
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import Gauge
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.bus import ensure_bus
from fao.runtime.http import HealthCheck, OpsServer
from fao.runtime.lease import Lease, default_holder_id
from fao.runtime.logging import configure_logging
from fao.runtime.settings import ServiceSettings
from fao.runtime.store import Document, IndexSpec, connect, ensure_indexes

log = structlog.get_logger()

ACTIVE = Gauge("fao_service_active", "1 while this singleton instance holds its lease and runs", ["service"])


class LeaseLostError(RuntimeError):
    """A singleton service lost its lease: it was stopped, and its process must exit."""


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
    # One active instance at a time (lease named after the service); the others wait as standbys.
    singleton: bool = False


async def serve(
    svc: ServiceApp, stop_event: asyncio.Event | None = None, ready: asyncio.Event | None = None
) -> None:
    """Run one service until SIGTERM/SIGINT (or ``stop_event``); ``ready`` is set once it consumes.
    A singleton raises ``LeaseLostError`` (after stopping cleanly) when it loses its lease."""
    settings, broker = svc.settings, svc.broker
    configure_logging(svc.name, settings.log_level, settings.log_format)
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    mongo: AsyncMongoClient[Document] | None = None
    checks = dict(svc.extra_health)  # the ops server reads this dict: checks added later count too
    ops: OpsServer | None = None
    lease: Lease | None = None
    lease_nc: NatsClient | None = None
    runtime: Runtime | None = None
    lost = False
    try:
        if svc.singleton:
            ops = await _start_ops(settings, checks)  # a standby is observable too
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

        async def nats_ok() -> bool:
            return bool(broker.connection.is_connected)

        checks["nats"] = nats_ok
        if svc.singleton:
            # Its own connection: the lease is released after the broker (and its connection) stopped.
            lease_nc = await nats.connect(settings.nats_url, name=f"{svc.name}-lease")
            lease = Lease(lease_nc.jetstream(), svc.name, default_holder_id(), settings.lease_ttl)
            ACTIVE.labels(svc.name).set(0)
            log.info("standby", lease=svc.name, holder=lease.holder_id, ttl_s=lease.ttl)
            if not await _first(lease.acquire(), stop):
                return  # stopped while standby
            log.info("active", lease=svc.name, holder=lease.holder_id)
        runtime = Runtime(settings, broker, js, mongo)
        if svc.on_start is not None:
            await svc.on_start(runtime)
        await broker.start()
        if ops is None:
            ops = await _start_ops(settings, checks)
        if lease is not None:
            ACTIVE.labels(svc.name).set(1)
        log.info("service_started", nats=settings.nats_url, db=settings.mongo_db)
        if ready is not None:
            ready.set()
        if lease is None:
            await stop.wait()
        else:
            lost = not await _first(stop.wait(), lease.lost)  # False: the lease went first
    finally:
        log.info("service_stopping", lease_lost=lost)
        if runtime is not None and svc.on_stop is not None:
            await svc.on_stop(runtime)  # before the broker stops: it may still publish
        await broker.stop()
        if lease is not None:
            await lease.release()  # after the broker stopped: the standby starts on a quiet stream
            ACTIVE.labels(svc.name).set(0)
        if lease_nc is not None:
            await lease_nc.close()
        if ops is not None:
            await ops.stop()
        if mongo is not None:
            await mongo.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("service_stopped")
    if lost:
        raise LeaseLostError(f"{svc.name} lost its lease; restart as a standby")


async def _start_ops(settings: ServiceSettings, checks: dict[str, HealthCheck]) -> OpsServer | None:
    if settings.http_port < 0:
        return None
    ops = OpsServer(settings.http_host, settings.http_port, checks)
    await ops.start()
    return ops


async def _first(work: Coroutine[Any, Any, object], stop: asyncio.Event) -> bool:
    """Run ``work`` until it finishes (True) or ``stop`` is set first (False, ``work`` cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopping):
            pending.cancel()
    if task.done() and not task.cancelled():
        task.result()  # re-raise its error, if any
        return True
    return False


def run(build: Callable[[], ServiceApp]) -> None:
    """Entry point of ``python -m fao.<service>``: uvloop when available, then ``serve``. Exits
    with status 1 when a singleton lost its lease (its supervisor restarts it as a standby)."""
    try:
        import uvloop  # optional speed-up, not a hard dependency
    except ImportError:
        runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(build()))
    except LeaseLostError as exc:
        log.error("exiting", reason=str(exc))
        raise SystemExit(1) from None
