"""A failing browser journey's screenshot through the real runner: into the ``fao-screenshots``
object store on a real nats-server, its name in the result's observations; a file on the prober
when the store is missing. Skipped, with the reason, where chromium is not installed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from nats.js import JetStreamContext

from fao.prober.checks import CheckerRegistry
from fao.prober.checks.browser import BrowserChecker, chromium_path
from fao.prober.runner import ProbeRunner
from fao.prober.scheduler import Scheduler
from fao.prober.screenshots import ScreenshotKeeper
from fao.runtime.bus import SCREENSHOT_MAX_BYTES, screenshots_bucket
from fao.schemas import CheckResult, ErrorKind, Monitor
from fao.schemas.subjects import SCREENSHOT_NAME, SCREENSHOTS_BUCKET, screenshot_name

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

NOISE_PAGE = """<!doctype html><html><body style="margin:0"><canvas id="c" width="1280" height="720">
</canvas><script>
const c = document.getElementById("c").getContext("2d"); const img = c.createImageData(1280, 720);
for (let i = 0; i < img.data.length; i++) {
  img.data[i] = (i % 4 === 3) ? 255 : 96 + Math.floor(Math.random() * 48); }
c.putImageData(img, 0, 0);
</script><p>noise</p></body></html>"""


class Sink:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self.changed = asyncio.Event()

    async def submit(self, result: CheckResult) -> None:
        self.results.append(result)
        self.changed.set()

    async def first(self, within: float = 20.0) -> CheckResult:
        async with asyncio.timeout(within):
            while not self.results:
                self.changed.clear()
                await self.changed.wait()
        return self.results[0]


class StartNow:
    """Every monitor's grid starts when it is planned: the first check runs at once."""

    def phase(self, monitor_id: str, interval: float) -> float:
        return time.monotonic()

    def jitter(self, monitor_id: str, interval: float, slot: float, bound: float) -> float:
        return 0.0


async def _page(request: web.Request) -> web.Response:
    return web.Response(text="<h1>Service unavailable today</h1>", content_type="text/html")


async def _noise(request: web.Request) -> web.Response:
    return web.Response(text=NOISE_PAGE, content_type="text/html")


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/portal", _page)
    app.router.add_get("/noise", _noise)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture(autouse=True)
def shots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("FAO_SCREENSHOT_DIR", str(tmp_path / "shots"))
    return tmp_path / "shots"


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*")) if folder.exists() else []


def _monitor(url: str, text: str = "Welcome") -> Monitor:
    return Monitor.model_validate(
        {
            "id": "eservice-login",
            "system": "eservice",
            "check": {"type": "browser", "steps": [{"goto": url}, {"expect_text": text}]},
            "interval": 300.0,
            "timeout": 3.0,
        }
    )


async def _run_once(monitor: Monitor, keeper: ScreenshotKeeper) -> CheckResult:
    registry = CheckerRegistry({"browser": BrowserChecker()})
    sink = Sink()
    runner = ProbeRunner(
        Scheduler(StartNow()), registry, sink, zone="default", prober_id="p1", screenshots=keeper
    )
    task = asyncio.create_task(runner.run())
    try:
        runner.upsert(monitor)
        return await sink.first()
    finally:
        runner.stop()
        await task
        await registry.aclose()


async def test_a_failing_journeys_screenshot_lands_in_the_object_store_and_its_name_in_the_result(
    js: JetStreamContext, site: str, shots: Path
) -> None:
    keeper = ScreenshotKeeper(js)
    result = await _run_once(_monitor(f"{site}/portal"), keeper)
    assert not result.ok
    assert result.error_kind is ErrorKind.KEYWORD
    assert result.detail == "step 2 (expect_text Welcome): text 'Welcome' not found"
    assert result.observations is not None
    name = result.observations.screenshot
    assert name == screenshot_name("eservice-login", result.started_at, "png")
    assert SCREENSHOT_NAME.match(name)
    stored = await (await js.object_store(SCREENSHOTS_BUCKET)).get(name)
    assert stored.data is not None
    assert stored.data.startswith(b"\x89PNG")
    assert (keeper.stored, keeper.saved) == (1, 0)
    assert _files(shots) == [], "stored in the object store: no file on the prober"


async def test_without_the_bucket_the_screenshot_is_a_file_on_the_prober(
    js: JetStreamContext, site: str, shots: Path
) -> None:
    await js.delete_object_store(SCREENSHOTS_BUCKET)
    keeper = ScreenshotKeeper(js)
    result = await _run_once(_monitor(f"{site}/portal"), keeper)
    assert result.error_kind is ErrorKind.KEYWORD, "the check's verdict does not depend on the screenshot"
    assert result.observations is not None
    assert result.observations.screenshot is None
    [shot] = _files(shots)
    assert shot.name == f"{screenshot_name('eservice-login', result.started_at, 'png').replace('/', '-')}"
    assert result.detail.endswith(f"not found (screenshot {shot})")
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert (keeper.stored, keeper.saved) == (0, 1)


async def test_a_screenshot_too_large_as_png_is_stored_as_a_bounded_jpeg(
    js: JetStreamContext, site: str
) -> None:
    result = await _run_once(_monitor(f"{site}/noise", "never there"), ScreenshotKeeper(js))
    assert result.observations is not None
    assert result.observations.screenshot is not None
    name = result.observations.screenshot
    assert name.endswith(".jpg"), name
    store = await screenshots_bucket(js, create=False)
    data = (await store.get(name)).data
    assert data is not None
    assert data.startswith(b"\xff\xd8")
    assert len(data) <= SCREENSHOT_MAX_BYTES
