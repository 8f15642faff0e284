"""End to end: a target fails → its team's LINE push, p50/p95 over many trials (real processes).

Starts nats-server and FerretDB in a temporary directory, K HTTP targets in this process
(``http://127.0.0.1:<port>/s/<i>``, 200 or 503), applies an inventory of K systems with one http
monitor each and one team and LINE group per system (so every push is attributable), and runs the
real ``python -m fao.prober``, ``fao.correlator`` and ``fao.notifier`` processes, the notifier's
line-bot-sdk pointed at the fake LINE server (``FAO_LINE_API_BASE``), as ``tests.integration.scenario``
does. Once every monitor is up, each trial:

1. waits a random moment of the check grid (uniform in one interval), makes one target answer 503
   and records the time; waits for the "🔴" push to that system's group;
2. heals the target and waits for the "✅" (resolved) push.

Trials run one at a time (``--concurrency`` runs a few at once, each on its own system; a system is
used again only after every other one). Printed: p50/p95/max of failure → push and recovery → push,
the goal from issue 9 (p95 of failure → push ≤ 2 × interval + the monitor's confirmation time,
``Monitor.confirm_time``), and where the time goes, from the results and incident events this process
sees on the bus: the scheduling wait until the first failing check, the first failing result's
publish → push, and the pipeline's own share: the confirming result's publish → push (correlator,
FerretDB, incident stream, notifier, LINE), split at the incident event.

Bounded: --timeout (default 900 s) for the whole run, each push awaited at most --push-timeout.
Exits 1 when a goal is missed (p95 above the bound, a push missing, an unexpected push), 2 when the
time is up, 143 on SIGTERM; the services and servers are stopped in every case.

    python bench/end_to_end.py [--trials 30] [--systems 20] [--interval 5] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from nats.aio.msg import Msg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.integration

from bench.dependency_storm import code_version, exit_bounded, print_log_tails, servers, until
from tests.integration.scenario import Scenario, group, scenario

from fao.runtime.launch import free_port
from fao.runtime.states import state_docs
from fao.schemas import IncidentEvent, Monitor
from fao.schemas import subjects as s
from fao.schemas.results import ResultMessage
from fao.testing.fake_line import PUSH_PATH, message_texts

DOWN, RESOLVED = "🔴", "✅"  # how the outage's problem and fixed messages begin (messages_th.yaml)
POLL = 0.02  # the fake LINE server's recorded requests (in this process: cheap)


def monitor_id(i: int) -> str:
    return f"sys{i:02d}-http"


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "interval": args.interval,
        "timeout": args.check_timeout,
        "recheck_interval": args.recheck_interval,
        "confirm": {"failures": args.failures, "of": args.of},
        "quiet_period": args.quiet_period,
    }


def monitor_of(args: argparse.Namespace) -> Monitor:
    """The settings every monitor gets, validated as the inventory's monitors are."""
    check = {"type": "http", "url": "http://127.0.0.1/"}
    return Monitor.model_validate({"id": "probe", "system": "probe", "check": check, **settings(args)})


def inventory(k: int, port: int, monitor: dict[str, Any]) -> str:
    """JSON flow mappings are YAML: one line per team, system and monitor."""
    teams = (
        json.dumps({"id": f"t{i:02d}", "name": f"Team {i}", "line_groups": [group(i + 1)]}) for i in range(k)
    )
    systems = (
        json.dumps({"id": f"sys{i:02d}", "name": f"System {i}", "team": f"t{i:02d}"}) for i in range(k)
    )
    monitors = (
        json.dumps(
            {
                "id": monitor_id(i),
                "system": f"sys{i:02d}",
                "check": {"type": "http", "url": f"http://127.0.0.1:{port}/s/{i}", "expected_status": [200]},
                **monitor,
            }
        )
        for i in range(k)
    )
    lines = ["teams:", *(f"  - {t}" for t in teams), "systems:", *(f"  - {x}" for x in systems)]
    return "\n".join([*lines, "monitors:", *(f"  - {m}" for m in monitors)]) + "\n"


class Targets:
    """K HTTP endpoints ``/s/<i>`` on 127.0.0.1: 200, or 503 while ``i`` is in ``down``."""

    def __init__(self) -> None:
        self.down: set[int] = set()
        self.port = free_port()

    async def _page(self, request: web.Request) -> web.Response:
        if int(request.match_info["i"]) in self.down:
            return web.Response(status=503, text="unavailable")
        return web.Response(text="ok")

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        app = web.Application()
        app.router.add_get("/s/{i}", self._page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", self.port).start()


@dataclass(frozen=True)
class Seen:
    """One check result as this process received it from the bus."""

    at: float  # wall clock of arrival here (≈ the prober's publish: loopback)
    ok: bool
    started_at: float  # when the prober started the check


@dataclass
class Bus:
    """Every result and incident event published during the run, with its arrival time here."""

    results: dict[str, list[Seen]] = field(default_factory=dict)
    events: list[tuple[float, IncidentEvent]] = field(default_factory=list)

    async def on_results(self, msg: Msg) -> None:
        now = time.time()
        for r in ResultMessage.model_validate_json(msg.data).results:
            self.results.setdefault(r.monitor_id, []).append(Seen(now, r.ok, r.started_at.timestamp()))

    async def on_event(self, msg: Msg) -> None:
        self.events.append((time.time(), IncidentEvent.model_validate_json(msg.data)))

    def results_since(self, monitor: str, since: float, ok: bool) -> list[Seen]:
        return [r for r in self.results.get(monitor, []) if r.at >= since and r.ok == ok]

    def event_since(self, system: str, kind: str, since: float) -> float | None:
        return next(
            (t for t, e in self.events if t >= since and e.type == kind and e.incident.system_id == system),
            None,
        )


@dataclass
class Trial:
    n: int
    system: int
    failed_at: float
    down_push: float | None = None
    healed_at: float = math.nan
    up_push: float | None = None


def push_at(sc: Scenario, to: str, since: float, mark: str) -> float | None:
    """Arrival time of the first accepted push to ``to`` since ``since`` whose text starts with ``mark``."""
    for r in sc.line.requests:
        if r.path != PUSH_PATH or r.status != 200 or r.json["to"] != to or r.at.timestamp() < since:
            continue
        if message_texts(r.json["messages"][0])[0].startswith(mark):
            return r.at.timestamp()
    return None


async def wait_push(sc: Scenario, to: str, since: float, mark: str, limit: float) -> float | None:
    found: list[float] = []

    async def arrived() -> bool:
        at = push_at(sc, to, since, mark)
        found.extend([] if at is None else [at])
        return at is not None

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            await until(arrived, POLL)
    return found[0] if found else None


async def one_trial(sc: Scenario, targets: Targets, trial: Trial, args: argparse.Namespace) -> None:
    to = group(trial.system + 1)
    targets.down.add(trial.system)
    trial.down_push = await wait_push(sc, to, trial.failed_at, DOWN, args.push_timeout)
    trial.healed_at = time.time()
    targets.down.discard(trial.system)
    trial.up_push = await wait_push(sc, to, trial.healed_at, RESOLVED, args.push_timeout + args.quiet_period)

    def took(at: float | None, since: float) -> str:
        return "MISSING" if at is None else f"{at - since:.2f} s"

    print(
        f"trial {trial.n + 1:>3}/{args.trials} sys{trial.system:02d}: failure → push {took(trial.down_push, trial.failed_at)}, "
        f"recovery → push {took(trial.up_push, trial.healed_at)}",
        flush=True,
    )


async def run_trials(
    sc: Scenario, targets: Targets, args: argparse.Namespace, stage: list[str]
) -> list[Trial]:
    rng = random.Random(args.seed)
    free = deque(range(args.systems))  # least recently used first
    numbers = itertools.count()
    done: list[Trial] = []

    async def worker() -> None:
        while (n := next(numbers)) < args.trials:
            system = free.popleft()
            try:
                await asyncio.sleep(rng.uniform(0, args.interval))  # any moment of the check grid
                trial = Trial(n, system, time.time())
                done.append(trial)
                stage[0] = f"trial {n + 1}"
                await one_trial(sc, targets, trial, args)
            finally:
                targets.down.discard(system)
                free.append(system)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return sorted(done, key=lambda t: t.n)


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: list[float], ms: bool = False) -> str:
    if not values:
        return "no samples"
    scale, unit, digits = (1000.0, "ms", 0) if ms else (1.0, "s", 2)
    p50, p95, top = (scale * v for v in (percentile(values, 50), percentile(values, 95), max(values)))
    return f"p50 {p50:.{digits}f} {unit}, p95 {p95:.{digits}f} {unit}, max {top:.{digits}f} {unit} (n = {len(values)})"


def report(trials: list[Trial], bus: Bus, sc: Scenario, monitor: Monitor) -> list[str]:
    missed: list[str] = []
    down = [t for t in trials if t.down_push is not None]
    up = [t for t in trials if t.up_push is not None]
    if len(down) < len(trials) or len(up) < len(trials):
        missed.append(
            f"{len(trials) - len(down)} 'down' and {len(trials) - len(up)} 'resolved' pushes missing"
        )
    fail = [t.down_push - t.failed_at for t in down if t.down_push is not None]
    heal = [t.up_push - t.healed_at for t in up if t.up_push is not None]
    bound = 2 * monitor.interval + monitor.confirm_time
    met = bool(fail) and percentile(fail, 95) <= bound and len(down) == len(trials)
    print(f"\nfailure → 'down' push received:     {spread(fail)}")
    print(
        f"recovery → 'resolved' push received: {spread(heal)} (quiet_period {monitor.effective_quiet_period:g} s)"
    )
    print(
        f"goal: p95 of failure → push ≤ 2 × interval + confirmation time = 2 × {monitor.interval:g} + "
        f"{monitor.confirm_time:g} = {bound:g} s (Monitor.confirm_time: interval + timeout + of × "
        f"(recheck_interval + timeout)): {'met' if met else 'MISSED'}"
    )
    if not met:
        missed.append(f"p95 of failure → push above {bound:g} s (or pushes missing)")

    waits, first, confirming, opened, correlator = [], [], [], [], []
    for t in down:
        assert t.down_push is not None
        failing = bus.results_since(monitor_id(t.system), t.failed_at, ok=False)
        event = bus.event_since(f"sys{t.system:02d}", "opened", t.failed_at)
        if len(failing) >= monitor.confirm.failures:
            confirm = failing[monitor.confirm.failures - 1]
            waits.append(failing[0].started_at - t.failed_at)
            first.append(t.down_push - failing[0].at)
            confirming.append(t.down_push - confirm.at)
            if event is not None:
                opened.append(t.down_push - event)
                correlator.append(event - confirm.at)
    rec_first, rec_event = [], []
    for t in up:
        assert t.up_push is not None
        healthy = bus.results_since(monitor_id(t.system), t.healed_at, ok=True)
        event = bus.event_since(f"sys{t.system:02d}", "resolved", t.healed_at)
        if healthy:
            rec_first.append(t.up_push - healthy[0].at)
        if event is not None:
            rec_event.append(t.up_push - event)
    print("where the time goes (results and incident events as this process received them from the bus):")
    print(f"  failure → the first failing check started (the check grid): {spread(waits)}")
    print(f"  first failing result published → 'down' push:               {spread(first)}")
    print(
        f"  pipeline's own share, the confirming result (failing no. {monitor.confirm.failures}) published → push: "
        f"{spread(confirming, ms=True)}"
    )
    print(f"    of which confirming result → 'opened' event (correlator):  {spread(correlator, ms=True)}")
    print(f"    and 'opened' event → push (notifier, LINE):                 {spread(opened, ms=True)}")
    print(f"  first healthy result published → 'resolved' push (quiet period, tick): {spread(rec_first)}")
    print(f"  'resolved' event → push (notifier, LINE):                    {spread(rec_event, ms=True)}")

    accepted = [r for r in sc.line.requests if r.path == PUSH_PATH and r.status == 200]
    expected = len(down) + len(up)
    if len(accepted) != expected:
        missed.append(
            f"{len(accepted)} LINE pushes accepted, {expected} expected (one 'down', one 'resolved' per trial)"
        )
        for r in accepted:
            print(
                f"    push to {r.json['to']} at {r.at:%H:%M:%S.%f}: {message_texts(r.json['messages'][0])[0][:120]}"
            )
    others = sorted({str(e.type) for _, e in bus.events} - {"opened", "resolved"})
    print(
        f"LINE pushes accepted: {len(accepted)} ({expected} expected); other incident events: {others or 'none'}"
    )
    return missed


async def all_up(sc: Scenario, k: int) -> bool:
    """At least ``k`` monitors up in the correlator's state bucket."""
    return sum(1 for doc in (await state_docs(sc.js)).values() if doc.get("status") == "up") >= k


async def run(args: argparse.Namespace, stage: list[str]) -> list[str]:
    monitor_settings = settings(args)
    async with contextlib.AsyncExitStack() as stack:
        tmp, nats_server, ferret, mongo = await servers(stack, "fao-e2e-")
        targets = Targets()
        await targets.start(stack)
        stage[0] = "applying the inventory and starting the correlator, the notifier and the prober"
        t = time.time()
        sc = await stack.enter_async_context(
            scenario(
                tmp,
                nats_server.url,
                ferret.url,
                mongo["e2e"],
                inventory(args.systems, targets.port, monitor_settings),
                services=("correlator", "notifier", "prober"),
            )
        )
        bus = Bus()
        await sc.nc.subscribe(s.RESULTS_SUBJECTS, cb=bus.on_results)
        await sc.nc.subscribe(s.INCIDENTS_SUBJECTS, cb=bus.on_event)
        print(f"inventory applied, correlator, notifier and prober healthy: {time.time() - t:.1f} s")
        try:
            stage[0] = "waiting for every monitor to be up"
            await until(lambda: all_up(sc, args.systems), 0.2)
            print(
                f"all {args.systems} monitors up {time.time() - t:.1f} s after the start; trials:", flush=True
            )
            trials = await run_trials(sc, targets, args, stage)
            stage[0] = "reporting"
            missed = report(trials, bus, sc, monitor_of(args))
        except BaseException:
            print_log_tails(sc)
            raise
        if missed:
            print_log_tails(sc)
        stage[0] = "stopping"
        return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=30, help="failures to measure (1..1000)")
    parser.add_argument("--systems", type=int, default=20, help="systems, one http monitor each (2..200)")
    parser.add_argument("--concurrency", type=int, default=1, help="trials at once, on different systems")
    parser.add_argument("--interval", type=float, default=5.0, help="monitors' interval, seconds")
    parser.add_argument("--check-timeout", type=float, default=1.0, help="monitors' timeout, seconds")
    parser.add_argument("--recheck-interval", type=float, default=1.0, help="monitors' recheck_interval")
    parser.add_argument("--failures", type=int, default=2, help="confirm: failures …")
    parser.add_argument("--of", type=int, default=3, help="… of this many results")
    parser.add_argument("--quiet-period", type=float, default=5.0, help="monitors' quiet_period, seconds")
    parser.add_argument("--push-timeout", type=float, default=60.0, help="longest wait for one push, seconds")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on the whole run, seconds")
    parser.add_argument("--seed", type=int, default=None, help="of the random moments failures start")
    args = parser.parse_args()
    if not 1 <= args.trials <= 1000 or not 2 <= args.systems <= 200 or args.timeout <= 0:
        parser.error("--trials must be 1..1000, --systems 2..200, --timeout positive")
    if not 1 <= args.concurrency <= args.systems // 2:
        parser.error("--concurrency must be 1..systems/2 (a system is not reused while its last trial ends)")
    try:
        monitor = monitor_of(args)
    except ValueError as exc:
        parser.error(f"monitor settings: {exc}")
    print(f"code: {code_version()}")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared with other work); "
        f"{args.trials} trials over {args.systems} systems, {args.concurrency} at a time; monitors: interval "
        f"{monitor.interval:g} s, timeout {monitor.timeout:g} s, recheck_interval {monitor.recheck_interval:g} s, "
        f"confirm {monitor.confirm.failures} of {monitor.confirm.of}, quiet_period {monitor.effective_quiet_period:g} s"
    )
    exit_bounded(args, run)


if __name__ == "__main__":
    main()
