"""Browser journeys: Debian's chromium driven by Playwright, for pages whose scripts matter.

One headless chromium per prober process, started on the first browser check (≈1.5 s here) and
kept; each check gets a fresh browser context (its own cookies and storage), closed afterwards.
The browser is ``FAO_CHROMIUM`` or ``/usr/bin/chromium`` (Debian's package ``chromium``): Fao never
downloads a browser. Steps run in order, each timed; the first failing one is the detail
(``step 3 (click #login): …``) and the outcome carries a screenshot of the page at that moment
(a PNG, or a JPEG when the PNG is over 512 KiB; none, logged, when that is too): the runner keeps
it in the ``fao-screenshots`` object store, else as a file (``fao.prober.screenshots``).

=============================================  ======================
outcome                                        ErrorKind
=============================================  ======================
the journey's time ran out                     ``TIMEOUT``
connection refused / name unknown / other      ``CONNECTION_REFUSED`` / ``DNS`` / ``CONNECTION_ERROR``
certificate not valid                          ``TLS``
``goto`` answered with a status ≥ 400          ``HTTP_STATUS``
``expect_text`` never appeared                 ``KEYWORD``
``wait_for``/``click``/``fill`` target missing ``UNEXPECTED_ANSWER``
no chromium, a secret not set                  ``INTERNAL``
=============================================  ======================
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import structlog
from playwright.async_api import Browser, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from fao.prober.checks.contract import (
    DETAIL_MAX,
    MissingSecretError,
    Outcome,
    Screenshot,
    describe_exception,
    elapsed_ms,
    secret,
    short_detail,
)
from fao.runtime.bus import SCREENSHOT_MAX_BYTES
from fao.schemas import BrowserCheck, BrowserStep, ErrorKind, Observations, StepTiming

log = structlog.get_logger()

DEFAULT_CHROMIUM = "/usr/bin/chromium"
JPEG_QUALITY = 60
"""The quality of the JPEG taken instead of a PNG over ``SCREENSHOT_MAX_BYTES``."""
_ENV = re.compile(r"\$\{env:([A-Z][A-Z0-9_]*)\}")
_NET_ERRORS: tuple[tuple[str, ErrorKind], ...] = (
    ("ERR_CONNECTION_REFUSED", ErrorKind.CONNECTION_REFUSED),
    ("ERR_NAME_NOT_RESOLVED", ErrorKind.DNS),
    ("ERR_CERT_", ErrorKind.TLS),
    ("ERR_SSL_", ErrorKind.TLS),
    ("ERR_TIMED_OUT", ErrorKind.TIMEOUT),
)


class _StepFailedError(Exception):
    def __init__(self, kind: ErrorKind, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status


def chromium_path() -> str | None:
    """The chromium this prober would use, or ``None`` when it is not installed."""
    path = os.environ.get("FAO_CHROMIUM", DEFAULT_CHROMIUM)
    return path if os.access(path, os.X_OK) else None


def _fill_secrets(text: str) -> str:
    return _ENV.sub(lambda m: secret(m.group(1)) or "", text)


class BrowserChecker:
    """Runs ``BrowserCheck`` specs. Call ``aclose()`` to stop the browser."""

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._starting = asyncio.Lock()

    async def _get_browser(self, executable: str) -> Browser:
        async with self._starting:
            if self._browser is None or not self._browser.is_connected():
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=executable, headless=True, args=["--no-sandbox"]
                )
            return self._browser

    async def run(self, spec: BrowserCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - the check's own timeout is part of its contract: the checker reports it as data
        started = time.perf_counter()
        executable = chromium_path()
        if executable is None:
            return Outcome.failure(
                ErrorKind.INTERNAL,
                f"no chromium at {os.environ.get('FAO_CHROMIUM', DEFAULT_CHROMIUM)}: install Debian's chromium"
                " (apt-get install chromium) or set FAO_CHROMIUM",
                0.0,
            )
        steps: list[StepTiming] = []
        status: int | None = None
        page: Page | None = None
        try:
            browser = await self._get_browser(executable)
            context = await browser.new_context(ignore_https_errors=not spec.verify_tls)
        except Exception as exc:  # the browser would not start
            return Outcome.failure(
                ErrorKind.INTERNAL, f"chromium did not start: {describe_exception(exc)}", 0.0
            )
        try:
            page = await context.new_page()
            deadline = started + timeout
            for step in spec.steps:
                step_started = time.perf_counter()
                remaining_ms = max(1.0, (deadline - step_started) * 1000.0)
                try:
                    status = await _run_step(page, step, remaining_ms) or status
                except BaseException:
                    steps.append(StepTiming(name=step.label, ms=elapsed_ms(step_started), ok=False))
                    raise
                steps.append(StepTiming(name=step.label, ms=elapsed_ms(step_started), ok=True))
        except _StepFailedError as exc:
            return await self._failed(spec, page, exc.kind, exc.reason, started, steps, exc.status)
        except MissingSecretError as exc:
            return await self._failed(spec, page, ErrorKind.INTERNAL, str(exc), started, steps, status)
        except PlaywrightTimeoutError:
            reason = f"journey timed out after {timeout:g}s"
            return await self._failed(spec, page, ErrorKind.TIMEOUT, reason, started, steps, status)
        except PlaywrightError as exc:
            kind, reason = _classify(exc)
            return await self._failed(spec, page, kind, reason, started, steps, status)
        finally:
            await context.close()
        return Outcome.success(elapsed_ms(started), status, observations=Observations(steps=steps))

    async def _failed(
        self,
        spec: BrowserCheck,
        page: Page | None,
        kind: ErrorKind,
        reason: str,
        started: float,
        steps: list[StepTiming],
        status: int | None,
    ) -> Outcome:
        number = max(1, len(steps))
        shot: Screenshot | None = None
        note = ""
        if page is not None:
            try:
                shot = await _capture(page)
            except PlaywrightError:
                note = " (no screenshot)"
            else:
                if shot is None:
                    note = f" (screenshot over {SCREENSHOT_MAX_BYTES // 1024} KiB, not kept)"
        # a long step or reason is cut, never the note after it
        failed = short_detail(
            f"step {number} ({spec.steps[number - 1].label}): {reason}", max(40, DETAIL_MAX - len(note))
        )
        return Outcome.failure(
            kind,
            failed + note,
            elapsed_ms(started),
            status,
            observations=Observations(steps=steps),
            screenshot=shot,
        )

    async def aclose(self) -> None:
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        if browser is not None:
            await browser.close()
        if playwright is not None:
            await playwright.stop()


async def _run_step(page: Page, step: BrowserStep, timeout_ms: float) -> int | None:
    """Run one action; the HTTP status when it loaded a page."""
    if step.goto is not None:
        response = await page.goto(_fill_secrets(step.goto), timeout=timeout_ms)
        if response is not None and response.status >= 400:
            raise _StepFailedError(ErrorKind.HTTP_STATUS, f"HTTP {response.status}", response.status)
        return response.status if response is not None else None
    if step.expect_text is not None:
        try:
            await page.get_by_text(step.expect_text).first.wait_for(timeout=timeout_ms)
        except PlaywrightTimeoutError:
            raise _StepFailedError(ErrorKind.KEYWORD, f"text {step.expect_text!r} not found") from None
        return None
    selector = step.click or step.fill or step.wait_for or ""
    try:
        if step.click is not None:
            await page.click(selector, timeout=timeout_ms)
        elif step.fill is not None:
            await page.fill(selector, _fill_secrets(step.value or ""), timeout=timeout_ms)
        else:
            await page.wait_for_selector(selector, timeout=timeout_ms)
    except PlaywrightTimeoutError:
        raise _StepFailedError(ErrorKind.UNEXPECTED_ANSWER, f"no element {selector!r} on the page") from None
    return None


async def _capture(page: Page) -> Screenshot | None:
    """The visible page as a PNG, or a JPEG when the PNG is over ``SCREENSHOT_MAX_BYTES``;
    ``None`` (logged) when even the JPEG is."""
    png = await page.screenshot(type="png", timeout=1000)
    if len(png) <= SCREENSHOT_MAX_BYTES:
        return Screenshot(png, "png")
    jpeg = await page.screenshot(type="jpeg", quality=JPEG_QUALITY, timeout=1000)
    if len(jpeg) <= SCREENSHOT_MAX_BYTES:
        return Screenshot(jpeg, "jpg")
    log.warning(
        "screenshot_too_large",
        url=page.url,
        png_bytes=len(png),
        jpeg_bytes=len(jpeg),
        limit=SCREENSHOT_MAX_BYTES,
        hint="the failure is reported without its screenshot",
    )
    return None


def _classify(exc: PlaywrightError) -> tuple[ErrorKind, str]:
    message = exc.message.splitlines()[0] if exc.message else str(exc)
    for marker, kind in _NET_ERRORS:
        if marker in message:
            return kind, message.split(": ", 1)[-1]
    return ErrorKind.CONNECTION_ERROR, message
