"""``fao.runtime.service``'s connection policy, in process and as a process: a NATS connection closed
for good stops the service (and never wedges the event loop in FastStream's pull loop), /healthz
tells, and a stop always ends within the grace period, even when the event loop is stuck."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fao.runtime.consume import subscribe
from fao.runtime.launch import free_port, start_ferretdb, start_nats
from fao.runtime.service import NatsConnectionClosedError, ServiceApp, new_broker, serve
from fao.runtime.settings import ServiceSettings
from fao.schemas import Command
from fao.schemas import subjects as s


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


async def ignore(_: Command) -> None:
    return None


class LoopWatch:
    """Measures the longest time the event loop went without running this ticker."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@pytest.fixture
async def loop_watch() -> AsyncIterator[LoopWatch]:
    async with LoopWatch() as watch:
        yield watch


async def test_a_connection_closed_for_good_stops_the_service_without_wedging_the_loop(
    nats_url: str, loop_watch: LoopWatch
) -> None:
    """The issue's trigger: a message under max_payload whose headers push it over. The server
    closes the connection (no reconnect follows); FastStream's pull loop retries its fetch at once.
    Before ``_Connection`` that retry never yielded: the loop (and this test) hung at 100 % CPU."""
    port = free_port()
    settings = ServiceSettings(nats_url=nats_url, http_port=port, log_level="warning")
    broker = new_broker(settings)
    subscribe(
        broker, "t-closed", subject=s.COMMANDS_SUBJECTS, stream=s.COMMANDS_STREAM, durable="t-closed",
        model=Command, handler=ignore, title="t", description="a pull consumer on the closing connection",
    )  # fmt: skip
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(ServiceApp("t-closed", settings, broker, uses_mongo=False), stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 15.0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            nc = broker.connection
            await asyncio.sleep(0.3)  # the pull loop is waiting in a fetch
            loop_watch.longest = 0.0
            closed_at = time.monotonic()
            await nc.publish("fao.t.oversized", b"x" * (nc.max_payload - 16), headers={"Fao-Pad": "y" * 64})
            health: list[int] = []
            while not task.done():
                with contextlib.suppress(httpx.TransportError):
                    health.append((await client.get("/healthz", timeout=1.0)).status_code)
                await asyncio.sleep(0.1)
        with pytest.raises(NatsConnectionClosedError):
            await task
        stopped_after = time.monotonic() - closed_at
    finally:
        stop.set()
        with contextlib.suppress(NatsConnectionClosedError):
            await asyncio.wait_for(task, 15.0)
    assert nc.is_closed
    print(
        f"\nstopped {stopped_after:.2f} s after the server closed the connection; loop stalled at most {loop_watch.longest * 1000:.0f} ms"
    )
    assert stopped_after < 5.0, f"stopped {stopped_after:.1f} s after the connection closed"
    assert loop_watch.longest < 1.0, f"the event loop stalled for {loop_watch.longest:.2f} s"
    assert 503 in health, f"/healthz said {health} while the service was going down"


async def wait_health(client: httpx.AsyncClient, wanted: int, within: float) -> tuple[float, dict[str, bool]]:
    """Seconds until /healthz answers ``wanted``, and its checks then."""
    started = time.monotonic()
    while True:
        reply = await client.get("/healthz", timeout=1.0)
        if reply.status_code == wanted:
            return time.monotonic() - started, reply.json()["checks"]
        assert time.monotonic() - started < within, f"/healthz still {reply.status_code}: {reply.text}"
        await asyncio.sleep(0.05)


async def test_healthz_follows_mongodb_going_away_and_coming_back(nats_url: str, tmp_path: Path) -> None:
    mongo_port, http_port = free_port(), free_port()
    ferretdb = start_ferretdb(tmp_path / "ferretdb", mongo_port)
    settings = ServiceSettings(
        nats_url=nats_url,
        mongo_url=ferretdb.url,
        mongo_db="t_health",
        http_port=http_port,
        log_level="warning",
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(ServiceApp("t-mongo", settings, new_broker(settings)), stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 20.0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            _, checks = await wait_health(client, 200, 5.0)
            assert checks == {"running": True, "nats": True, "mongo": True, "event_loop": True}
            ferretdb.stop()
            failing_after, checks = await wait_health(client, 503, 10.0)
            assert checks["mongo"] is False
            assert checks["nats"] is True
            ferretdb = start_ferretdb(tmp_path / "ferretdb", mongo_port)
            healthy_after, _ = await wait_health(client, 200, 30.0)
        print(
            f"\n/healthz 503 {failing_after:.2f} s after MongoDB stopped, 200 {healthy_after:.2f} s after it was back"
        )
        assert failing_after < 5.0
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)
        ferretdb.stop()


WEDGED_SCRIPT = """
import time
from fao.runtime.service import ServiceApp, new_broker, run
from fao.runtime.settings import ServiceSettings

settings = ServiceSettings()

async def wedge(_):
    import asyncio
    print('{"event": "wedging"}', flush=True)
    asyncio.get_running_loop().call_later(0.2, lambda: time.sleep(3600))  # the loop never runs again

run(lambda: ServiceApp("t-wedged", settings, new_broker(settings), on_start=wedge, uses_mongo=False))
"""


@contextlib.asynccontextmanager
async def script_until(
    script: str, env: dict[str, str], marker: bytes
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[bytes]]]:
    """Run ``script`` in a new Python process until a line of its output holds ``marker``; yield
    the process and the lines so far. On leaving, the rest of its output is added to the lines (a
    process still running is killed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(20):
            while marker not in (line := await proc.stdout.readline()):
                assert line, b"".join(lines).decode()
                lines.append(line)
        yield proc, lines
        lines.extend((await proc.stdout.read()).splitlines())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_stops_a_process_whose_event_loop_is_stuck_within_the_grace_period(
    nats_url: str,
) -> None:
    grace = 2.0
    env = {**os.environ, "FAO_NATS_URL": nats_url, "FAO_HTTP_PORT": "-1", "FAO_STOP_GRACE": str(grace)}
    async with script_until(WEDGED_SCRIPT, env, b"wedging") as (proc, lines):
        await asyncio.sleep(0.5)  # now stuck in time.sleep
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), grace + 5)
        took = time.monotonic() - sent
    print(f"\nexited {took:.2f} s after SIGTERM with a stuck event loop (grace {grace} s)")
    events = [json.loads(line).get("event") for line in lines if line.startswith(b"{")]
    assert code == 1, b"\n".join(lines).decode()
    assert "stop_timeout" in events, events
    assert grace <= took < grace + 1.0, f"exited {took:.2f} s after SIGTERM (grace {grace} s)"


async def test_a_nats_outage_is_logged_in_lines_not_tracebacks(tmp_path: Path) -> None:
    """Found black-box (NATS stopped for 3 minutes under ``fao dev up``): besides the service's own
    one-line ``nats_connection_error``, FastStream logged every connection error again as
    "Connection broken with ..." with its traceback, ≈80 lines each, twice every 10 s per KV
    watcher for as long as NATS was away (5,000 lines in 90 s). A real prober process, NATS
    stopped under it: no such line and no traceback in 12 s of outage."""
    server = start_nats(tmp_path / "nats")
    env = {
        **os.environ,
        "FAO_NATS_URL": server.url,
        "FAO_HTTP_PORT": "-1",
        "FAO_PROBER_ID": "p-log",
        "FAO_ZONE": "z1",
        "FAO_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fao.prober", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[bytes] = []

    def events() -> list[str]:
        return [str(json.loads(line).get("event")) for line in lines if line.startswith(b"{")]

    async def read_until(event: str | None, seconds: float) -> None:
        """Collect output lines until ``event`` is logged (or, with None, for ``seconds``)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while line := await proc.stdout.readline():  # type: ignore[union-attr]
                    lines.append(line)
                    if event is not None and event in events():
                        return
        assert event is None, f"no {event} within {seconds} s:\n" + b"".join(lines).decode()

    try:
        await read_until("service_started", 30)
        server.stop()
        await read_until("nats_disconnected", 10)
        await read_until(None, 12)  # KV watchers and result publishes time out meanwhile
    finally:
        server.stop()
        proc.terminate()
        lines.extend((await asyncio.wait_for(proc.stdout.read(), 20)).splitlines(keepends=True))
        await proc.wait()
    output = b"".join(lines).decode(errors="replace")
    assert "nats_connection_error" in events(), output
    assert not [e for e in events() if e.startswith("Connection broken")], output
    assert "Traceback" not in output, output


IDLE_SCRIPT = """
from fao.runtime.service import ServiceApp, new_broker, run
from fao.runtime.settings import ServiceSettings

settings = ServiceSettings()

async def started(_):
    print('{"event": "idle"}', flush=True)

run(lambda: ServiceApp("t-idle", settings, new_broker(settings), on_start=started, uses_mongo=False))
"""


async def test_a_service_paused_and_resumed_still_stops_on_sigterm(nats_url: str) -> None:
    """SIGSTOP then SIGCONT (Ctrl-Z and fg, a paused prober) made Python's sigtimedwait hand the
    guard a siginfo with a garbage signal number; the guard thread died on it (ValueError) and the
    service no longer heard SIGTERM (fao dev up had to kill it after 15 s)."""
    env = {**os.environ, "FAO_NATS_URL": nats_url, "FAO_HTTP_PORT": "-1", "FAO_STOP_GRACE": "5"}
    async with script_until(IDLE_SCRIPT, env, b'"idle"') as (proc, lines):
        for _ in range(3):
            proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    output = b"\n".join(lines).decode()
    assert code == 0, output
    assert "Traceback" not in output
    events = [json.loads(line).get("event") for line in lines if line.startswith(b"{")]
    assert "service_stopped" in events, events
