"""`fao report`: produce a report (and optionally rebuild the read model first) with a progress
bar on a terminal (rich; nothing extra when the output is not a terminal)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from fao.reporter.formats import FORMATS
from fao.reporter.localize import LANGUAGES, Language
from fao.reporter.monthly import produce_report, rebuild, report_request
from fao.runtime.settings import ServiceSettings


@contextmanager
def _bar(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), transient=True,
    ) as progress:  # fmt: skip
        yield progress


def run_report(
    settings: ServiceSettings,
    period: str | None,
    out: Path,
    *,
    formats: Sequence[str] | None,
    language: str,
    thai_digits: bool,
    include_maintenance: bool,
    worst: int,
    rebuild: bool,
    show_progress: bool | None = None,
) -> list[str]:
    """What `fao report` prints: one line per written file (and the rebuild's counts first)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    request = None
    if period is not None:
        request = report_request(
            period,
            formats=formats or FORMATS,
            language=cast(Language, language),
            thai_digits=thai_digits,
            include_maintenance=include_maintenance,
            worst=worst,
        )
    lines: list[str] = []
    enabled = sys.stderr.isatty() if show_progress is None else show_progress
    with _bar(enabled) as progress:
        if rebuild:
            lines.append(_rebuild(settings, progress))
        if request is not None:
            task: TaskID | None = None
            if progress is not None:
                task = progress.add_task(f"report {request.period.key}", total=len(request.steps()))

            def step(name: str) -> None:
                if progress is not None and task is not None:
                    progress.update(task, advance=1, description=f"report {request.period.key}: {name}")

            paths = asyncio.run(
                produce_report(settings.mongo_url, settings.mongo_db, request, out, datetime.now(UTC), step)
            )
            lines += [str(path) for path in paths]
    return lines


def _rebuild(settings: ServiceSettings, progress: Progress | None) -> str:
    task = progress.add_task("replaying incident stream", total=None) if progress is not None else None

    def step(read: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=read, total=total)

    result = asyncio.run(rebuild(settings.mongo_url, settings.mongo_db, settings.nats_connect_url(), step))
    return (
        f"rebuilt report_facts: {result.messages} events, {result.incidents} incidents, "
        f"{result.facts_written} facts written, {result.unreadable} unreadable events skipped"
    )
