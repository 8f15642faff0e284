"""The scheduled monthly report on real NATS and FerretDB with the fake LINE API: two reporters fed
by the incident stream produce October's report exactly once, store it with its metadata and push
one Thai summary to the management group; a reporter started afterwards (a restart) does not
produce it again."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
import structlog
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from structlog.testing import capture_logs

import fao.reporter.app as reporter_app
from fao.reporter.app import Reporter, ReportScheduler, build_reporter
from fao.reporter.archive import REPORTS
from fao.reporter.line_push import retry_key
from fao.reporter.read_model import FACTS
from fao.reporter.requests import REPORT_REQUESTS
from fao.reporter.settings import ReporterSettings
from fao.runtime.inventory import SYSTEMS, TEAMS
from fao.runtime.launch import free_port
from fao.runtime.store import Document
from fao.schemas import Incident, IncidentEvent, System, Team
from fao.schemas.subjects import INCIDENTS_STREAM, REPORTER_CONSUMER
from fao.testing.fake_line import FakeLineServer
from fao.testing.inprocess import serving

GROUP = "C" + "a" * 32
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 2 Nov 10:00 Bangkok: October is due (day 1, 06:00)
T0 = datetime(2026, 10, 5, 7, 3, tzinfo=UTC)


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for: {what}")


def incident_event(
    incident_id: str, system_id: str, status: str, at: datetime, **fields: object
) -> IncidentEvent:
    incident = Incident.model_validate(
        {"id": incident_id, "system_id": system_id, "status": status, "title": "หน้าเว็บไม่ตอบสนอง",
         "started_at": T0, "severity": "critical", "alerted": True, **fields}
    )  # fmt: skip
    return IncidentEvent(
        event_id=uuid4(), type="opened" if status == "open" else "resolved", at=at, incident=incident
    )


async def test_two_reporters_produce_the_monthly_report_once(
    js: JetStreamContext,
    nats_url: str,
    mongo_url: str,
    mongo_db: AsyncDatabase[Document],
    fake_line: FakeLineServer,
    tmp_path: Path,
) -> None:
    team = Team(id="apps", name="ทีมพัฒนาระบบงาน")
    await mongo_db[TEAMS].insert_one({"_id": team.id, **team.model_dump(mode="json")})
    for system in (
        System(id="payroll", name="Payroll", name_th="ระบบเงินเดือน", team="apps", sla_target=99.9),
        System(id="web", name="Website", team="apps"),
    ):
        await mongo_db[SYSTEMS].insert_one({"_id": system.id, **system.model_dump(mode="json")})
    events = [
        incident_event("inc-1", "payroll", "open", T0),
        incident_event(
            "inc-1", "payroll", "resolved", T0 + timedelta(hours=1), resolved_at=T0 + timedelta(hours=1)
        ),
    ]
    for e in events:
        await js.publish(f"fao.incidents.v1.{e.type}", e.model_dump_json().encode())

    settings = ReporterSettings(
        nats_url=nats_url, mongo_url=mongo_url, mongo_db=mongo_db.name, http_port=-1,
        reports_dir=tmp_path / "reports", report_day=1, report_hour=6, report_check_interval=0.1,
        report_line_group=GROUP, line_channel_access_token="test-token", line_api_base=fake_line.base_url,
    )  # fmt: skip
    reporters: list[Reporter] = [build_reporter(settings, clock=lambda: NOW) for _ in range(2)]

    async def done() -> bool:
        doc = await mongo_db[REPORTS].find_one({"_id": "report:2026-10"})
        return doc is not None and doc.get("state") == "done"

    async with serving(reporters[0].app), serving(reporters[1].app):
        await until(done, 60, "October's report stored as done")
        seen = [r.scheduler.checks for r in reporters]

        async def both_looked_again() -> bool:
            return all(r.scheduler.checks >= n + 2 for r, n in zip(reporters, seen, strict=True))

        await until(both_looked_again, 10, "both reporters looked at the schedule twice more")

    assert sorted(key for r in reporters for key in r.scheduler.produced) == ["2026-10"]
    [push] = fake_line.pushes
    assert push["to"] == GROUP
    [request] = [r for r in fake_line.requests if r.path.endswith("/push")]
    assert request.headers["x-line-retry-key"] == retry_key("2026-10", GROUP)
    text = push["messages"][0]["text"]
    assert text.startswith("รายงานสรุปเหตุขัดข้องระบบเทคโนโลยีสารสนเทศ ประจำเดือนตุลาคม พ.ศ. 2569\n")
    assert "ความพร้อมใช้งานเฉลี่ย 99.933% (2 ระบบ)" in text
    assert "ระบบที่ต่ำสุด: ระบบเงินเดือน 99.866%" in text
    assert text.endswith(str(tmp_path / "reports" / "fao-report-2026-10.pdf"))

    doc = await mongo_db[REPORTS].find_one({"_id": "report:2026-10"})
    assert doc is not None
    assert (doc["period"], doc["kind"], doc["attempt"], doc["language"]) == ("2026-10", "month", 1, "th")
    assert doc["generated_at"] == NOW
    assert doc["figures"]["incident_count"] == 1
    assert doc["figures"]["worst_system_ids"] == ["payroll"]
    assert doc["line"]["retry_key"] == retry_key("2026-10", GROUP)
    assert [f["format"] for f in doc["files"]] == ["html", "pdf", "xlsx", "json"]
    for stored in doc["files"]:
        data = await asyncio.to_thread(Path(stored["path"]).read_bytes)
        assert stored["size"] == len(data)
        assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert await mongo_db[FACTS].count_documents({}) == 1

    restarted = build_reporter(settings, clock=lambda: NOW)
    async with serving(restarted.app):
        await until(lambda: _checked(restarted, 2), 10, "the restarted reporter looked twice")
    assert restarted.scheduler.produced == []
    assert len(fake_line.pushes) == 1


async def test_before_its_consumer_exists_the_reporter_is_not_caught_up(
    js: JetStreamContext, tmp_path: Path
) -> None:
    """A first look at the schedule can come before the subscriber has made the durable consumer:
    that is "not read to the end yet" (wait), not a failed check."""
    scheduler = ReportScheduler(ReporterSettings(reports_dir=tmp_path))
    assert await scheduler.caught_up(js) is False
    await js.add_consumer(INCIDENTS_STREAM, ConsumerConfig(durable_name=REPORTER_CONSUMER))
    assert await scheduler.caught_up(js) is True


async def _checked(reporter: Reporter, n: int) -> bool:
    return reporter.scheduler.checks >= n


async def test_a_report_asked_for_from_the_web_is_produced_once_by_two_reporters(
    js: JetStreamContext, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    """`report_requests` (the gateway's API writes them): September, which the schedule does not
    produce any more, is produced once by either of two reporters; a second request for the same
    month is answered with that report; a request for a period that is not one fails with why."""
    team = Team(id="apps", name="Apps")
    await mongo_db[TEAMS].insert_one({"_id": team.id, **team.model_dump(mode="json")})
    system = System(id="web", name="Website", team="apps")
    await mongo_db[SYSTEMS].insert_one({"_id": system.id, **system.model_dump(mode="json")})
    await js.publish(
        "fao.incidents.v1.opened", incident_event("inc-1", "web", "open", T0).model_dump_json().encode()
    )
    for request_id, period in (("r1", "2026-09"), ("r2", "2026-09"), ("r3", "2026-13")):
        await mongo_db[REPORT_REQUESTS].insert_one(
            {"_id": request_id, "period": period, "status": "queued", "requested_by": "somchai", "at": NOW}
        )
    settings = ReporterSettings(
        nats_url=nats_url, mongo_url=mongo_url, mongo_db=mongo_db.name, http_port=-1,
        reports_dir=tmp_path / "reports", report_day=1, report_hour=6, report_check_interval=0.1,
    )  # fmt: skip
    reporters = [build_reporter(settings, clock=lambda: NOW) for _ in range(2)]

    async def answered_and_october_done() -> bool:
        # The requests can be answered before the schedule's October (each look tries the
        # schedule first, but it waits while the stream is not read to its end).
        october = await mongo_db[REPORTS].find_one({"_id": "report:2026-10"})
        queued = await mongo_db[REPORT_REQUESTS].count_documents({"status": "queued"})
        return queued == 0 and october is not None and october.get("state") == "done"

    async with serving(reporters[0].app), serving(reporters[1].app):
        await until(answered_and_october_done, 60, "every request answered and October's report done")
    assert sorted(key for r in reporters for key in r.scheduler.produced) == ["2026-09", "2026-10"]
    requests = {d["_id"]: d async for d in mongo_db[REPORT_REQUESTS].find({})}
    assert (requests["r1"]["status"], requests["r1"]["report_id"]) == ("done", "report:2026-09")
    assert (requests["r2"]["status"], requests["r2"]["report_id"]) == ("done", "report:2026-09")
    assert requests["r3"]["status"] == "failed"
    assert "2026-13" in requests["r3"]["error"]
    september = await mongo_db[REPORTS].find_one({"_id": "report:2026-09"})
    assert september is not None
    assert september["state"] == "done"
    assert september["line"] is None, "asked for: no LINE summary"


async def test_a_look_while_mongodb_is_away_is_one_warning_line_without_a_traceback(
    js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found black-box (FerretDB stopped 3 minutes): every look logged a full traceback."""
    await js.add_consumer(INCIDENTS_STREAM, ConsumerConfig(durable_name=REPORTER_CONSUMER))
    scheduler = ReportScheduler(
        ReporterSettings(reports_dir=tmp_path, report_check_interval=0.05), clock=lambda: NOW
    )
    away: AsyncMongoClient[Document] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=100&connectTimeoutMS=100"
    )
    try:
        with capture_logs() as logs:
            # a logger of its own: the module's may be bound already to another test's output
            monkeypatch.setattr(reporter_app, "log", structlog.get_logger())
            task = asyncio.create_task(scheduler.run(away["fao"], js))
            await until(lambda: _looked(scheduler, 2), 20, "two looks while MongoDB is away")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await away.close()
    failed = [entry for entry in logs if entry["event"] == "report_check_failed"]
    assert len(failed) >= 2
    assert all(entry["log_level"] == "warning" and "exc_info" not in entry for entry in failed)
    assert all(entry["error"].startswith("ServerSelectionTimeoutError: ") for entry in failed)
    assert all(len(entry["error"]) < 400 for entry in failed), failed[0]["error"]


async def _looked(scheduler: ReportScheduler, n: int) -> bool:
    return scheduler.checks >= n
