"""`fao report`: produce a report on demand, and rebuild the read model from the stream."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import nats

from fao.reporter.availability import ReportOptions
from fao.reporter.formats import FORMATS
from fao.reporter.localize import Language
from fao.reporter.periods import ReportPeriod
from fao.reporter.produce import Progress, ReportRequest, load_report, write_files
from fao.reporter.read_model import FactStore
from fao.reporter.replay import Progress as ReplayProgress
from fao.reporter.replay import ReplayResult, replay
from fao.runtime.store import connect


def report_request(
    period_text: str,
    *,
    formats: Sequence[str] = FORMATS,
    language: Language = "th",
    thai_digits: bool = False,
    include_maintenance: bool = False,
    worst: int = 10,
) -> ReportRequest:
    """What to produce; ValueError with a readable message for a bad period or format."""
    return ReportRequest(
        period=ReportPeriod.parse(period_text),
        formats=tuple(formats),
        language=language,
        thai_digits=thai_digits,
        options=ReportOptions(include_maintenance=include_maintenance, worst_count=worst),
    )


async def produce_report(
    mongo_url: str,
    mongo_db: str,
    request: ReportRequest,
    out_dir: Path,
    now: datetime,
    progress: Progress | None = None,
) -> list[Path]:
    client = connect(mongo_url)
    try:
        report = await load_report(client[mongo_db], request, now, progress)
    finally:
        await client.close()
    return [f.path for f in write_files(report, request, out_dir, progress)]


async def write_report(
    mongo_url: str, mongo_db: str, month_text: str, out_dir: Path, now: datetime
) -> list[Path]:
    """Every format of the Thai report of `month_text` ("2026-10" or "fy2570") into `out_dir`."""
    return await produce_report(mongo_url, mongo_db, report_request(month_text), out_dir, now)


async def rebuild(
    mongo_url: str, mongo_db: str, nats_url: str, progress: ReplayProgress | None = None
) -> ReplayResult:
    """Replay the incident stream into `report_facts` (`fao.reporter.replay`)."""
    nc = await nats.connect(nats_url)
    client = connect(mongo_url)
    try:
        return await replay(nc.jetstream(), FactStore(client[mongo_db]), progress)
    finally:
        await client.close()
        await nc.close()
