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


async def _quiet(_exc: Exception) -> None:
    """nats-py's default error callback logs a traceback; `fao report` reports the failure itself."""


async def rebuild(
    mongo_url: str, mongo_db: str, nats_url: str, progress: ReplayProgress | None = None
) -> ReplayResult:
    """Replay the incident stream into `report_facts` (`fao.reporter.replay`). A NATS server that
    cannot be reached fails within seconds (nats-py's defaults retried for two minutes, printing
    a traceback for each attempt)."""
    # nats-py waits for ever on a refused first connect unless it may retry at least once.
    nc = await nats.connect(
        nats_url, connect_timeout=5, max_reconnect_attempts=1, reconnect_time_wait=0.5, error_cb=_quiet
    )
    client = connect(mongo_url)
    try:
        return await replay(nc.jetstream(), FactStore(client[mongo_db]), progress)
    finally:
        await client.close()
        await nc.close()
