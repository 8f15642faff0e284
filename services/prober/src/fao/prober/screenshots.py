"""Where a failing check's screenshot goes: the ``fao-screenshots`` object store, else a file.

A browser check that fails hands the runner a screenshot (``Outcome.screenshot``). The runner gives
it to ``ScreenshotKeeper.keep`` with the monitor and the check's start time: it is put in the
JetStream object store under ``subjects.screenshot_name`` (the same name for the same check) and
that name goes into the result's ``observations.screenshot``, which the correlator carries onto
the incident and the dashboard shows. When the store cannot take it (no NATS connection given, the
bucket missing, NATS away, slower than ``timeout``), the image is written to ``FAO_SCREENSHOT_DIR``
(default ``~/.cache/fao/screenshots``) and its path added to the detail, as before 1.4. The check's
verdict never depends on the screenshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import datetime
from pathlib import Path

import structlog
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from fao.prober.checks.contract import Outcome, describe_exception, short_detail
from fao.runtime.bus import screenshots_bucket
from fao.schemas import Observations
from fao.schemas.subjects import screenshot_name

log = structlog.get_logger()

RESULT_DETAIL_MAX = 500
"""``CheckResult.detail``'s limit: the checker's detail plus the local file's path fit in it."""
STORE_TIMEOUT = 5.0


def screenshot_dir() -> Path:
    """The folder of screenshots kept on this prober (``FAO_SCREENSHOT_DIR``)."""
    return Path(os.environ.get("FAO_SCREENSHOT_DIR", Path.home() / ".cache" / "fao" / "screenshots"))


class ScreenshotKeeper:
    """Keeps screenshots in the object store reached through ``js`` (``None``: files only)."""

    def __init__(
        self, js: JetStreamContext | None, folder: Path | None = None, timeout: float = STORE_TIMEOUT
    ) -> None:
        self._js = js
        self._folder = folder
        self._timeout = timeout
        self._store: ObjectStore | None = None
        self.stored = 0
        """Screenshots put in the object store."""
        self.saved = 0
        """Screenshots written as files instead."""

    async def keep(self, monitor_id: str, started_at: datetime, outcome: Outcome) -> Outcome:
        """``outcome`` without its screenshot, the screenshot's object name in its observations
        (or, when kept as a file, the path in its detail). Never raises."""
        shot = outcome.screenshot
        if shot is None:
            return outcome
        name = screenshot_name(monitor_id, started_at, shot.extension)
        if self._js is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    if self._store is None:
                        self._store = await screenshots_bucket(self._js, create=False)
                    await self._store.put(name, shot.data)
            except Exception as exc:  # the screenshot never fails the check
                log.warning(
                    "screenshot_not_stored",
                    monitor_id=monitor_id,
                    error=describe_exception(exc),
                    hint="kept as a file on this prober (FAO_SCREENSHOT_DIR)",
                )
            else:
                self.stored += 1
                observations = (outcome.observations or Observations()).model_copy(
                    update={"screenshot": name}
                )
                return dataclasses.replace(outcome, observations=observations, screenshot=None)
        folder = self._folder if self._folder is not None else screenshot_dir()
        path = folder / name.replace("/", "-")
        try:
            await asyncio.to_thread(_write, path, shot.data)
            note = f" (screenshot {path})"
            self.saved += 1
        except OSError as exc:
            note = f" (no screenshot: {describe_exception(exc)})"
        # a long detail is cut, never the path after it
        detail = short_detail(outcome.detail, max(40, RESULT_DETAIL_MAX - len(note))) + note
        return dataclasses.replace(outcome, detail=detail[:RESULT_DETAIL_MAX], screenshot=None)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
