"""Bench: CPU cost of an HTTP check through the prober's real hot path, publishing to NATS.

Runs N HTTP checks (default 5,000) per phase at concurrency 50 against a local aiohttp.web server
that runs in a separate process on 127.0.0.1, with a real nats-server (JetStream, Fao's streams)
started for the run, and prints checks/s (wall), CPU µs per check of this process
(``time.process_time``) and **checks per CPU-second**. Phases of each run:

* ``bare``: a plain aiohttp ``ClientSession(TCPConnector(force_close=True))`` loop reading each body,
  exactly the notes' "aiohttp new conn" row (156 µs asyncio / 127 µs uvloop on the reference box).
  It calibrates this machine: loopback TCP costs differ a lot between machines and VMs.
* ``checker``: ``HttpChecker.run`` alone, 50 workers in a loop (the HTTP part of a check).
* ``single``: ``ProbeRunner`` + ``Scheduler`` + ``HttpChecker`` + ``CheckResult``, each result
  published as its own JetStream message awaiting its own ack (``fao.results.<monitor>``, 256 at a
  time, every 50 ms): the prober's publishing before result batches, kept here as the baseline.
* ``full``: the prober's path today: the same, with ``Batcher`` + ``BatchingSink`` publishing
  ``ResultBatch`` messages (``fao.results.batch.<zone>.<partition>``).
* ``bookkeeping``: the ``full`` path with an in-process checker that answers at once (no network):
  what the prober adds to each check on top of the HTTP exchange, publishing included. Stable
  where network phases are noisy.

Every phase that publishes ends when JetStream has acknowledged all N results; the results are then
counted from the stream (outside the measured time; the stream is purged between phases) and the
phase fails unless all N are there. The nats-server's own CPU per check is printed beside.

CPU time is measured around the checks after a warm-up, as in the notes; monitors are built and a
full garbage collection is run before the clock starts (otherwise the 5,000 just-built monitors
trigger full collections inside the measured window, which a long-running prober does not see).
"Normalized" scales ``full`` by (reference ``bare`` / measured ``bare``) to estimate the cost on
the reference box. With 2+ CPUs the target server and nats-server are pinned to CPU 0 and this
process to CPU 1.

    python bench/prober_http.py [-n 5000] [--concurrency 50] [--runs 3] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import aiohttp
import nats
from aiohttp import web
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from fao.prober.batches import Batch, Batcher
from fao.prober.checks import CheckerRegistry, Outcome
from fao.prober.checks.http import HttpChecker
from fao.prober.runner import ProbeRunner
from fao.prober.scheduler import Scheduler
from fao.prober.sink import BatchingSink
from fao.runtime.bus import ensure_bus
from fao.runtime.launch import LocalServer, start_nats
from fao.schemas import CheckResult, HttpCheck, Monitor
from fao.schemas import subjects as s
from fao.schemas.results import ResultMessage

EXPORTER_US_PER_CHECK = 280.0
REFERENCE_BARE_US = {"asyncio": 156.0, "uvloop": 127.0}  # aiohttp, new connection, reference box
BODY = b"fao bench target ok " * 10  # 200 bytes, like the nginx target in the notes
MAX_CHECKS = 200_000
PHASES = ("bare", "checker", "single", "full", "bookkeeping")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


def _run(main: Callable[[], Coroutine[Any, Any, None]], use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop  # optional: imported only when asked for

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


def _serve(port_queue: multiprocessing.Queue[tuple[int, int]], stop: EventType, use_uvloop: bool) -> None:
    """Server process: answer GET / with 200 and a 200-byte body; report the port, then the count."""
    _pin(0)
    served = 0

    async def hello(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        return web.Response(body=BODY, content_type="text/plain")

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_queue.put((runner.addresses[0][1], 0))
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        port_queue.put((0, served))
        await runner.cleanup()

    _run(serve, use_uvloop)


@dataclass(frozen=True)
class Phase:
    name: str
    checks: int
    wall: float
    cpu: float
    failures: int
    server_cpu: float = 0.0  # nats-server's CPU seconds during the phase

    @property
    def rate(self) -> float:
        return self.checks / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.checks * 1e6

    @property
    def per_cpu_second(self) -> float:
        return self.checks / self.cpu

    @property
    def ratio(self) -> float:
        return EXPORTER_US_PER_CHECK / self.cpu_us


class _StartNow:
    """Cadence whose grid starts when a monitor is first planned: new monitors are due at once,
    which keeps the runner saturated."""

    def __init__(self) -> None:
        self._phases: dict[str, float] = {}

    def phase(self, monitor_id: str, interval: float) -> float:
        return self._phases.setdefault(monitor_id, time.monotonic())

    def jitter(self, monitor_id: str, interval: float, slot: float, bound: float) -> float:
        return 0.0


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class _Progress:
    """Results JetStream has acknowledged; ``reached`` is set once there are ``target``."""

    def __init__(self) -> None:
        self.acked = 0
        self.target = 0
        self.reached = asyncio.Event()

    def add(self, count: int) -> None:
        self.acked += count
        if self.acked >= self.target:
            self.reached.set()

    async def wait_for(self, target: int) -> None:
        self.target = target
        self.reached.clear()
        if self.acked < target:
            await self.reached.wait()


class _PerResultSink:
    """The prober's publishing before result batches: results buffered (256, 50 ms) and each
    published as its own JetStream message awaiting its own ack."""

    def __init__(self, js: JetStreamContext, progress: _Progress) -> None:
        self._js = js
        self._progress = progress
        self._buffer: list[CheckResult] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, result: CheckResult) -> None:
        self._buffer.append(result)
        if self._task is None:
            self._task = asyncio.create_task(self._loop())
        if len(self._buffer) >= 256:
            self._full.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._full.wait()
            self._full.clear()
            batch, self._buffer = self._buffer[:256], self._buffer[256:]
            await asyncio.gather(
                *(
                    self._js.publish(
                        s.result_subject(r.monitor_id), r.model_dump_json().encode(),
                        headers={"Nats-Msg-Id": r.msg_id}, timeout=5.0,
                    )
                    for r in batch
                )
            )  # fmt: skip
            self._progress.add(len(batch))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _InstantChecker:
    """Answers every HTTP check after one loop turn: isolates the prober's own cost."""

    async def run(self, spec: HttpCheck, timeout: float) -> Outcome:  # noqa: ASYNC109 - Checker signature
        await asyncio.sleep(0)
        return Outcome.success(1.0, 200)

    async def aclose(self) -> None:
        return None


def _shares(n: int, workers: int) -> list[int]:
    return [n // workers + (1 if i < n % workers else 0) for i in range(workers)]


def _monitors(prefix: str, count: int, url: str) -> list[Monitor]:
    check = HttpCheck.model_validate({"url": url})
    return [
        Monitor(id=f"{prefix}{i}", system="bench", check=check, interval=86400.0, timeout=10.0)
        for i in range(count)
    ]


async def _bare_phase(url: str, n: int, concurrency: int) -> Phase:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    failures = 0

    async def worker(count: int) -> None:
        nonlocal failures
        for _ in range(count):
            async with session.get(url) as response:
                await response.read()
                failures += response.status != 200

    await worker(1)  # warm-up
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(share) for share in _shares(n, concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await session.close()
    return Phase("bare", n, wall, cpu, failures)


async def _checker_phase(url: str, n: int, concurrency: int) -> Phase:
    checker = HttpChecker()
    spec = HttpCheck.model_validate({"url": url})
    failures = 0

    async def worker(count: int) -> None:
        nonlocal failures
        for _ in range(count):
            if not (await checker.run(spec, 10.0)).ok:
                failures += 1

    await worker(1)  # warm-up: session, connector
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(share) for share in _shares(n, concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await checker.aclose()
    return Phase("checker", n, wall, cpu, failures)


async def _stored_results(js: JetStreamContext) -> list[CheckResult]:
    """Every result in the results stream (single messages and batches)."""
    stored = (await js.stream_info(s.RESULTS_STREAM)).state.messages
    sub = await js.pull_subscribe(
        s.RESULTS_SUBJECTS, stream=s.RESULTS_STREAM, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
    )
    results: list[CheckResult] = []
    while stored > 0:
        messages = await sub.fetch(min(stored, 256), timeout=10)
        stored -= len(messages)
        for msg in messages:
            results.extend(ResultMessage.model_validate_json(msg.data).results)
    await sub.unsubscribe()
    return results


async def _full_phase(
    url: str,
    n: int,
    concurrency: int,
    js: JetStreamContext,
    nats_pid: int,
    *,
    name: str,
    instant: bool = False,
) -> Phase:
    """``single``, ``full`` or ``bookkeeping``: the runner saturated with N due monitors, every
    result published to JetStream; done when all are acknowledged, then counted from the stream."""
    registry = CheckerRegistry({"http": _InstantChecker()}) if instant else CheckerRegistry.builtin()
    zone = f"bench-{name}"
    progress = _Progress()
    sink: BatchingSink | _PerResultSink
    if name == "single":
        sink = _PerResultSink(js, progress)
    else:

        async def publish(batch: Batch) -> None:
            await js.publish(batch.subject, batch.body, headers=batch.headers, timeout=5.0)
            progress.add(batch.count)

        batcher = Batcher(prober_id="bench-1", zone=zone, boot=time.time_ns() // 1000)
        sink = BatchingSink(batcher, publish)
    runner = ProbeRunner(
        Scheduler(_StartNow()), registry, sink, zone=zone, prober_id="bench-1", concurrency=concurrency
    )
    task = asyncio.create_task(runner.run())
    warmup, measured = _monitors("w", concurrency, url), _monitors("m", n, url)

    for monitor in warmup:
        runner.upsert(monitor)
    await progress.wait_for(len(warmup))
    for monitor in measured:  # synchronous: no check starts before the clock does
        runner.upsert(monitor)
    gc.collect()  # steady state: the new monitors are old objects, as in a prober that has been running
    server0 = _process_cpu(nats_pid)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await progress.wait_for(len(warmup) + n)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    server_cpu = _process_cpu(nats_pid) - server0

    runner.stop()
    await task
    await sink.aclose()
    await registry.aclose()
    stored = [r for r in await _stored_results(js) if r.monitor_id.startswith("m")]
    await js.purge_stream(s.RESULTS_STREAM)
    if len(stored) != n or len({r.monitor_id for r in stored}) != n:
        raise RuntimeError(f"{name}: expected {n} results in the stream, found {len(stored)}")
    failures = sum(1 for r in stored if not r.ok)
    return Phase(name, n, wall, cpu, failures, server_cpu)


async def _bench(
    url: str, nats_server: LocalServer, n: int, concurrency: int, runs: int, max_seconds: float
) -> list[Phase]:
    phases: list[Phase] = []
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_bus(js)
    pid = nats_server.process.pid
    try:
        async with asyncio.timeout(max_seconds):
            for _ in range(runs):
                phases.append(await _bare_phase(url, n, concurrency))
                phases.append(await _checker_phase(url, n, concurrency))
                phases.append(await _full_phase(url, n, concurrency, js, pid, name="single"))
                phases.append(await _full_phase(url, n, concurrency, js, pid, name="full"))
                phases.append(
                    await _full_phase(url, n, concurrency, js, pid, name="bookkeeping", instant=True)
                )
    finally:
        await nc.close()
    return phases


def _report(phases: list[Phase], loop_name: str, args: argparse.Namespace) -> None:
    print(
        f"{'phase':<12} {'checks':>7} {'checks/s wall':>14} {'CPU µs/check':>13} {'checks/CPU-s':>13}"
        f" {'nats-server µs/check':>21} {'failed':>7}"
    )
    for p in phases:
        server = f"{p.server_cpu / p.checks * 1e6:>21.1f}" if p.server_cpu else f"{'-':>21}"
        print(
            f"{p.name:<12} {p.checks:>7} {p.rate:>14,.0f} {p.cpu_us:>13.1f} {p.per_cpu_second:>13,.0f}"
            f" {server} {p.failures:>7}"
        )
    print()
    medians: dict[str, float] = {}
    for name in PHASES:
        rows = [p for p in phases if p.name == name]
        rate = statistics.median(p.rate for p in rows)
        medians[name] = cpu_us = statistics.median(p.cpu_us for p in rows)
        per_cpu_s = statistics.median(p.per_cpu_second for p in rows)
        print(
            f"median {name:<11}: {per_cpu_s:>8,.0f} checks per CPU-second ({cpu_us:6.1f} µs), "
            f"{rate:>8,.0f} checks/s wall"
        )
    print(
        f"batched publishing vs one message per result: {medians['single'] / medians['full']:.2f}× the "
        f"checks per CPU-second ({medians['single'] - medians['full']:.0f} µs less per check)"
    )
    reference = REFERENCE_BARE_US[loop_name]
    scale = reference / medians["bare"]
    normalized = medians["full"] * scale
    print(
        f"this machine: bare aiohttp costs {medians['bare']:.0f} µs/check, {1 / scale:.2f}× the "
        f"reference box's {reference:.0f} µs"
    )
    print(
        f"full path normalized to the reference box: ≈{normalized:.0f} µs/check, "
        f"≈{EXPORTER_US_PER_CHECK / normalized:.2f}× blackbox_exporter's 280 µs there "
        f"({loop_name}, n={args.n}, c={args.concurrency}, runs={args.runs})"
    )
    print(
        f"prober bookkeeping (runner + scheduler + CheckResult + batching + publishing): "
        f"{medians['bookkeeping']:.1f} µs/check"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU cost of HTTP checks through the prober's hot path.")
    parser.add_argument("-n", type=int, default=5000, help="checks per phase (default 5000)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="runs of every phase (default 3)")
    parser.add_argument("--uvloop", action="store_true", help="run the prober side on uvloop")
    parser.add_argument(
        "--server-uvloop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the target server on uvloop (default: on, so the target is not the bottleneck)",
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="give up after this long")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= MAX_CHECKS or not 1 <= args.concurrency <= 1000 or not 1 <= args.runs <= 10:
        parser.error(f"need 1 <= n <= {MAX_CHECKS}, 1 <= concurrency <= 1000, 1 <= runs <= 10")

    workdir = tempfile.TemporaryDirectory(prefix="fao-bench-")
    nats_server = start_nats(Path(workdir.name) / "nats")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(nats_server.process.pid, {0})
    ctx = multiprocessing.get_context("spawn")
    port_queue: multiprocessing.Queue[tuple[int, int]] = ctx.Queue()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(port_queue, stop, args.server_uvloop), daemon=True)
    server.start()
    loop_name = "uvloop" if args.uvloop else "asyncio"
    phases: list[Phase] = []
    try:
        port, _ = port_queue.get(timeout=30)
        url = f"http://127.0.0.1:{port}/"
        _pin(1)
        pinned = (
            "server and nats-server on CPU 0, prober on CPU 1" if (os.cpu_count() or 1) >= 2 else "not pinned"
        )
        server_loop = "uvloop" if args.server_uvloop else "asyncio"
        print(
            f"prober_http: target {url} (aiohttp.web on {server_loop}, separate process), prober on "
            f"{loop_name}, {pinned}, Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}"
        )

        async def bench() -> None:
            phases.extend(
                await _bench(url, nats_server, args.n, args.concurrency, args.runs, args.max_seconds)
            )

        _run(bench, args.uvloop)
        stop.set()
        _, served = port_queue.get(timeout=30)
    finally:
        stop.set()
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
        nats_server.stop()
        workdir.cleanup()
    _report(phases, loop_name, args)
    sent = sum(p.checks for p in phases if p.name != "bookkeeping") + args.runs * (2 + 2 * args.concurrency)
    print(f"server answered {served} requests; checks sent (with warm-ups): {sent}")
    return 0 if all(p.failures == 0 for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
