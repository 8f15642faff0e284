"""Browser journeys in Debian's chromium (Playwright) against a local aiohttp app whose login only
works with JavaScript. Skipped, with the reason, where chromium is not installed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fao.prober.checks.browser import BrowserChecker, chromium_path
from fao.prober.checks.contract import DETAIL_MAX
from fao.prober.screenshots import ScreenshotKeeper
from fao.schemas import BrowserCheck, ErrorKind

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

PASSWORD = "br0wser-pass"
LOGIN_PAGE = """<!doctype html><html><body>
<input id="user"><input id="password" type="password"><button id="login">Log in</button>
<p id="message"></p>
<script>
document.getElementById("login").addEventListener("click", async () => {
  const body = new URLSearchParams({user: document.getElementById("user").value,
                                    password: document.getElementById("password").value});
  const answer = await fetch("/api/login", {method: "POST", body});
  if (answer.ok) { window.location = "/home"; }
  else { document.getElementById("message").textContent = "Invalid login"; }
});
</script></body></html>"""


async def _login_page(request: web.Request) -> web.Response:
    return web.Response(text=LOGIN_PAGE, content_type="text/html")


async def _api_login(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("user") == "monitor" and form.get("password") == PASSWORD:
        response = web.Response(text="ok")
        response.set_cookie("s", "1")
        return response
    return web.Response(status=401, text="no")


async def _home(request: web.Request) -> web.Response:
    if request.cookies.get("s") != "1":
        raise web.HTTPFound("/login")
    return web.Response(text="<h1>Welcome, monitor</h1>", content_type="text/html")


async def _broken(request: web.Request) -> web.Response:
    return web.Response(status=500, text="error")


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/login", _login_page)
    app.router.add_post("/api/login", _api_login)
    app.router.add_get("/home", _home)
    app.router.add_get("/broken", _broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture(scope="module")
async def checker() -> AsyncIterator[BrowserChecker]:
    checker = BrowserChecker()
    yield checker
    await checker.aclose()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAO_TEST_BROWSER_PASSWORD", PASSWORD)
    monkeypatch.setenv("FAO_SCREENSHOT_DIR", str(tmp_path / "shots"))


def _journey(base: str, *extra: dict[str, Any], login_path: str = "/login") -> BrowserCheck:
    steps: list[dict[str, Any]] = [
        {"name": "login page", "goto": f"{base}{login_path}"},
        {"fill": "#user", "value": "monitor"},
        {"fill": "#password", "value": "${env:FAO_TEST_BROWSER_PASSWORD}"},
        {"click": "#login"},
        {"name": "welcome", "expect_text": "Welcome, monitor"},
        *extra,
    ]
    return BrowserCheck.model_validate({"steps": steps})


async def test_javascript_login_journey_passes(checker: BrowserChecker, site: str) -> None:
    outcome = await checker.run(_journey(site), 20.0)
    assert outcome.ok, outcome.detail
    assert outcome.observations is not None
    assert [s.name for s in outcome.observations.steps] == [
        "login page", "fill #user", "fill #password", "click #login", "welcome",
    ]  # fmt: skip
    assert all(s.ok for s in outcome.observations.steps)


async def test_wrong_password_fails_at_the_expected_text_with_a_screenshot(
    checker: BrowserChecker, site: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAO_TEST_BROWSER_PASSWORD", "wrong")
    outcome = await checker.run(_journey(site), 2.5)
    assert outcome.error_kind is ErrorKind.KEYWORD
    assert outcome.detail == "step 5 (welcome): text 'Welcome, monitor' not found"
    assert outcome.screenshot is not None
    assert outcome.screenshot.extension == "png"
    assert outcome.screenshot.data.startswith(b"\x89PNG")
    assert not (tmp_path / "shots").exists(), "the checker writes no file: the runner keeps the image"


async def test_a_long_failing_step_keeps_the_screenshot_path_whole(
    checker: BrowserChecker, site: str, tmp_path: Path
) -> None:
    """Kept as a file (no object store), the detail is cut in the step's text, never in the path."""
    text = "Welcome to the e-service of the ministry, " * 10
    outcome = await checker.run(_journey(site, {"expect_text": text.strip()}), 2.5)
    assert outcome.error_kind is ErrorKind.KEYWORD
    assert len(outcome.detail) <= DETAIL_MAX
    started = datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC)
    kept = await ScreenshotKeeper(None).keep("portal-login", started, outcome)
    [shot] = (tmp_path / "shots").glob("*.png")
    assert shot.name == "portal-login-20261130T010203456789Z.png"
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert kept.screenshot is None
    assert kept.detail.startswith("step 6 (expect_text Welcome to the e-service")
    assert kept.detail.endswith(f"… (screenshot {shot})")


async def test_missing_element_status_and_refusal(
    checker: BrowserChecker, site: str, closed_port: int
) -> None:
    missing = await checker.run(_journey(site, {"click": "#logout"}), 2.5)
    assert missing.error_kind is ErrorKind.UNEXPECTED_ANSWER
    assert missing.detail.startswith("step 6 (click #logout): no element '#logout' on the page")
    broken = await checker.run(_journey(site, login_path="/broken"), 5.0)
    assert broken.error_kind is ErrorKind.HTTP_STATUS
    assert broken.http_status == 500
    refused = await checker.run(_journey(f"http://127.0.0.1:{closed_port}"), 5.0)
    assert refused.error_kind is ErrorKind.CONNECTION_REFUSED


async def test_unset_secret_is_internal(
    checker: BrowserChecker, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAO_TEST_BROWSER_PASSWORD")
    outcome = await checker.run(_journey(site), 5.0)
    assert outcome.error_kind is ErrorKind.INTERNAL
    assert "FAO_TEST_BROWSER_PASSWORD" in outcome.detail


async def test_a_page_that_never_loads_times_out(checker: BrowserChecker) -> None:
    hang = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hang.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        outcome = await checker.run(BrowserCheck.model_validate({"steps": [{"goto": url}]}), 1.0)
    finally:
        hang.set()
        server.close()
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert outcome.detail.startswith(f"step 1 (goto {url}): journey timed out after 1s")


def test_steps_are_one_action_each_and_start_with_goto() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        BrowserCheck.model_validate({"steps": [{"goto": "http://h/", "click": "#a"}]})
    with pytest.raises(ValueError, match="first step must be a goto"):
        BrowserCheck.model_validate({"steps": [{"click": "#a"}]})
    with pytest.raises(ValueError, match="fill needs a value"):
        BrowserCheck.model_validate({"steps": [{"goto": "http://h/"}, {"fill": "#a"}]})
