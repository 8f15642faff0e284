"""Bench: CPU cost of an HTTP check through the prober's real hot path.

Runs N HTTP checks (default 5,000) per phase at concurrency 50 against a local aiohttp.web server
that runs in a separate process on 127.0.0.1, and prints checks/s (wall), CPU µs per check of this
process (``time.process_time``) and the ratio to blackbox_exporter's ≈280 µs per probe
(../shared/notes/prober-performance.md). Phases of each run:

* ``bare``: a plain aiohttp ``ClientSession(TCPConnector(force_close=True))`` loop reading each body,
  exactly the notes' "aiohttp new conn" row (156 µs asyncio / 127 µs uvloop on the reference box).
  It calibrates this machine: loopback TCP costs differ a lot between machines and VMs.
* ``checker``: ``HttpChecker.run`` alone, 50 workers in a loop (the HTTP part of a check).
* ``full``: ``ProbeRunner`` + ``Scheduler`` + ``HttpChecker`` + ``CheckResult`` + ``BatchingSink``
  (flushing into a no-op counter), i.e. everything but the bus. Each check is a separate monitor that
  is due at once, so the runner stays saturated.
* ``bookkeeping``: the ``full`` path with an in-process checker that answers at once (no network):
  what the prober adds to each check on top of the HTTP exchange. Stable where network phases are
  noisy.

CPU time is measured around the checks after a warm-up, as in the notes; monitors are built and a
full garbage collection is run before the clock starts (otherwise the 5,000 just-built monitors
trigger full collections inside the measured window, which a long-running prober does not see). "Normalized" scales ``full`` by (reference ``bare`` / measured ``bare``) to estimate
the cost on the reference box. With 2+ CPUs the server is pinned to CPU 0 and this process to CPU 1.

    python bench/prober_http.py [-n 5000] [--concurrency 50] [--runs 3] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from typing import Any

import aiohttp
from aiohttp import web

from fao.prober.checks import CheckerRegistry, Outcome
from fao.prober.checks.http import HttpChecker
from fao.prober.runner import ProbeRunner
from fao.prober.scheduler import Scheduler
from fao.prober.sink import BatchingSink
from fao.schemas import CheckResult, HttpCheck, Monitor

EXPORTER_US_PER_CHECK = 280.0
REFERENCE_BARE_US = {"asyncio": 156.0, "uvloop": 127.0}  # aiohttp, new connection, reference box
BODY = b"fao bench target ok " * 10  # 200 bytes, like the nginx target in the notes
MAX_CHECKS = 200_000
PHASES = ("bare", "checker", "full", "bookkeeping")


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

    @property
    def rate(self) -> float:
        return self.checks / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.checks * 1e6

    @property
    def ratio(self) -> float:
        return EXPORTER_US_PER_CHECK / self.cpu_us


class _NoSpread(random.Random):
    """New monitors are due at once (no initial offset): keeps the runner saturated."""

    def random(self) -> float:
        return 0.0


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


async def _full_phase(url: str, n: int, concurrency: int, *, instant: bool = False) -> Phase:
    delivered = 0
    failures = 0
    target = 0
    done = asyncio.Event()

    async def flush(batch: list[CheckResult]) -> None:
        """The no-op publisher: counts results (keeping them would add GC work a bus does not)."""
        nonlocal delivered, failures
        delivered += len(batch)
        failures += sum(1 for result in batch if not result.ok)
        if delivered >= target:
            done.set()

    registry = CheckerRegistry({"http": _InstantChecker()}) if instant else CheckerRegistry.builtin()
    sink = BatchingSink(flush, max_size=256, max_delay=0.05)
    runner = ProbeRunner(
        Scheduler(_NoSpread()), registry, sink, zone="bench", prober_id="bench-1", concurrency=concurrency
    )
    task = asyncio.create_task(runner.run())
    warmup, measured = _monitors("w", concurrency, url), _monitors("m", n, url)

    target = len(warmup)
    for monitor in warmup:
        runner.upsert(monitor)
    await done.wait()
    done.clear()
    failures = 0
    target += n
    for monitor in measured:  # synchronous: no check starts before the clock does
        runner.upsert(monitor)
    gc.collect()  # steady state: the new monitors are old objects, as in a prober that has been running
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await done.wait()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    runner.stop()
    await task
    await sink.aclose()
    await registry.aclose()
    if delivered != target:
        raise RuntimeError(f"expected {target} results, got {delivered}")
    return Phase("bookkeeping" if instant else "full", n, wall, cpu, failures)


async def _bench(url: str, n: int, concurrency: int, runs: int, max_seconds: float) -> list[Phase]:
    phases: list[Phase] = []
    async with asyncio.timeout(max_seconds):
        for _ in range(runs):
            phases.append(await _bare_phase(url, n, concurrency))
            phases.append(await _checker_phase(url, n, concurrency))
            phases.append(await _full_phase(url, n, concurrency))
            phases.append(await _full_phase(url, n, concurrency, instant=True))
    return phases


def _report(phases: list[Phase], loop_name: str, args: argparse.Namespace) -> None:
    print(
        f"{'phase':<12} {'checks':>7} {'checks/s wall':>14} {'CPU µs/check':>13} {'vs 280 µs':>10} {'failed':>7}"
    )
    for p in phases:
        print(
            f"{p.name:<12} {p.checks:>7} {p.rate:>14,.0f} {p.cpu_us:>13.1f} {p.ratio:>9.2f}× {p.failures:>7}"
        )
    print()
    medians: dict[str, float] = {}
    for name in PHASES:
        rows = [p for p in phases if p.name == name]
        rate = statistics.median(p.rate for p in rows)
        medians[name] = cpu_us = statistics.median(p.cpu_us for p in rows)
        print(
            f"median {name:<11}: {rate:>8,.0f} checks/s wall, {cpu_us:6.1f} µs CPU/check, "
            f"{EXPORTER_US_PER_CHECK / cpu_us:.2f}× blackbox_exporter"
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
        f"≈{EXPORTER_US_PER_CHECK / normalized:.2f}× blackbox_exporter "
        f"({loop_name}, n={args.n}, c={args.concurrency}, runs={args.runs})"
    )
    print(
        f"prober bookkeeping (runner + scheduler + CheckResult + batching): {medians['bookkeeping']:.1f} µs/check"
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
        pinned = "server on CPU 0, prober on CPU 1" if (os.cpu_count() or 1) >= 2 else "not pinned"
        server_loop = "uvloop" if args.server_uvloop else "asyncio"
        print(
            f"prober_http: target {url} (aiohttp.web on {server_loop}, separate process), prober on "
            f"{loop_name}, {pinned}, Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}"
        )

        async def bench() -> None:
            phases.extend(await _bench(url, args.n, args.concurrency, args.runs, args.max_seconds))

        _run(bench, args.uvloop)
        stop.set()
        _, served = port_queue.get(timeout=30)
    finally:
        stop.set()
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
    _report(phases, loop_name, args)
    sent = sum(p.checks for p in phases if p.name != "bookkeeping") + args.runs * (2 + args.concurrency)
    print(f"server answered {served} requests; checks sent (with warm-ups): {sent}")
    return 0 if all(p.failures == 0 for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
