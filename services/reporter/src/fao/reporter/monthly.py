"""Produce the monthly report files (HTML and JSON) from the read model."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fao.reporter.availability import MonthlyReport, summarize
from fao.reporter.read_model import FactStore
from fao.reporter.render import render_html, render_json
from fao.runtime.store import connect
from fao.runtime.thai import Month


async def build_report(store: FactStore, month: Month, now: datetime) -> MonthlyReport:
    start, end = month.bounds()
    facts = [
        f
        for f in await store.facts()
        if f.started_at < end and (f.resolved_at is None or f.resolved_at >= start)
    ]
    return summarize(month, await store.systems(), facts, now)


def write_files(report: MonthlyReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"fao-report-{report.month}"
    html, js = stem.with_suffix(".html"), stem.with_suffix(".json")
    html.write_text(render_html(report), encoding="utf-8")
    js.write_text(render_json(report), encoding="utf-8")
    return [html, js]


async def write_report(
    mongo_url: str, mongo_db: str, month_text: str, out_dir: Path, now: datetime
) -> list[Path]:
    """``fao report YYYY-MM``: raises ``ValueError`` with a readable message for a bad month."""
    month = Month.parse(month_text)
    client = connect(mongo_url)
    try:
        report = await build_report(FactStore(client[mongo_db]), month, now)
    finally:
        await client.close()
    return write_files(report, out_dir)
