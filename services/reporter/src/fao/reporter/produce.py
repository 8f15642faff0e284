"""Produce a report's files: read the facts, compute the figures, render each format, write files.

Used by `fao report` (with a progress bar) and by the reporter's scheduler. Files are named
``fao-report-<period>[-en].<suffix>`` and written atomically (a temporary file renamed), so a
reader never sees half a PDF and a second producer of the same report just replaces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from pymongo.asynchronous.database import AsyncDatabase

from fao.reporter.archive import ReportFile
from fao.reporter.availability import MonthlyReport, ReportOptions, summarize_with_previous
from fao.reporter.formats import FORMATS, RenderContext, renderer
from fao.reporter.localize import Formatter, Language
from fao.reporter.periods import ReportPeriod
from fao.reporter.read_model import FactStore
from fao.runtime.store import Document

# A step of a report's production, for progress bars: "facts", "figures", then each format.
Progress = Callable[[str], None]
READ_STEPS: Final = ("facts", "figures")


@dataclass(frozen=True)
class ReportRequest:
    period: ReportPeriod
    formats: Sequence[str] = FORMATS
    language: Language = "th"
    thai_digits: bool = False
    options: ReportOptions = field(default_factory=ReportOptions)

    def steps(self) -> tuple[str, ...]:
        return (*READ_STEPS, *self.formats)

    def formatter(self) -> Formatter:
        return Formatter(self.language, thai_digits=self.thai_digits)


async def load_report(
    db: AsyncDatabase[Document], request: ReportRequest, now: datetime, progress: Progress | None = None
) -> MonthlyReport:
    """The figures of `request.period` as of `now`, with the change against the period before."""
    for name in request.formats:
        renderer(name)  # an unknown format fails before any work
    store = FactStore(db)
    start = request.period.previous().bounds()[0]
    end = request.period.bounds()[1]
    facts = await store.facts(start, end)
    systems = await store.systems()
    if progress is not None:
        progress("facts")
    report = summarize_with_previous(
        request.period, systems, facts.facts, now, options=request.options, skipped=facts.skipped
    )
    report = report.model_copy(update={"owner_review": await store.owner_review(end)})
    if progress is not None:
        progress("figures")
    return report


def file_stem(period: ReportPeriod, language: Language) -> str:
    return f"fao-report-{period.key}" + ("" if language == "th" else f"-{language}")


class ReportOutputError(Exception):
    """The report's files cannot be written where asked (no such folder or no rights, a file in
    the way, a full disk); the message names the place and the reason."""


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # never written, or the folder refuses this too
            partial.unlink()
        raise ReportOutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_files(
    report: MonthlyReport, request: ReportRequest, out_dir: Path, progress: Progress | None = None
) -> list[ReportFile]:
    """Render every requested format of `report` into `out_dir` (created if missing); a place
    that cannot be written raises `ReportOutputError`."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportOutputError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from exc
    context = RenderContext(report, request.formatter())
    stem = file_stem(request.period, request.language)
    written = []
    for name in request.formats:
        output = renderer(name)
        data = output.render(context)
        path = out_dir / f"{stem}{output.suffix}"
        _write_atomically(path, data)
        written.append(ReportFile(name, path, len(data), hashlib.sha256(data).hexdigest()))
        if progress is not None:
            progress(name)
    return written
