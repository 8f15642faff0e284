"""The dashboard in a real browser (Playwright driving Debian's chromium, headless, kept off the
network): a person signs in, sees an incident appear on the live overview when a local target goes
down (real prober, correlator and gateway processes over nats-server and FerretDB), acknowledges
it, and sees the incident's timeline change. Screenshots are kept in ``test-artifacts/``.

Playwright never downloads a browser here: ``/usr/bin/chromium`` comes from Debian's package
(``make system-deps``); without it the test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, async_playwright
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import Target
from tests.integration.scenario import scenario

from fao.gateway.access import create_user
from fao.runtime.launch import free_port
from fao.runtime.store import Document

CHROMIUM: Final = Path("/usr/bin/chromium")
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD: Final = "a long test password"
# Headless, no sandbox (root in CI), and nothing but loopback: every other name resolves to
# nothing, and chromium's own background traffic (updates, sync, metrics) is off.
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--no-pings",
    "--metrics-recording-only",
]

INVENTORY = """
teams:
  - id: apps
    name: ทีมพัฒนาระบบงาน
systems:
  - id: e-service
    name: e-Service portal
    name_th: ระบบบริการอิเล็กทรอนิกส์
    team: apps
    public: true
monitors:
  - id: e-service-home
    system: e-service
    name: หน้าแรก
    check: {{type: http, url: "http://127.0.0.1:{port}/", expected_status: [200], keyword: "e-Service"}}
    interval: 1s
    timeout: 500ms
    recheck_interval: 200ms
    confirm: {{failures: 2, of: 3}}
    quiet_period: 2s
"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_sign_in_see_an_incident_appear_acknowledge_it_and_see_the_timeline(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document], browser: Browser
) -> None:
    target = Target()
    await target.start()
    port = free_port()
    inventory = INVENTORY.format(port=target.port)
    try:
        async with scenario(tmp_path, nats_url, mongo_url, mongo_db, inventory, services=()) as sc:
            sc.env.update(FAO_GATEWAY_PORT=str(port), FAO_WEB_COOKIE_SECURE="false", FAO_WEB_COMMAND_WAIT="5")
            for name in ("correlator", "prober", "gateway"):
                await asyncio.to_thread(sc.start, name)
            await create_user(mongo_db, "somchai", PASSWORD, "operator", datetime.now(UTC))
            base = f"http://127.0.0.1:{port}"
            page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            problems: list[str] = []  # console errors: a CSP refusal, a failed script or request
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            hosts: set[str] = set()  # every host a page asked for: the gateway's only
            page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
            try:
                await page.goto(f"{base}/")
                assert page.url.startswith(f"{base}/login")
                await page.fill("input[name=username]", "somchai")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("#sign-in")
                await page.wait_for_selector("#who")
                assert page.url == f"{base}/"
                await page.wait_for_selector("#no-incidents")

                target.down = True
                # the overview refreshes itself (htmx polling): no reload here
                incident = page.locator("li.incident[data-incident]")
                await incident.first.wait_for(timeout=45_000)
                assert await page.locator("li.system.down[data-system=e-service]").count() == 1
                await _screenshot(page, "dashboard-overview-incident.png")

                await incident.first.locator("button.ack").click()
                await page.wait_for_selector("#command-outcome")
                assert "done=applied" in page.url, sc.logs()[-4000:]
                acknowledged = page.locator('#timeline li[data-type="acknowledged"]')
                await acknowledged.wait_for(timeout=15_000)
                assert "somchai" in await acknowledged.inner_text()
                assert "รับทราบ" in await acknowledged.inner_text()
                assert await page.locator("#incident-status").inner_text() == "รับทราบแล้ว"
                await _screenshot(page, "dashboard-incident-acknowledged.png")

                target.down = False
                resolved = page.locator('#timeline li[data-type="resolved"]')
                await resolved.wait_for(timeout=30_000)  # the timeline fragment refreshes too
                await _screenshot(page, "dashboard-incident-resolved.png")

                await page.goto(f"{base}/monitors")
                await page.wait_for_selector("tr[data-monitor=e-service-home] svg.spark")
                await _screenshot(page, "dashboard-monitors.png")
                await page.goto(f"{base}/status")
                public = await page.content()
                assert "ระบบบริการอิเล็กทรอนิกส์" in public
                assert f"127.0.0.1:{target.port}" not in public
                assert "e-service-home" not in public
                await _screenshot(page, "status-page.png")
                assert problems == []
                assert hosts == {f"127.0.0.1:{port}"}, "nothing is loaded from elsewhere"
            finally:
                await page.close()
    finally:
        await target.stop()
    assert (ARTIFACTS / "dashboard-incident-acknowledged.png").stat().st_size > 1000
