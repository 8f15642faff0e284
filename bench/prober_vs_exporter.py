"""Bench: the real prober process against prometheus-blackbox-exporter, in one run (numbers only).

Starts, in a temporary directory, a local nginx on 127.0.0.1 serving a small static page (its own
``nginx.conf``: one worker, ``daemon off``, no access log, pid and logs in the directory, run as
the current user), a nats-server with Fao's streams (``fao.runtime.launch``, ``ensure_bus``) and
blackbox_exporter (its own config: module ``http_2xx``, ``prober: http``, ``timeout: 5s``,
``preferred_ip_protocol: ip4``, on a free loopback port). Then, for ``--runs`` rounds, alternately:

* **prober, high rate**: ``python -m fao.prober`` (``FAO_*`` settings: zone ``sat``, concurrency and
  ``max_checks_per_host`` = ``--concurrency``) with ``--monitors`` HTTP monitors to nginx (one URL
  per monitor, a new connection per check) put in the ``fao-monitors`` KV bucket as ``fao apply``
  puts them (``monitor_values``), at ``--interval`` (8,000 checks/s asked by default: the prober
  runs at that rate or flat out, whichever is lower; its % of a core is printed). After
  ``--warmup`` seconds, a ``--seconds`` window: results counted from the results stream (the ``ResultBatch`` messages stored in the window, parsed with
  ``fao.schemas.results``), CPU seconds of the prober process from ``/proc/<pid>/stat``
  → **checks per CPU-second**. The process is stopped after each window.
* **exporter, flat out**: ``--concurrency`` concurrent ``GET /probe?module=http_2xx&target=…`` from
  this process (keep-alive scrape connections, one target URL per request as above) for the same
  window; probes whose body says ``probe_success 1`` are counted, the exporter's CPU from ``/proc``
  → **probes per CPU-second**.

Medians of the runs and the **ratio prober / exporter** are printed. Then **paced** (skipped with
``--paced-monitors 0``): the monitors bucket emptied, a prober started with no monitors (its RSS,
``VmRSS``, is the baseline), ``--paced-monitors`` monitors (zone ``paced``, ``--paced-interval``,
default 10,000 at 30 s) put in the bucket; once the prober runs all of them (its
``fao_prober_monitors`` gauge) and ``--settle`` seconds have passed, its RSS again (**KiB per
monitor** = growth / N), then its CPU over ``--paced-seconds`` as **% of one core**, the results
counted as above; then the exporter fed the same rate (N probes per interval, evenly spread in
10 ms ticks) for as long, its CPU %, and the ratio.

With 2+ CPUs the measured process (prober or exporter; ``GOMAXPROCS=1`` for the exporter, as in
../shared/notes/prober-performance.md, its stricter row) runs on CPU 1, nginx, nats-server and this
process on CPU 0 (``--no-pin``: not pinned). The script installs nothing: without nginx or the
exporter it exits 2 naming the Debian package. Bounded (``--timeout``, default 600 s; a few minutes
by default); every process it started is stopped in every case (SIGTERM included: exit 143).
Exits 1 when a goal of issue 9 is missed (≥ 2.5× the exporter per CPU-second; paced ≤ 25 % of a
core, ≥ 2× the exporter, ≤ 4 KiB per monitor) or a check failed.

    python bench/prober_vs_exporter.py [--runs 3] [--monitors 4000] [--interval 0.5] [--seconds 8]
        [--concurrency 50] [--paced-monitors 10000] [--paced-interval 30] [--paced-seconds 90]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fao.cli.apply import monitor_values
from fao.runtime.bus import ensure_bus, monitors_bucket
from fao.runtime.launch import LocalServer, free_port, start_nats, terminate
from fao.schemas import HttpCheck, Monitor
from fao.schemas import subjects as s
from fao.schemas.results import ResultBatch

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = b"<!doctype html><title>fao bench</title><p>" + b"fao bench target ok " * 8 + b"</p>\n"
EXPORTER_PATHS = ("/usr/bin/prometheus-blackbox-exporter", "/usr/bin/blackbox_exporter")
NGINX_PATHS = ("/usr/sbin/nginx",)
SAT_ZONE, PACED_ZONE = "sat", "paced"
# Goals of issue 9 on the 2-core box.
GOAL_RATIO, GOAL_PACED_CORE, GOAL_PACED_RATIO, GOAL_KIB = 2.5, 25.0, 2.0, 4.0


class BenchError(Exception):
    """A part of the bench could not start or did not behave (the message says which)."""


def _binary(names: tuple[str, ...], paths: tuple[str, ...], package: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for path in paths:
        if os.access(path, os.X_OK):
            return path
    raise BenchError(
        f"{names[0]} not found: install the Debian package {package} (apt-get install {package})"
    )


def _cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


_pin_enabled = True  # --no-pin turns it off


def _pinning() -> bool:
    return _pin_enabled and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def _pin(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` on ``cpu`` (threads started later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(tid), {cpu})


@dataclass
class Child:
    """A child process of the bench; ``stop()`` terminates it (SIGTERM, then SIGKILL)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        terminate(self.process, timeout=15)

    def tail(self, lines: int = 8) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _spawn(name: str, command: list[str], workdir: Path, env: dict[str, str] | None = None) -> Child:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Child(name, proc, log)


def _wait_http(url: str, child: Child, what: str, timeout: float = 20.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise BenchError(f"{what} exited with code {child.process.returncode} at start:\n{child.tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=0.5) as answer:
            if answer.status == 200:
                return
        time.sleep(0.05)
    raise BenchError(f"{what} did not answer {url} within {timeout:g}s:\n{child.tail()}")


def start_nginx(workdir: Path, binary: str) -> tuple[Child, int]:
    """nginx serving ``PAGE`` for every path, on a free loopback port."""
    root = workdir / "nginx"
    (root / "www").mkdir(parents=True)
    (root / "www" / "index.html").write_bytes(PAGE)
    port = free_port()
    user = ""
    if os.geteuid() == 0:  # workers would switch to nobody, who cannot enter the temporary directory
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    temp = " ".join(
        f"{kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (root / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
daemon off;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root / "www"};
        location / {{ default_type text/html; try_files /index.html =404; }}
    }}
}}
"""
    )
    child = _spawn("nginx", [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")], workdir)  # fmt: skip
    _wait_http(f"http://127.0.0.1:{port}/", child, "nginx")
    return child, port


def start_exporter(workdir: Path, binary: str) -> tuple[Child, int]:
    config = workdir / "blackbox.yml"
    config.write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n"
    )
    port = free_port()
    env = {**os.environ, "GOMAXPROCS": "1"} if _pinning() else None
    command = [
        binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    child = _spawn("exporter", command, workdir, env)
    _wait_http(f"http://127.0.0.1:{port}/-/healthy", child, "blackbox_exporter")
    if _pinning():
        _pin(child.pid, 1)
    return child, port


def start_prober(workdir: Path, nats_url: str, zone: str, concurrency: int | None) -> tuple[Child, int]:
    """``python -m fao.prober`` for ``zone``; returns it and its /healthz + /metrics port."""
    port = free_port()
    env = {
        **os.environ,
        "FAO_NATS_URL": nats_url,
        "FAO_ZONE": zone,
        "FAO_PROBER_ID": f"bench-{zone}",
        "FAO_HTTP_HOST": "127.0.0.1",
        "FAO_HTTP_PORT": str(port),
        "FAO_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    }
    if concurrency is not None:
        env["FAO_CONCURRENCY"] = env["FAO_MAX_CHECKS_PER_HOST"] = str(concurrency)
    child = _spawn(f"prober-{zone}", [sys.executable, "-m", "fao.prober"], workdir, env)
    _wait_http(f"http://127.0.0.1:{port}/healthz", child, "the prober", timeout=60.0)
    if _pinning():
        _pin(child.pid, 1)
    return child, port


def bench_monitors(zone: str, count: int, nginx_port: int, interval: float) -> list[Monitor]:
    return [
        Monitor(
            id=f"{zone}-{i}",
            system="bench",
            zones=[zone],
            interval=interval,
            timeout=min(10.0, interval),
            check=HttpCheck.model_validate({"url": f"http://127.0.0.1:{nginx_port}/m{i}"}),
        )
        for i in range(count)
    ]


async def put_monitors(js: JetStreamContext, monitors: list[Monitor]) -> None:
    """Into the monitors bucket as ``fao apply`` writes them (key → the model's JSON)."""
    kv = await monitors_bucket(js)
    values = list(monitor_values(monitors).items())
    for start in range(0, len(values), 500):
        await asyncio.gather(*(kv.put(key, value) for key, value in values[start : start + 500]))


async def empty_monitors(js: JetStreamContext) -> None:
    await monitors_bucket(js)
    await js.purge_stream(f"KV_{s.MONITORS_BUCKET}")


async def last_seq(js: JetStreamContext) -> int:
    seq: int = (await js.stream_info(s.RESULTS_STREAM)).state.last_seq
    return seq


async def count_results(js: JetStreamContext, first: int, last: int) -> tuple[int, int]:
    """``(results, failed)`` in the result batches stored with sequence ``first``..``last``."""
    if last < first:
        return 0, 0
    sub = await js.pull_subscribe(
        s.RESULTS_SUBJECTS, stream=s.RESULTS_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first
        ),
    )  # fmt: skip
    results = failed = 0
    try:
        seen = first - 1
        while seen < last:
            for msg in await sub.fetch(min(256, last - seen), timeout=10):
                seen = msg.metadata.sequence.stream
                if seen > last:
                    break
                batch = ResultBatch.model_validate_json(msg.data)
                results += len(batch.results)
                failed += sum(1 for r in batch.results if not r.ok)
    finally:
        await sub.unsubscribe()
    return results, failed


async def metric(session: aiohttp.ClientSession, port: int, name: str) -> float:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        for line in (await answer.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


@dataclass(frozen=True)
class Window:
    """One measured window of one process: what it did, its CPU and the wall time."""

    name: str
    done: int
    failed: int
    cpu: float
    wall: float

    @property
    def per_cpu_second(self) -> float:
        return self.done / self.cpu if self.cpu > 0 else float("inf")

    @property
    def core_percent(self) -> float:
        return 100.0 * self.cpu / self.wall

    def line(self) -> str:
        return (
            f"  {self.name:<9} {self.done:>8,} done {self.failed:>5} failed in {self.wall:5.1f} s wall "
            f"({self.done / self.wall:>7,.0f}/s), CPU {self.cpu:6.2f} s ({self.core_percent:5.1f} % of a "
            f"core): {self.per_cpu_second:>7,.0f} per CPU-second ({1e6 / self.per_cpu_second:6.1f} µs)"
        )


async def prober_window(
    js: JetStreamContext, workdir: Path, nats_url: str, args: argparse.Namespace, stopping: list[Child]
) -> Window:
    child, _ = start_prober(workdir, nats_url, SAT_ZONE, args.concurrency)
    stopping.append(child)
    try:
        await asyncio.sleep(args.warmup)
        seq0, cpu0, wall0 = await last_seq(js), _cpu(child.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        seq1, cpu1, wall1 = await last_seq(js), _cpu(child.pid), time.monotonic()
    finally:
        child.stop()
        stopping.remove(child)
    done, failed = await count_results(js, seq0 + 1, seq1)
    return Window("prober", done, failed, cpu1 - cpu0, wall1 - wall0)


class ExporterDriver:
    """``/probe`` requests from this process, each worker on its own keep-alive connection (a
    minimal HTTP/1.1 client on asyncio streams: cheap enough to keep the exporter busy from one
    core); counts the answers that say ``probe_success 1``."""

    def __init__(self, port: int, nginx_port: int, targets: int) -> None:
        self._port = port
        self._path = f"/probe?module=http_2xx&target=http://127.0.0.1:{nginx_port}/m"
        self._targets = targets
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._n = 0
        self.ok = 0
        self.failed = 0

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str) -> bytes:
        reader, writer = conn
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self._port}\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        if not head.startswith(b"http/1.1 200"):
            raise BenchError(f"the exporter answered {head[:40]!r}")
        at = head.find(b"content-length:")
        if at >= 0:
            return await reader.readexactly(int(head[at + 15 : head.index(b"\r\n", at)]))
        chunks = []  # chunked
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return b"".join(chunks)

    async def probe(self) -> None:
        self._n += 1
        path = f"{self._path}{self._n % self._targets}"
        conn = self._idle.pop() if self._idle else await asyncio.open_connection("127.0.0.1", self._port)
        try:
            body = await self._exchange(conn, path)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, BenchError):
            conn[1].close()
            self.failed += 1
            return
        self._idle.append(conn)
        if b"\nprobe_success 1\n" in body:
            self.ok += 1
        else:
            self.failed += 1

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def saturate(self, concurrency: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                await self.probe()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def paced(self, rate: float, seconds: float) -> None:
        """``rate`` probes per second, evenly spaced (a tick every 10 ms), for ``seconds``."""
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        sent = 0
        while (now := time.monotonic()) < start + seconds:
            due = int((now - start) * rate) - sent
            for _ in range(due):
                task = asyncio.create_task(self.probe())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent += due
            await asyncio.sleep(0.01)
        if tasks:
            await asyncio.gather(*tasks)


async def exporter_window(
    driver: ExporterDriver, pid: int, run: Callable[[], Awaitable[None]], name: str = "exporter"
) -> Window:
    ok0, failed0 = driver.ok, driver.failed
    cpu0, wall0 = _cpu(pid), time.monotonic()
    await run()
    cpu1, wall1 = _cpu(pid), time.monotonic()
    return Window(name, driver.ok - ok0, driver.failed - failed0, cpu1 - cpu0, wall1 - wall0)


@dataclass(frozen=True)
class Paced:
    prober: Window
    exporter: Window
    baseline_kib: int
    loaded_kib: int
    end_kib: int
    monitors: int
    load_seconds: float

    @property
    def kib_per_monitor(self) -> float:
        return (self.loaded_kib - self.baseline_kib) / self.monitors


async def paced(
    js: JetStreamContext,
    session: aiohttp.ClientSession,
    driver: ExporterDriver,
    exporter: Child,
    workdir: Path,
    nats_url: str,
    nginx_port: int,
    args: argparse.Namespace,
    stopping: list[Child],
) -> Paced:
    n = args.paced_monitors
    await empty_monitors(js)
    monitors = bench_monitors(PACED_ZONE, n, nginx_port, args.paced_interval)
    child, port = start_prober(workdir, nats_url, PACED_ZONE, None)
    stopping.append(child)
    try:
        await asyncio.sleep(args.settle)
        baseline = _rss_kib(child.pid)
        t0 = time.monotonic()
        await put_monitors(js, monitors)
        while await metric(session, port, "fao_prober_monitors") < n:
            if child.process.poll() is not None:
                raise BenchError(f"the paced prober exited:\n{child.tail()}")
            await asyncio.sleep(0.2)
        load_seconds = time.monotonic() - t0
        await asyncio.sleep(args.settle)
        loaded = _rss_kib(child.pid)
        seq0, cpu0, wall0 = await last_seq(js), _cpu(child.pid), time.monotonic()
        await asyncio.sleep(args.paced_seconds)
        seq1, cpu1, wall1 = await last_seq(js), _cpu(child.pid), time.monotonic()
        end = _rss_kib(child.pid)
    finally:
        child.stop()
        stopping.remove(child)
    done, failed = await count_results(js, seq0 + 1, seq1)
    prober = Window("prober", done, failed, cpu1 - cpu0, wall1 - wall0)
    rate = n / args.paced_interval
    exporter_paced = await exporter_window(
        driver, exporter.pid, lambda: driver.paced(rate, args.paced_seconds)
    )
    return Paced(prober, exporter_paced, baseline, loaded, end, n, load_seconds)


def _goal(met: bool, text: str, missed: list[str]) -> str:
    if not met:
        missed.append(text)
    return f"{'met' if met else 'NOT met'}: {text}"


def report(pairs: list[tuple[Window, Window]], result: Paced | None, args: argparse.Namespace) -> list[str]:
    missed: list[str] = []
    prober_rate = statistics.median(p.per_cpu_second for p, _ in pairs)
    exporter_rate = statistics.median(e.per_cpu_second for _, e in pairs)
    ratios = [p.per_cpu_second / e.per_cpu_second for p, e in pairs]
    print(
        f"\nhigh rate, medians of {len(pairs)} runs: prober {prober_rate:,.0f} checks per CPU-second "
        f"({1e6 / prober_rate:.0f} µs), exporter {exporter_rate:,.0f} probes per CPU-second "
        f"({1e6 / exporter_rate:.0f} µs); ratio of the medians {prober_rate / exporter_rate:.2f}× "
        f"(per run: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(_goal(prober_rate / exporter_rate >= GOAL_RATIO, f"prober ≥ {GOAL_RATIO}× the exporter per CPU-second", missed))  # fmt: skip
    if result is not None:
        p, e = result.prober, result.exporter
        print(
            f"\npaced: {result.monitors:,} monitors at {args.paced_interval:g} s "
            f"({result.monitors / args.paced_interval:,.0f} checks/s); loaded in {result.load_seconds:.1f} s"
        )
        print(p.line())
        print(e.line())
        print(
            f"  prober RSS {result.baseline_kib:,} KiB with no monitors, {result.loaded_kib:,} KiB "
            f"loaded, {result.end_kib:,} KiB after the window: {result.kib_per_monitor:.2f} KiB per "
            f"monitor ({(result.end_kib - result.baseline_kib) / result.monitors:.2f} at the end)"
        )
        ratio = e.core_percent / p.core_percent
        print(f"  exporter / prober CPU at the same rate: {ratio:.2f}×")
        print(_goal(p.core_percent <= GOAL_PACED_CORE, f"paced prober ≤ {GOAL_PACED_CORE:g} % of a core", missed))  # fmt: skip
        print(_goal(ratio >= GOAL_PACED_RATIO, f"paced ≥ {GOAL_PACED_RATIO:g}× the exporter", missed))
        print(_goal(result.kib_per_monitor <= GOAL_KIB, f"≤ {GOAL_KIB:g} KiB per monitor", missed))
    return missed


async def run(args: argparse.Namespace, nginx_bin: str, exporter_bin: str) -> list[str]:
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fao-bench-vs-")))
        stopping: list[Child] = []  # started children, stopped on the way out in every case

        def stop_children() -> None:
            for child in reversed(stopping):
                child.stop()

        stack.callback(stop_children)
        nginx, nginx_port = start_nginx(workdir, nginx_bin)
        stopping.append(nginx)
        nats_server: LocalServer = start_nats(workdir / "nats")
        stack.callback(nats_server.stop)
        exporter, exporter_port = start_exporter(workdir, exporter_bin)
        stopping.append(exporter)
        if _pinning():
            for pid in (nginx.pid, nats_server.process.pid, os.getpid()):
                _pin(pid, 0)
        nc = await nats.connect(nats_server.url)
        stack.push_async_callback(nc.close)
        js = nc.jetstream()
        await ensure_bus(js)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        driver = ExporterDriver(exporter_port, nginx_port, max(args.monitors, args.paced_monitors, 1))
        stack.callback(driver.close)

        print(
            f"nginx 127.0.0.1:{nginx_port}, nats-server {nats_server.url}, blackbox_exporter "
            f"127.0.0.1:{exporter_port}; {os.cpu_count()} CPUs, "
            f"{'measured process on CPU 1, the rest on CPU 0' if _pinning() else 'not pinned'}"
        )
        await put_monitors(js, bench_monitors(SAT_ZONE, args.monitors, nginx_port, args.interval))
        print(
            f"high rate: {args.monitors:,} monitors at {args.interval:g} s "
            f"({args.monitors / args.interval:,.0f} checks/s asked), concurrency {args.concurrency}, "
            f"windows of {args.seconds:g} s after {args.warmup:g} s"
        )
        await exporter_window(driver, exporter.pid, lambda: driver.saturate(args.concurrency, 1.0))  # warm-up
        pairs: list[tuple[Window, Window]] = []
        for i in range(args.runs):
            print(f"run {i + 1}:")
            p = await prober_window(js, workdir, nats_server.url, args, stopping)
            print(p.line())
            e = await exporter_window(
                driver, exporter.pid, lambda: driver.saturate(args.concurrency, args.seconds)
            )
            print(e.line())
            pairs.append((p, e))
        result = None
        if args.paced_monitors > 0:
            result = await paced(
                js, session, driver, exporter, workdir, nats_server.url, nginx_port, args, stopping
            )
        missed = report(pairs, result, args)
        failed = sum(p.failed + e.failed for p, e in pairs)
        if result is not None:
            failed += result.prober.failed + result.exporter.failed
        if failed:
            missed.append(f"{failed} checks or probes failed")
        return missed


async def bounded(args: argparse.Namespace, nginx_bin: str, exporter_bin: str) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    started = time.monotonic()
    deadline = asyncio.timeout(args.timeout)
    try:
        async with deadline:
            missed = await run(args, nginx_bin, exporter_bin)
    except TimeoutError:
        if not deadline.expired():
            raise
        print(f"FAILED: timed out after {args.timeout:g} s", file=sys.stderr)
        return 2
    print(f"whole run: {time.monotonic() - started:.0f} s")
    if missed:
        print("FAILED: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="high rate prober/exporter pairs (1..10)")
    parser.add_argument("--monitors", type=int, default=4000, help="high rate: monitors (1..20000)")
    parser.add_argument("--interval", type=float, default=0.5, help="high rate: their interval, s (≥ 0.2)")
    parser.add_argument("--concurrency", type=int, default=50, help="checks or probes at once (1..1000)")
    parser.add_argument("--seconds", type=float, default=8.0, help="high rate: measured window, s")
    parser.add_argument("--warmup", type=float, default=2.0, help="high rate: before the window, s")
    parser.add_argument("--paced-monitors", type=int, default=10_000, help="paced: monitors (0: skip)")
    parser.add_argument("--paced-interval", type=float, default=30.0, help="paced: their interval, s")
    parser.add_argument("--paced-seconds", type=float, default=90.0, help="paced: measured window, s")
    parser.add_argument("--settle", type=float, default=5.0, help="paced: wait before reading RSS, s")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run, s")
    parser.add_argument("--no-pin", action="store_true", help="leave every process on every CPU")
    args = parser.parse_args()
    global _pin_enabled
    _pin_enabled = not args.no_pin
    if not (
        1 <= args.runs <= 10 and 1 <= args.monitors <= 20_000 and args.interval >= 0.2
        and 1 <= args.concurrency <= 1000 and 0 < args.seconds <= 120 and 0 <= args.warmup <= 60
        and 0 <= args.paced_monitors <= 50_000 and 1 <= args.paced_interval <= 3600
        and 0 < args.paced_seconds <= 600 and 0 <= args.settle <= 60 and args.timeout > 0
    ):  # fmt: skip
        parser.error("a setting is out of range (see --help)")
    try:
        nginx_bin = _binary(("nginx",), NGINX_PATHS, "nginx")
        exporter_bin = _binary(
            ("prometheus-blackbox-exporter", "blackbox_exporter"),
            EXPORTER_PATHS,
            "prometheus-blackbox-exporter",
        )
    except BenchError as exc:
        print(f"prober_vs_exporter: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        import uvloop  # the driver's loop: faster when available, not required
    except ImportError:
        runner: Callable[[Awaitable[int]], int] = asyncio.run  # type: ignore[assignment]
    else:
        runner = uvloop.run  # type: ignore[assignment]
    try:
        code = runner(bounded(args, nginx_bin, exporter_bin))
    except asyncio.CancelledError:  # SIGTERM: everything was stopped on the way out
        print("FAILED: stopped by SIGTERM", file=sys.stderr)
        code = 143
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
