"""The gateway process: the public HTTP server (FastAPI on uvicorn) in a Fao service.

``POST /line/webhook``, in this order, nothing skipped:

1. a body larger than ``FAO_GATEWAY_MAX_BODY`` → 413 (``Content-Length`` checked first, then
   the bytes as they arrive);
2. ``X-Line-Signature`` checked over the raw bytes, in constant time → 401 when missing or
   wrong: nothing parsed, nothing written, the body never logged (no channel secret configured:
   503, nothing can be verified);
3. a body that is not a LINE webhook → 400 (logged, without the body);
4. the events' effects made durable (``fao.gateway.webhook``) → 200; MongoDB or NATS failing →
   503 (LINE may redeliver; the event is not marked as seen);
5. replies and LINE look-ups after the answer (background tasks).

The same server carries the web face (``mount_web``): the REST API under ``/api/v1``
(``fao.gateway.api``), the dashboard (``fao.gateway.web``), the public status page ``/status``
(``fao.gateway.status_page``) and ``/static`` (htmx, CSS). Every route states its role
(``fao.gateway.guard``); every error is problem details (``fao.gateway.problems``). Another
router (e.g. heartbeat pushes) is one more ``app.include_router(router, dependencies=[PUBLIC])`` (or
a role) in ``create_app``: a test fails on any route without one.

Any number of replicas (``singleton=False``): events are claimed in MongoDB, rate limits are
MongoDB slots, command ids are deterministic. ``/healthz`` and ``/metrics`` are the runtime's
(``FAO_HTTP_PORT``); its ``webhook`` check is the public server accepting connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

import structlog
import uvicorn
from fastapi import BackgroundTasks, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from prometheus_client import Counter
from pymongo.errors import PyMongoError

from fao.gateway import problems
from fao.gateway.api import PREFIX as API_PREFIX
from fao.gateway.api import build_api
from fao.gateway.commands import StreamCommands
from fao.gateway.events import MalformedWebhookError, parse_webhook
from fao.gateway.guard import PUBLIC, ContextGetter, SignInRequired, WebContext
from fao.gateway.incidents import IncidentActions
from fao.gateway.line_api import FollowUp, LineApi, NoLine, SdkLine
from fao.gateway.outcomes import CommandOutcomes
from fao.gateway.push import PushHeartbeats, push_router
from fao.gateway.rejections import RejectionWatch
from fao.gateway.replies import load_replies
from fao.gateway.reports import Reports
from fao.gateway.results_feed import RecentResults
from fao.gateway.screenshots import ScreenshotStore
from fao.gateway.sessions import LOGIN_SLOTS, LoginLimiter, Signer, signing_secret
from fao.gateway.settings import GatewaySettings
from fao.gateway.signature import valid_signature
from fao.gateway.status_page import build_status_page
from fao.gateway.store import INDEXES, GatewayStore
from fao.gateway.web import build_dashboard, error_page
from fao.gateway.webhook import WebhookHandler, utc_now
from fao.runtime.bus import maintenance_bucket
from fao.runtime.inventory import MonitorCatalog
from fao.runtime.service import Runtime, ServiceApp, ServiceFailedError, new_broker
from fao.runtime.states import StateCatalog
from fao.runtime.store import IndexSpec
from fao.schemas import CheckResult, MaintenanceWindow, Monitor
from fao.schemas.subjects import maintenance_key, result_subject

log = structlog.get_logger()

SERVICE: Final = "gateway"
WEBHOOK_PATH: Final = "/line/webhook"
# Forgetting old event ids and rate-limit slots: at most this often.
FORGET_EVERY: Final = 60.0
SERVER_START_TIMEOUT: Final = 10.0
STATIC: Final = Path(__file__).parent / "static"
# Sent with every answer of the web face: nothing loaded from elsewhere, no framing.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self';"
    " script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# A stop waits this long for requests in flight (and their replies), within FAO_STOP_GRACE.
GRACEFUL_SHUTDOWN: Final = 5
# Event types counted by name on /metrics (anything else is "other": a label per random type
# would let a caller grow the registry without bound).
KNOWN_TYPES: Final = frozenset(
    {"message", "postback", "join", "leave", "memberJoined", "memberLeft", "follow", "unfollow", "unsend"}
)
# Failures LINE may be told to retry: our stores, not the request.
UNAVAILABLE: Final = (PyMongoError, NatsError, OSError, TimeoutError)

__all__ = ["SERVICE", "GatewaySettings", "build", "create_app"]

WEBHOOKS = Counter("fao_gateway_webhooks", "LINE webhook requests answered, by HTTP status", ["status"])
EVENTS = Counter("fao_gateway_webhook_events", "Webhook events read from verified bodies, by type", ["type"])


def _answer(status: int, message: str) -> JSONResponse:
    WEBHOOKS.labels(str(status)).inc()
    return JSONResponse({"message": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def run_follow_ups(follow_ups: Sequence[FollowUp]) -> None:
    for follow_up in follow_ups:
        try:
            await follow_up()
        except Exception as exc:  # one failed reply or look-up must not stop the others
            log.warning("webhook_follow_up_failed", error=f"{type(exc).__name__}: {exc}")


def create_app(
    handler: Callable[[], WebhookHandler | None],
    secret: str | None,
    max_body: int,
    web: ContextGetter | None = None,
    push: PushHeartbeats | None = None,
) -> FastAPI:
    """The public ASGI app; ``handler()`` (and ``web()``) are None until the service has started.
    Without ``web`` only the LINE webhook is served; with ``push``, also the heartbeats of push
    monitors (``/push/<token>``, public: the token is the credential)."""
    app = FastAPI(title="Fao gateway", docs_url=None, redoc_url=None, openapi_url=None)
    if push is not None:
        app.include_router(push_router(push), dependencies=[PUBLIC])

    @app.post(WEBHOOK_PATH, dependencies=[PUBLIC])
    async def line_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
        body = await _read_body(request, max_body)
        if body is None:
            log.warning("webhook_too_large", limit=max_body)
            return _answer(413, "request body too large")
        if not secret:
            log.error("webhook_not_configured", hint="set FAO_LINE_CHANNEL_SECRET")
            return _answer(503, "LINE channel secret not configured")
        if not valid_signature(body, request.headers.get("x-line-signature"), secret):
            log.warning("webhook_signature_invalid", size=len(body))
            return _answer(401, "invalid signature")
        try:
            webhook = parse_webhook(body)
        except MalformedWebhookError as exc:
            log.warning("webhook_malformed", reason=str(exc), size=len(body))
            return _answer(400, str(exc))
        current = handler()
        if current is None:
            return _answer(503, "starting")
        if webhook.skipped:
            log.warning("webhook_events_unreadable", skipped=webhook.skipped, read=len(webhook.events))
        for event in webhook.events:
            EVENTS.labels(event.type if event.type in KNOWN_TYPES else "other").inc()
        try:
            follow_ups = await current.handle(webhook)
        except UNAVAILABLE as exc:
            log.error("webhook_failed", error=f"{type(exc).__name__}: {exc}")
            return _answer(503, "temporarily unavailable")
        if follow_ups:
            background.add_task(run_follow_ups, follow_ups)
        WEBHOOKS.labels("200").inc()
        return JSONResponse({})

    if web is not None:
        mount_web(app, web)
    return app


def mount_web(app: FastAPI, web: ContextGetter) -> None:
    """The API, the dashboard, the status page and the static files on ``app``."""
    problems.install(app, page=error_page())

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = f"/login?next={exc.path}" if exc.path != "/" else "/login"
        if request.headers.get("hx-request"):
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.middleware("http")
    async def _security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith(WEBHOOK_PATH):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    app.mount(API_PREFIX, build_api(web), name="api")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Sarabun (SIL OFL 1.1, the fontpkg-sarabun package, as the reporter uses): Thai reads the
    # same on a machine without a Thai font.
    app.mount("/fonts", StaticFiles(packages=[("fontpkg_sarabun", "files")]), name="fonts")
    app.include_router(build_status_page(web))
    app.include_router(build_dashboard(web))


class _Server(uvicorn.Server):
    """uvicorn inside a Fao service: the service runner owns SIGTERM/SIGINT, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PublicServer:
    """Serves an ASGI app on ``host:port`` (0: a free port, in ``port`` once started)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._host, self.port = host, port
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", log_config=None, access_log=False,
            server_header=False, timeout_keep_alive=5, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )  # fmt: skip
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self.port))
        except OSError as exc:
            sock.close()
            raise ServiceFailedError(
                f"cannot listen on {self._host}:{self.port} for the LINE webhook ({exc.strerror}); "
                "free the port or set FAO_GATEWAY_PORT (FAO_GATEWAY_HOST: an address of this machine)"
            ) from None
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="gateway-http")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVER_START_TIMEOUT
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the gateway's HTTP server stopped while starting")
            if loop.time() > deadline:
                raise RuntimeError(f"the gateway's HTTP server did not start within {SERVER_START_TIMEOUT}s")
            await asyncio.sleep(0.02)
        log.info("gateway_listening", webhook=f"http://{self._host}:{self.port}{WEBHOOK_PATH}")

    def serving(self) -> bool:
        return self._server.started and self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task


# How long the start waits for the monitor states (the dashboard shows "unknown" until they come).
STATES_WAIT = 5.0


def build(settings: GatewaySettings | None = None) -> ServiceApp:
    """Wire the service; nothing connects until ``serve`` (which calls ``on_start``)."""
    settings = settings or GatewaySettings()
    broker = new_broker(settings)
    replies = load_replies()
    secret = settings.line_channel_secret.get_secret_value() if settings.line_channel_secret else None
    token = (
        settings.line_channel_access_token.get_secret_value() if settings.line_channel_access_token else ""
    )
    line: LineApi = SdkLine(settings.line_api_base, token, settings.line_timeout) if token else NoLine()
    state: dict[str, WebhookHandler] = {}
    web: dict[str, WebContext] = {}
    catalogs: list[MonitorCatalog] = []
    state_catalogs: list[StateCatalog] = []
    streams: list[JetStreamContext] = []

    def push_monitors() -> list[Monitor]:
        return list(catalogs[0].monitors.values()) if catalogs else []

    async def publish_heartbeat(result: CheckResult) -> None:
        if not streams:
            raise RuntimeError("the gateway is starting")
        await streams[0].publish(
            result_subject(result.monitor_id),
            result.model_dump_json().encode(),
            headers={"Nats-Msg-Id": result.msg_id},
        )

    server = PublicServer(
        create_app(
            lambda: state.get(SERVICE),
            secret,
            settings.gateway_max_body,
            lambda: web.get(SERVICE),
            PushHeartbeats(push_monitors, publish_heartbeat),
        ),
        settings.gateway_host,
        settings.gateway_port,
    )
    tasks: list[asyncio.Task[None]] = []
    rejections: list[RejectionWatch] = []
    results = RecentResults()
    outcomes: list[CommandOutcomes] = []

    async def on_start(rt: Runtime) -> None:
        if isinstance(line, SdkLine):
            await line.start()
        catalog = MonitorCatalog(rt.js)
        await catalog.start()
        catalogs.append(catalog)
        monitor_states = StateCatalog(rt.js)
        state_catalogs.append(monitor_states)
        try:
            await monitor_states.start(timeout=STATES_WAIT)
        except RuntimeError as exc:  # no bucket yet (no correlator ever ran): followed when it comes
            log.warning("monitor_states_not_yet", error=str(exc), hint="monitors show as unknown until then")
        streams.append(rt.js)
        store = GatewayStore(rt.db)
        commands = StreamCommands(rt.js)
        watch = RejectionWatch(store, line, replies, settings.rejection_reply_window)
        await watch.start(rt.broker.connection)
        rejections.append(watch)
        reports = Reports(
            store, commands, line, replies,
            limit=settings.oa_report_limit,
            window=timedelta(seconds=settings.oa_report_window),
            pending_timeout=timedelta(seconds=settings.oa_pending_timeout),
        )  # fmt: skip
        state[SERVICE] = WebhookHandler(
            store, line, IncidentActions(store, commands, line, replies, watch), reports
        )
        command_outcomes = CommandOutcomes(rt.db, commands)
        await command_outcomes.start(rt.broker.connection)
        outcomes.append(command_outcomes)
        await results.start(rt.broker.connection)
        limiter = LoginLimiter(rt.db, settings.login_limit, timedelta(seconds=settings.login_window))
        configured = settings.web_secret.get_secret_value() if settings.web_secret else None

        async def publish_window(window: MaintenanceWindow) -> None:
            kv = await maintenance_bucket(rt.js)
            await kv.put(maintenance_key(window.id), window.model_dump_json().encode())

        web[SERVICE] = WebContext(
            db=rt.db, settings=settings, signer=Signer(await signing_secret(rt.db, configured)),
            limiter=limiter, outcomes=command_outcomes, results=results, publish_maintenance=publish_window,
            states=monitor_states.states, read_screenshot=ScreenshotStore(rt.js).read,
        )  # fmt: skip
        tasks.append(
            asyncio.create_task(_housekeeping(store, reports, settings, limiter), name="gateway-housekeeping")
        )
        await server.start()
        log.info(
            "gateway_web",
            dashboard=f"http://{settings.gateway_host}:{server.port}/",
            api=f"http://{settings.gateway_host}:{server.port}{API_PREFIX}/openapi.json",
            status=f"http://{settings.gateway_host}:{server.port}/status",
        )
        if secret is None:
            log.warning(
                "line_not_configured", hint="set FAO_LINE_CHANNEL_SECRET: every webhook is refused (503)"
            )
        if isinstance(line, NoLine):
            log.warning("line_replies_off", hint="set FAO_LINE_CHANNEL_ACCESS_TOKEN to reply in LINE")

    async def on_stop(rt: Runtime) -> None:
        try:
            await server.stop()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for watch in rejections:
                await watch.stop()
            for waiter in outcomes:
                await waiter.stop()
            await results.stop()
            for catalog in catalogs:
                await catalog.stop()
            for followed in state_catalogs:
                await followed.stop()
            if isinstance(line, SdkLine):
                await line.stop()

    async def webhook_serving() -> bool:
        return server.serving()

    return ServiceApp(
        SERVICE,
        settings,
        broker,
        indexes=[*INDEXES, IndexSpec(LOGIN_SLOTS, [("at", 1)])],
        on_start=on_start,
        on_stop=on_stop,
        extra_health={"webhook": webhook_serving},
        singleton=False,
    )


async def _housekeeping(
    store: GatewayStore, reports: Reports, settings: GatewaySettings, limiter: LoginLimiter
) -> None:
    """Pending reports, incident ids of reports (every interval); old event ids and rate-limit
    slots, and old sign-in slots (every minute). Idempotent, so every replica may run it."""
    loop = asyncio.get_running_loop()
    last_forget = 0.0
    retention = timedelta(seconds=settings.webhook_event_retention)
    slot_age = timedelta(seconds=settings.oa_report_window * 2)
    while True:
        await asyncio.sleep(settings.housekeeping_interval)
        try:
            now = utc_now()
            await reports.housekeeping(now)
            if loop.time() - last_forget >= FORGET_EVERY:
                last_forget = loop.time()
                forgotten = await store.forget_old(now, retention, slot_age)
                forgotten += await limiter.forget_old(now)
                if forgotten:
                    log.info("gateway_forgot_old_records", count=forgotten)
        except UNAVAILABLE as exc:
            log.warning("housekeeping_failed", error=f"{type(exc).__name__}: {exc}")
