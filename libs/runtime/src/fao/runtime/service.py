"""The common start-up and shutdown of a Fao service process.

``serve`` configures logging, connects MongoDB (creating the service's indexes) and NATS (creating
streams and buckets; with ``FAO_NATS_MANAGE_STREAMS=false``, a least-privilege NATS user, waiting
until the admin has created them: ``fao.runtime.bus.verify_bus``), runs the service's own start
hook, starts FastStream subscribers, serves ``/healthz`` and ``/metrics``, and shuts everything down
cleanly on SIGTERM/SIGINT. NATS credentials come from ``FAO_NATS_URL`` (``user:password@``) or
``FAO_NATS_USER``/``FAO_NATS_PASSWORD``; a user's connections take replies on its own inboxes
(``fao.runtime.auth``).

Connections (docs/architecture.md §7, "Connections"):

- NATS is never given up on: every connection (the broker's and a singleton's lease connection)
  reconnects forever, ``FAO_NATS_RECONNECT_WAIT`` seconds between attempts, and a service started
  while NATS (or MongoDB) is unreachable waits for it, serving ``/healthz`` (503) meanwhile;
- a NATS connection closed for good (a server error such as a payload violation, or a reconnect
  that gave up) stops the service and ``serve`` raises ``NatsConnectionClosedError``: ``run``
  exits 1 and the supervisor restarts the process. A publish on a closed connection yields before
  it fails, so FastStream's pull loop, which retries a failed fetch at once, cannot wedge the event
  loop (``_Connection``);
- ``/healthz`` is answered from its own thread (``fao.runtime.http``) with a NATS PING/PONG and a
  MongoDB ping refreshed every second;
- a stop (signal, lost lease, closed connection) finishes within ``FAO_STOP_GRACE`` seconds: each
  shutdown step gets what is left of that budget, and in a process started by ``run`` a watchdog
  thread (``fao.runtime.guard``) exits it anyway once the grace period is over.

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
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import pymongo
import structlog
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import Gauge
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.auth import inbox_prefix
from fao.runtime.brief import brief
from fao.runtime.bus import ensure_bus, verify_bus
from fao.runtime.guard import ProcessGuard, connection_gave_up
from fao.runtime.http import CHECK_TIMEOUT, HealthCheck, HealthDetails, OpsServer
from fao.runtime.lease import Lease, default_holder_id
from fao.runtime.logging import configure_logging
from fao.runtime.settings import ServiceSettings
from fao.runtime.store import Document, IndexSpec, connect, ensure_indexes

log = structlog.get_logger()

ACTIVE = Gauge("fao_service_active", "1 while this singleton instance holds its lease and runs", ["service"])

# nats-py connection options every Fao connection uses (besides FAO_NATS_RECONNECT_WAIT).
CONNECT_TIMEOUT = 2
# A connection that went silent (no TCP reset: a cable, a firewall) is found dead after about
# PING_INTERVAL × MAX_OUTSTANDING_PINGS seconds and reconnected; /healthz's own ping sees it at once.
PING_INTERVAL = 20
MAX_OUTSTANDING_PINGS = 3
# How long a clean stop waits for the broker connection to drain.
DRAIN_TIMEOUT = 5
# A publish on a closed connection waits this long before it raises (see ``_Connection``).
CLOSED_PUBLISH_DELAY = 0.5
# How long a connection must look closed for good before the service stops (a reconnect loop being
# replaced looks finished for an instant).
GAVE_UP_CONFIRM = 1.0
# Start-up: how long a connection may take before /healthz is started anyway (answering 503).
STARTUP_PATIENCE = 1.0
# At most this long for releasing a singleton's lease at a stop.
LEASE_RELEASE_BUDGET = 2.0
# A shutdown step never gets less than this, even when the budget is spent.
MIN_STEP = 0.2
# Part of the grace period kept back for the process to exit after the last step.
EXIT_MARGIN = 0.5
# While a connection is down, its error is logged once, then at most this often.
ERROR_LOG_EVERY = 30.0


class ServiceFailedError(RuntimeError):
    """The service stopped cleanly because it cannot go on: its process must exit non-zero."""


class LeaseLostError(ServiceFailedError):
    """A singleton service lost its lease: it was stopped, and its process must exit."""


class NatsConnectionClosedError(ServiceFailedError):
    """A NATS connection was closed for good: the service was stopped, and its process must exit."""


class StartupError(ServiceFailedError):
    """The service cannot start as configured (its ``/healthz`` port is taken, NATS refused its
    user): it was stopped, and its process exits 1 with one line saying which setting to check."""


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


class _Connection(NatsClient):
    """nats-py's client, except that a publish on a closed connection yields to the event loop
    before it raises ``ConnectionClosedError``. FastStream 0.7's pull loop suppresses that error
    and fetches again at once; nats-py raised it without ever yielding, so the loop spun at 100 %
    CPU and nothing else ran: not /healthz, not the SIGTERM handler, not the code that notices the
    closed connection. Now the loop gets a turn every ``CLOSED_PUBLISH_DELAY`` seconds."""

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        if self.is_closed:
            await asyncio.sleep(CLOSED_PUBLISH_DELAY)
        await super().publish(subject, payload, reply, headers)


class _ConnectionLog:
    """nats-py connection callbacks that log what happens to one connection, briefly."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._down_since: float | None = None
        self._last_error_log = 0.0

    async def error(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is not None and now - self._last_error_log < ERROR_LOG_EVERY:
            return
        self._last_error_log = now
        log.warning("nats_connection_error", connection=self.name, error=f"{type(exc).__name__}: {exc}")

    async def disconnected(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._last_error_log = 0.0
            log.warning("nats_disconnected", connection=self.name)

    async def reconnected(self) -> None:
        down = None if self._down_since is None else round(time.monotonic() - self._down_since, 2)
        self._down_since = None
        log.info("nats_reconnected", connection=self.name, down_s=down)

    async def closed(self) -> None:
        log.info("nats_connection_closed", connection=self.name)

    def callbacks(self) -> dict[str, Any]:
        return {
            "error_cb": self.error,
            "disconnected_cb": self.disconnected,
            "reconnected_cb": self.reconnected,
            "closed_cb": self.closed,
        }


def nats_options(
    settings: ServiceSettings, name: str, events: _ConnectionLog | None = None
) -> dict[str, Any]:
    """Connection options of every service connection: reconnect forever (see the module docstring);
    a connection as a NATS user takes its replies on that user's own inboxes (``fao.runtime.auth``)."""
    user = settings.nats_username()
    return {
        **({"inbox_prefix": inbox_prefix(user)} if user else {}),
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": settings.nats_reconnect_wait,
        "connect_timeout": CONNECT_TIMEOUT,
        "ping_interval": PING_INTERVAL,
        "max_outstanding_pings": MAX_OUTSTANDING_PINGS,
        "drain_timeout": DRAIN_TIMEOUT,
        **(events or _ConnectionLog(name)).callbacks(),
    }


async def connect_nats(settings: ServiceSettings, name: str) -> NatsClient:
    """A plain NATS connection with the service policy (waits for NATS as long as it takes)."""
    nc = _Connection()
    await nc.connect(settings.nats_connect_url(), **nats_options(settings, name))
    return nc


class _Broker(NatsBroker):
    """FastStream's NATS broker on a ``_Connection``."""

    events: _ConnectionLog
    # The connection's inbox prefix when it connects as a NATS user (``consume.subscribe`` uses it).
    inbox_prefix: str | None = None

    def name_connection(self, name: str) -> None:
        """Name the connection after the service (shown by the NATS server, and in our log lines)."""
        self._connection_kwargs["name"] = name
        self.events.name = name

    async def _connect(self) -> NatsClient:
        connection = _Connection()
        await connection.connect(**self._connection_kwargs)
        self.config.connect(connection)
        return connection


class _NoConnectionBroken(logging.Filter):
    """Drops FastStream's "Connection broken with <error>" records: it logs every NATS connection
    error again, each with its traceback (≈80 lines), about twice every 10 s per KV watcher while
    NATS is away; ``nats_connection_error`` already says it in one line, at most every
    ``ERROR_LOG_EVERY`` seconds."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Connection broken with ")


def new_broker(settings: ServiceSettings) -> NatsBroker:
    """The broker every service uses, on a connection that reconnects forever (``nats_options``;
    ``serve`` names it after the service). FastStream logs through the stdlib logger
    ``fao.faststream`` (so its lines come out as the same JSON as ours), and its per-message
    "Received/Processed" lines are at DEBUG: ``log_level`` is the level FastStream writes them at,
    not a filter."""
    events = _ConnectionLog("fao")
    logger = logging.getLogger("fao.faststream")
    if not any(isinstance(f, _NoConnectionBroken) for f in logger.filters):
        logger.addFilter(_NoConnectionBroken())
    broker = _Broker(
        settings.nats_connect_url(),
        logger=logger,
        log_level=logging.DEBUG,
        **nats_options(settings, events.name, events),
    )
    broker.events = events
    user = settings.nats_username()
    broker.inbox_prefix = inbox_prefix(user) if user else None
    return broker


async def _wait_mongo(client: AsyncMongoClient[Document]) -> None:
    """Until MongoDB answers a ping (forever: the caller gives up by cancelling)."""
    attempt = 0
    while True:
        try:
            await client.admin.command("ping")
            return
        except Exception as exc:
            attempt += 1
            log.warning("mongo_unavailable", error=brief(exc), attempt=attempt)
            await asyncio.sleep(min(5.0, 0.5 * 2**attempt))


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
    health_details: HealthDetails | None = None  # figures shown in /healthz (status unaffected)
    uses_mongo: bool = True
    # One active instance at a time (lease named after the service); the others wait as standbys.
    singleton: bool = False


class _Health:
    """The checks ``/healthz`` runs for ``serve``: running, NATS (every connection connected and
    answering a PING), MongoDB (a ping), and the service's own."""

    def __init__(self, svc: ServiceApp) -> None:
        self.running = False
        self.connections: list[NatsClient] = []
        self.mongo: AsyncMongoClient[Document] | None = None
        self.checks: dict[str, HealthCheck] = {"running": self._running, "nats": self._nats}
        if svc.uses_mongo:
            self.checks["mongo"] = self._mongo
        self.checks.update(svc.extra_health)

    async def _running(self) -> bool:
        return self.running

    async def _nats(self) -> bool:
        if not self.connections or not all(nc.is_connected for nc in self.connections):
            return False
        await asyncio.gather(*(nc.flush(timeout=int(CHECK_TIMEOUT)) for nc in self.connections))
        return True

    async def _mongo(self) -> bool:
        if self.mongo is None:
            return False
        with pymongo.timeout(CHECK_TIMEOUT):
            await self.mongo.admin.command("ping")
        return True


async def serve(
    svc: ServiceApp,
    stop_event: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    *,
    guard: ProcessGuard | None = None,
) -> None:
    """Run one service until SIGTERM/SIGINT (or ``stop_event``); ``ready`` is set once it consumes.
    Raises ``ServiceFailedError`` (after stopping cleanly) when the service cannot go on: a singleton's
    lease was lost (``LeaseLostError``), a NATS connection closed for good
    (``NatsConnectionClosedError``). With a ``guard`` (``run``), signals go through the guard."""
    settings, broker = svc.settings, svc.broker
    configure_logging(svc.name, settings.log_level, settings.log_format)
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    if guard is not None:
        guard.attach(loop, stop)
    else:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    failures: list[ServiceFailedError] = []

    def fail(exc: ServiceFailedError) -> None:
        if not failures:
            failures.append(exc)
        stop.set()

    def _startup_failed(reason: str) -> StartupError:
        error = StartupError(reason)
        fail(error)
        return error

    health = _Health(svc)
    if svc.singleton:  # 0 from the first /metrics on, also while it waits for MongoDB or NATS
        ACTIVE.labels(svc.name).set(0)
    ops: OpsServer | None = None

    async def start_ops() -> None:
        nonlocal ops
        if ops is None and settings.http_port >= 0:
            ops = OpsServer(settings.http_host, settings.http_port, health.checks, details=svc.health_details)
            try:
                await ops.start()
            except OSError as exc:
                raise _startup_failed(
                    f"cannot serve /healthz on {settings.http_host}:{settings.http_port} ({exc.strerror or exc});"
                    " set FAO_HTTP_PORT to a free port (0: any, -1: none) or FAO_HTTP_HOST"
                ) from None

    mongo: AsyncMongoClient[Document] | None = None
    lease: Lease | None = None
    lease_nc: NatsClient | None = None
    runtime: Runtime | None = None
    watchers: list[asyncio.Task[None]] = []
    try:
        if svc.uses_mongo:
            mongo = connect(settings.mongo_url)
            if not await _start_up(_wait_mongo(mongo), stop, start_ops):
                return  # stopped while waiting
            health.mongo = mongo
            await ensure_indexes(mongo[settings.mongo_db], svc.indexes)
        if isinstance(broker, _Broker):
            broker.name_connection(svc.name)
        try:
            connected = await _start_up(broker.connect(), stop, start_ops)
        except nats.errors.Error as exc:  # the server refused us (not unreachable: that is retried)
            raise _startup_failed(
                f"NATS at {settings.nats_display_url()} refused the connection ({exc}); check FAO_NATS_USER"
                " and FAO_NATS_PASSWORD (or the user:password in FAO_NATS_URL)"
            ) from None
        if not connected:
            return
        health.connections.append(broker.connection)
        if guard is not None:
            guard.watch(broker.connection)
        watchers.append(asyncio.create_task(_watch_connections(health.connections, fail), name="nats-watch"))
        js = broker.connection.jetstream()
        if settings.nats_manage_streams:
            await ensure_bus(js)
        elif not await until_stopped(verify_bus(js), stop):
            return  # stopped while waiting for the admin to create the streams
        if svc.singleton:
            # Its own connection: the lease is released after the broker (and its connection) stopped.
            connecting = asyncio.ensure_future(connect_nats(settings, f"{svc.name}-lease"))
            if not await until_stopped(connecting, stop):
                return
            lease_nc = connecting.result()
            health.connections.append(lease_nc)
            if guard is not None:
                guard.watch(lease_nc)
            lease = Lease(lease_nc.jetstream(), svc.name, default_holder_id(), settings.lease_ttl)
            health.running = True  # a standby is doing what it should
            await start_ops()  # a standby is observable too
            log.info("standby", lease=svc.name, holder=lease.holder_id, ttl_s=lease.ttl)
            if not await until_stopped(lease.acquire(), stop):
                return  # stopped while standby
            log.info("active", lease=svc.name, holder=lease.holder_id)
            watchers.append(asyncio.create_task(_watch_lease(lease, fail), name="lease-watch"))
        runtime = Runtime(settings, broker, js, mongo)
        if svc.on_start is not None:
            await svc.on_start(runtime)
        await broker.start()
        health.running = True
        await start_ops()
        if lease is not None:
            ACTIVE.labels(svc.name).set(1)
        log.info("service_started", nats=settings.nats_display_url(), db=settings.mongo_db)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        health.running = False
        for watcher in watchers:
            watcher.cancel()
        reason = str(failures[0]) if failures else "stop requested"
        if guard is not None:
            guard.stopping(reason)
        started = loop.time()
        deadline = started + max(MIN_STEP, settings.stop_grace - EXIT_MARGIN)
        lost = any(isinstance(exc, LeaseLostError) for exc in failures)
        log.info("service_stopping", reason=reason, lease_lost=lost)
        if runtime is not None and svc.on_stop is not None:
            await _step("on_stop", svc.on_stop(runtime), deadline)  # before the broker: it may still publish
        await _step("broker", _stop_broker(broker, health.connections[:1]), deadline)
        if lease is not None:
            # After the broker: a standby starts on a quiet stream. Bounded tighter: on a working
            # connection it takes milliseconds, and an unreleased lease expires by itself anyway.
            await _step("lease_release", lease.release(), min(deadline, loop.time() + LEASE_RELEASE_BUDGET))
            ACTIVE.labels(svc.name).set(0)
        if lease_nc is not None:
            await _step("lease_connection", lease_nc.close(), deadline)
        if ops is not None:
            await _step("ops_http", ops.stop(), deadline)
        if mongo is not None:
            await _step("mongo", mongo.close(), deadline)
        if guard is None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("service_stopped", seconds=round(loop.time() - started, 3))
    if failures:
        raise failures[0]


async def _start_up(
    work: Coroutine[Any, Any, object], stop: asyncio.Event, slow: Callable[[], Awaitable[None]]
) -> bool:
    """Wait for a start-up step (True) unless ``stop`` comes first (False). A step that takes
    longer than ``STARTUP_PATIENCE`` (a server still unreachable) calls ``slow`` first: /healthz
    then answers 503 while the service waits."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=STARTUP_PATIENCE)
    if not done:
        await slow()
    return await until_stopped(task, stop)


async def _watch_connections(
    connections: list[NatsClient], fail: Callable[[ServiceFailedError], None]
) -> None:
    """Stop the service when one of its NATS connections is closed for good."""
    loop = asyncio.get_running_loop()
    since: float | None = None
    while True:
        await asyncio.sleep(0.25)
        if not any(connection_gave_up(nc) for nc in connections):
            since = None
            continue
        now = loop.time()
        if since is None:
            since = now
        elif now - since >= GAVE_UP_CONFIRM:
            error = next((nc.last_error for nc in connections if connection_gave_up(nc)), None)
            reason = (
                f"NATS connection closed for good ({error!r}); exiting so that the supervisor restarts us"
            )
            log.error("nats_connection_lost", reason=reason)
            fail(NatsConnectionClosedError(reason))
            return


async def _watch_lease(lease: Lease, fail: Callable[[ServiceFailedError], None]) -> None:
    await lease.lost.wait()
    fail(LeaseLostError(f"lost the lease {lease.name}; restart as a standby"))


async def _stop_broker(broker: NatsBroker, connections: list[NatsClient]) -> None:
    """Stop the subscribers and drain the connection; a connection that cannot drain (NATS down,
    or closed for good) is closed instead, which also ends its reconnecting."""
    try:
        await broker.stop()
    except Exception as exc:
        log.warning("broker_stop_failed", error=f"{type(exc).__name__}: {exc}")
        for nc in connections:
            if not nc.is_closed:
                await nc.close()


async def _step(name: str, work: Awaitable[object], deadline: float) -> None:
    """One shutdown step, within what is left of the stop budget (at least ``MIN_STEP``); a step
    that fails or overruns is logged and the next one runs."""
    budget = max(MIN_STEP, deadline - asyncio.get_running_loop().time())
    try:
        async with asyncio.timeout(budget):
            await work
    except TimeoutError:
        log.warning("stop_step_timeout", step=name, budget_s=round(budget, 2))
    except Exception as exc:
        log.warning("stop_step_failed", step=name, error=f"{type(exc).__name__}: {exc}")


async def until_stopped(work: Awaitable[object], stop: asyncio.Event) -> bool:
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
    """Entry point of ``python -m fao.<service>``: a ``ProcessGuard`` first (signals, grace period,
    closed connections: see ``fao.runtime.guard``), uvloop when available, then ``serve``. Exits
    with status 1 when the service stopped because it could not go on (lost lease, NATS connection
    closed for good): its supervisor restarts it; with status 2 and one line per problem when a
    setting (``FAO_*``) is not valid."""
    guard = ProcessGuard()
    guard.install()  # before anything starts a thread: every thread inherits the blocked signals
    try:
        svc = build()
    except ValidationError as exc:  # a FAO_* setting that is not valid: say which, no traceback
        for error in exc.errors():
            name = "FAO_" + "_".join(str(part) for part in error["loc"]).upper()
            secret = any(word in name for word in ("SECRET", "PASSWORD", "TOKEN"))
            got = "" if secret else f" (got {error.get('input')!r})"
            print(f"{name}: {error['msg']}{got}", file=sys.stderr)
        raise SystemExit(2) from None
    guard.service, guard.grace = svc.name, svc.settings.stop_grace
    try:
        import uvloop  # optional speed-up, not a hard dependency
    except ImportError:
        runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(svc, guard=guard))
    except ServiceFailedError as exc:
        log.error("exiting", reason=str(exc), exit_code=1)
        raise SystemExit(1) from None
