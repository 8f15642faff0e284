"""A failing browser journey's screenshot kept on the incident, end to end: real prober (Debian's
chromium), correlator and gateway processes over nats-server and FerretDB. The prober puts the
screenshot in the ``fao-screenshots`` object store and names it in the result; the correlator's
incident (its ``opened`` event and the stored incident) carries the name; the gateway shows the
image on the incident page to a signed-in viewer (the image really renders in chromium) and
serves it to a viewer token, and to nobody else. Skipped, with the reason, without chromium.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from aiohttp import web
from playwright.async_api import async_playwright
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually
from tests.integration.scenario import scenario
from tests.integration.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

from fao.gateway.access import create_token, create_user
from fao.runtime.bus import screenshots_bucket
from fao.runtime.launch import free_port
from fao.runtime.store import Document
from fao.schemas import IncidentEvent
from fao.schemas import subjects as s
from fao.schemas.subjects import SCREENSHOT_NAME

PASSWORD: Final = "a long test password"
INVENTORY = """
teams:
  - id: apps
    name: ทีมพัฒนาระบบงาน
systems:
  - id: e-service
    name: e-Service portal
    team: apps
    public: true
monitors:
  - id: e-service-login
    system: e-service
    check:
      type: browser
      steps:
        - {{goto: "http://127.0.0.1:{port}/login"}}
        - {{name: welcome, expect_text: "Welcome back"}}
    interval: 30s
    timeout: 3s
    recheck_interval: 500ms
    confirm: {{failures: 2, of: 3}}
"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture
async def portal() -> AsyncIterator[int]:
    """A login page whose "Welcome back" never comes (the e-service is broken)."""

    async def login(_: web.Request) -> web.Response:
        return web.Response(text="<h1>Service temporarily unavailable</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/login", login)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_the_incident_carries_the_failures_screenshot_and_the_dashboard_shows_it_to_viewers_only(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document], portal: int
) -> None:
    port = free_port()
    async with scenario(
        tmp_path, nats_url, mongo_url, mongo_db, INVENTORY.format(port=portal), services=()
    ) as sc:
        sc.env.update(
            FAO_GATEWAY_PORT=str(port),
            FAO_WEB_COOKIE_SECURE="false",
            FAO_SCREENSHOT_DIR=str(tmp_path / "prober-shots"),
        )
        for name in ("correlator", "prober", "gateway"):
            await asyncio.to_thread(sc.start, name)

        async def opened() -> list[dict[str, Any]]:
            return await sc.incidents({"system_id": "e-service", "status": "open"})

        async def has_screenshot() -> bool:
            return any(doc.get("screenshots") for doc in await opened())

        await eventually(has_screenshot, 60, f"an incident with a screenshot\n{sc.logs()[-6000:]}")
        [incident] = await opened()
        [name] = incident["screenshots"]
        assert SCREENSHOT_NAME.match(name)
        assert name.startswith("e-service-login/")
        last = await sc.js.get_last_msg(s.INCIDENTS_STREAM, s.incident_subject("opened"))
        assert last.data is not None
        event = IncidentEvent.model_validate_json(last.data)
        assert event.incident.screenshots == [name], "the opened event carries it too"
        stored = await (await screenshots_bucket(sc.js, create=False)).get(name)
        assert stored.data is not None
        assert stored.data.startswith(b"\x89PNG")
        assert not (tmp_path / "prober-shots").exists(), "kept in the object store, not on the prober"

        now = datetime.now(UTC)
        await create_user(mongo_db, "somsri", PASSWORD, "viewer", now)
        token = (
            await create_token(mongo_db, name="wall screen", owner="somsri", role="viewer", now=now)
        ).token
        base = f"http://127.0.0.1:{port}"
        image_path = f"/incidents/{incident['_id']}/screenshots/0"
        async with httpx.AsyncClient(base_url=base) as anonymous:
            refused = await anonymous.get(image_path)
            assert refused.status_code == 303
            assert refused.headers["location"].startswith("/login")
            api = await anonymous.get(f"/api/v1{image_path}")
            assert api.status_code == 401
            detail = await anonymous.get(
                f"/api/v1/incidents/{incident['_id']}", headers={"Authorization": f"Bearer {token}"}
            )
            assert detail.json()["screenshots"] == [{"name": name, "url": f"/api/v1{image_path}"}]
            served = await anonymous.get(f"/api/v1{image_path}", headers={"Authorization": f"Bearer {token}"})
            assert served.status_code == 200
            assert served.content == stored.data
            status_page = await anonymous.get("/status")
            assert "screenshot" not in status_page.text

        os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page()
                await page.goto(f"{base}/incidents/{incident['_id']}")
                await page.fill("input[name=username]", "somsri")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("#sign-in")
                image = page.locator(f'#screenshots img[src="{image_path}"]')
                await image.wait_for(timeout=15_000)
                await page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0", arg=await image.element_handle()
                )
                width = await image.evaluate("img => img.naturalWidth")
                assert width == 1280, "the prober's viewport, as the browser decoded it"
            finally:
                await browser.close()
