"""The reporter process: keeps ``report_facts`` current from the incident stream, and produces last
month's report by itself once it is due (`fao.reporter.schedule`), exactly once across replicas
and restarts (`fao.reporter.archive`), then pushes a short summary to the management LINE group.

The scheduler looks every `report_check_interval` seconds. Before claiming a report it checks that
the reporter's durable consumer has nothing pending, so a reporter that was down does not report on
a read model still catching up. Rendering (matplotlib, WeasyPrint) runs in a worker thread: the
event loop keeps consuming and answering `/healthz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats.errors
import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from fao.reporter.archive import ReportArchive, ReportFile
from fao.reporter.availability import MonthlyReport, ReportOptions
from fao.reporter.line_push import LineTarget, push_summary
from fao.reporter.periods import ReportPeriod
from fao.reporter.produce import ReportRequest, load_report, write_files
from fao.reporter.read_model import INDEXES, FactStore
from fao.reporter.requests import REPORT_REQUESTS, finish_request
from fao.reporter.schedule import latest_due, report_id
from fao.reporter.settings import ReporterSettings
from fao.reporter.summary import report_link, summary_text
from fao.runtime.brief import brief
from fao.runtime.consume import subscribe
from fao.runtime.service import Runtime, ServiceApp, StartupError, new_broker
from fao.runtime.settings import ServiceSettings
from fao.runtime.store import Document
from fao.schemas import IncidentEvent
from fao.schemas import subjects as s

log = structlog.get_logger()
SERVICE = "reporter"
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReportScheduler:
    """Produces the latest due monthly report if nobody has (one `check` per interval)."""

    settings: ReporterSettings
    clock: Clock = _utc_now
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    checks: int = 0  # completed looks (tests wait on it instead of sleeping)
    produced: list[str] = field(default_factory=list)  # periods this instance produced

    def request(self, period: ReportPeriod) -> ReportRequest:
        return ReportRequest(
            period=period,
            formats=self.settings.formats(),
            language=self.settings.report_language,
            thai_digits=self.settings.report_thai_digits,
            options=ReportOptions(
                include_maintenance=self.settings.report_include_maintenance,
                worst_count=self.settings.report_worst,
            ),
        )

    async def caught_up(self, js: JetStreamContext) -> bool:
        """Whether the reporter's consumer has read the incident stream to its end (False before
        the consumer exists: the first look can come before the subscriber has made it)."""
        try:
            info = await js.consumer_info(s.INCIDENTS_STREAM, s.REPORTER_CONSUMER)
        except NotFoundError:
            return False
        return not (info.num_pending or info.num_ack_pending)

    async def check(self, db: AsyncDatabase[Document], js: JetStreamContext) -> None:
        now = self.clock()
        settings = self.settings
        period = ReportPeriod.month(latest_due(now, settings.report_day, settings.report_hour))
        await self.produce(db, js, period, now, push=True)

    async def produce(
        self,
        db: AsyncDatabase[Document],
        js: JetStreamContext,
        period: ReportPeriod,
        now: datetime,
        *,
        push: bool,
    ) -> bool:
        """Produce ``period``'s report unless it is done (True) or cannot be now (False: the stream
        is not read to its end yet, or another reporter holds a live claim); ``push``: send the
        LINE summary too."""
        settings = self.settings
        archive = ReportArchive(db)
        current = await archive.get(period)
        if current is not None and current.get("state") == "done":
            return True
        if not await self.caught_up(js):
            log.info("report_waiting_for_stream", period=period.key)
            return False
        timeout = timedelta(seconds=settings.report_claim_timeout)
        attempt = await archive.claim(period, self.holder, now, timeout)
        if attempt is None:
            return False
        log.info("report_claimed", period=period.key, attempt=attempt)
        request = self.request(period)
        report = await load_report(db, request, now)
        assert settings.reports_dir is not None  # `run` only starts with a reports folder
        files = await asyncio.to_thread(write_files, report, request, settings.reports_dir)
        line = await self._push(period, report, request, files) if push else None
        await archive.complete(period, report, files, request.language, line)
        self.produced.append(period.key)
        log.info("report_produced", period=period.key, files=[str(f.path) for f in files], line=line)
        return True

    async def serve_requests(self, db: AsyncDatabase[Document], js: JetStreamContext) -> None:
        """Produce the reports asked for from the web face (``report_requests``, status
        ``queued``): each period once, whichever reporter gets its claim; a request whose period
        is done (by the schedule or an earlier request) is answered with that report."""
        for request in await db[REPORT_REQUESTS].find({"status": "queued"}).to_list():
            try:
                period = ReportPeriod.parse(str(request.get("period", "")))
            except ValueError as exc:
                await finish_request(db, request["_id"], "failed", self.clock(), error=str(exc))
                continue
            if await self.produce(db, js, period, self.clock(), push=False):
                await finish_request(
                    db, request["_id"], "done", self.clock(), report_id=report_id(period.key)
                )

    async def _push(
        self, period: ReportPeriod, report: MonthlyReport, request: ReportRequest, files: list[ReportFile]
    ) -> Document | None:
        settings = self.settings
        if settings.report_line_group is None:
            return None
        if settings.line_channel_access_token is None:
            log.warning("report_summary_not_sent", reason="FAO_LINE_CHANNEL_ACCESS_TOKEN is not set")
            return None
        link = report_link(files, settings.report_link_base)
        target = LineTarget(
            base_url=settings.line_api_base,
            access_token=settings.line_channel_access_token.get_secret_value(),
            group=settings.report_line_group,
            timeout=settings.line_timeout,
            attempts=settings.report_line_attempts,
        )
        return await push_summary(
            target, period.key, summary_text(report, request.formatter(), link), self.clock()
        )

    async def run(self, db: AsyncDatabase[Document], js: JetStreamContext) -> None:
        while True:
            try:
                await self.check(db, js)
                await self.serve_requests(db, js)
            except (PyMongoError, nats.errors.Error, OSError, TimeoutError) as exc:
                # MongoDB or NATS away: one line per look (the next look tries again), no traceback
                log.warning("report_check_failed", error=f"{type(exc).__name__}: {brief(exc)}")
            except Exception:
                log.exception("report_check_failed")
            self.checks += 1
            await asyncio.sleep(self.settings.report_check_interval)


def _check_writable(folder: Path) -> None:
    """The reports folder can be made and written, or the service does not start (was: the month
    claimed, then a traceback at every look while the claim was held)."""
    probe = folder / f".fao-write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"cannot write reports to {folder} ({exc.strerror or exc}); set FAO_REPORTS_DIR to a folder"
            " the reporter may write, or leave it unset for no scheduled report"
        ) from None


@dataclass
class Reporter:
    app: ServiceApp
    scheduler: ReportScheduler


def build_reporter(settings: ServiceSettings | None = None, clock: Clock = _utc_now) -> Reporter:
    """The service; with `FAO_REPORTS_DIR` set it also produces the monthly report on schedule."""
    if settings is None:
        settings = ReporterSettings()
    elif not isinstance(settings, ReporterSettings):
        settings = ReporterSettings(**settings.model_dump())
    broker = new_broker(settings)
    ready: dict[str, FactStore] = {}
    scheduler = ReportScheduler(settings, clock)
    tasks: list[asyncio.Task[None]] = []

    async def record(event: IncidentEvent) -> None:
        if await ready["facts"].record(event):
            log.info("fact_recorded", incident=event.incident.id, type=event.type)

    subscribe(
        broker, SERVICE, subject=s.INCIDENTS_SUBJECTS, stream=s.INCIDENTS_STREAM,
        durable=s.REPORTER_CONSUMER, model=IncidentEvent, handler=record,
        max_deliveries=2880,  # about a day of a database outage before a fact is dead-lettered
        title="reporter/incidents",
        description="Every incident event; folded into the report read model.",
    )  # fmt: skip

    async def on_start(rt: Runtime) -> None:
        ready["facts"] = FactStore(rt.db)
        if settings.reports_dir is None:
            log.info("report_schedule_off", reason="FAO_REPORTS_DIR is not set")
            return
        await asyncio.to_thread(_check_writable, settings.reports_dir)
        tasks.append(asyncio.create_task(scheduler.run(rt.db, rt.js), name="report-scheduler"))

    async def on_stop(rt: Runtime) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = ServiceApp(SERVICE, settings, broker, indexes=INDEXES, on_start=on_start, on_stop=on_stop)
    return Reporter(app, scheduler)


def build(settings: ServiceSettings | None = None) -> ServiceApp:
    return build_reporter(settings).app
