"""Dependency suppression end to end: a parent system fails under N dependants (real processes).

Starts nats-server and FerretDB in a temporary directory, applies an inventory (a parent system
``core`` of team noc and N dependants of team apps, each with one monitor, all depending on core),
runs the correlator and the notifier as processes with the real line-bot-sdk pointed at the fake
LINE server, and publishes the check results itself, as ``tests.integration.scenario`` does:

1. one healthy round for everyone;
2. the storm: the dependants fail twice (confirmed, held: core is not known to be fine), then the
   parent fails twice (one ``recheck_interval`` apart). Printed once every published result and
   event is handled: (a) the LINE pushes (goal 1, never more than 3), (b) the seconds from
   publishing the parent's first failing result to the fake LINE server receiving the push,
   (c) the incidents whose ``parent_incident_id`` is the parent's (goal N) and when the last of
   them was recorded, and the correlator's throughput while absorbing the failing results;
3. recovery: everyone healthy for a few rounds, one ``interval`` apart: (d) the pushes in total
   (goal exactly 2) and the seconds from the parent's first healthy result to the "resolved"
   push (this includes the monitors' ``quiet_period``).

Each phase also prints the CPU seconds every process used (the services' from their /metrics,
FerretDB's from /proc), and the header the code measured (``git describe --dirty``).

Bounded: --children (default 1,000, at most 5,000) and --timeout (default 600 s). Exits 1 when a
goal is missed, 2 when the time is up, 143 on SIGTERM; the services and servers are stopped
in every case.

    python bench/dependency_storm.py [--children 1000] [--timeout 600] [--recovery-rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.integration

from tests.integration.scenario import Scenario, group, scenario

from fao.runtime.launch import LocalServer, start_ferretdb, start_nats
from fao.runtime.store import Document, connect
from fao.schemas import IncidentEvent, Monitor
from fao.schemas import subjects as s
from fao.testing.backlog import backlog, correlator_durables
from fao.testing.fake_line import PUSH_PATH, message_texts

NOC, APPS = group(1), group(2)
TEAM_OF_GROUP = {NOC: "noc", APPS: "apps"}
PARENT = "core-ping"
SETTINGS: dict[str, Any] = {
    "interval": "5s",
    "timeout": "1s",
    "recheck_interval": "500ms",
    "confirm": {"failures": 2, "of": 3},
    "quiet_period": "3s",
}
CHECK = {"type": "tcp", "host": "127.0.0.1", "port": 9}  # never run: no prober, the bench publishes
MONITOR = Monitor.model_validate({"id": PARENT, "system": "core", "check": CHECK, **SETTINGS})
STORM_PUSH_GOAL, STORM_PUSH_LIMIT, TOTAL_PUSH_GOAL = 1, 3, 2
POLL = 0.05  # consumer state
COUNT_POLL = 0.1  # the incidents under the parent's, once its id is known (a scan on FerretDB)
SETTLED_FOR = 1.5  # still drained after a correlator tick (1 s)


def child_monitors(n: int) -> list[str]:
    return [f"app{i:04d}-web" for i in range(n)]


def inventory(n: int) -> str:
    """JSON flow mappings are YAML: one line per system and monitor."""

    def monitor(monitor_id: str, system: str) -> str:
        return "  - " + json.dumps({"id": monitor_id, "system": system, "check": CHECK, **SETTINGS})

    lines = [
        "teams:",
        f'  - {{id: noc, name: NOC, line_groups: ["{NOC}"]}}',
        f'  - {{id: apps, name: Apps, line_groups: ["{APPS}"]}}',
        "systems:",
        "  - {id: core, name: Core switch, name_th: สวิตช์หลัก, team: noc, severity: critical}",
        *(f"  - {{id: app{i:04d}, name: App {i}, team: apps, depends_on: [core]}}" for i in range(n)),
        "monitors:",
        monitor(PARENT, "core"),
        *(monitor(m, m.removesuffix("-web")) for m in child_monitors(n)),
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Push:
    at: float  # wall clock (epoch seconds) when the fake LINE server received it
    team: str
    text: str


def pushes(sc: Scenario) -> list[Push]:
    """The accepted pushes so far, oldest first."""
    return [
        Push(
            r.at.timestamp(),
            TEAM_OF_GROUP.get(r.json["to"], r.json["to"]),
            message_texts(r.json["messages"][0])[0],
        )
        for r in sc.line.requests
        if r.path == PUSH_PATH and r.method == "POST" and r.status == 200
    ]


def describe(found: list[Push]) -> Iterator[str]:
    for p in found:
        yield f"    to {p.team}: {p.text[:200]}"


async def until(check: Callable[[], Awaitable[bool]], every: float) -> None:
    """Poll ``check`` until it holds (the run's time-out bounds the wait)."""
    while True:
        if await check():
            return
        await asyncio.sleep(every)


async def settle(sc: Scenario) -> None:
    """Every result and event published so far is handled, and still is after a correlator tick."""
    while True:
        await until(sc.drained, 0.1)
        await asyncio.sleep(SETTLED_FOR)
        if await sc.drained():
            return


@dataclass
class AckWatch:
    """Samples of the correlator's results durables: (wall time, ack floor stream sequence of the
    singles durable — the results this bench publishes, sent on to their partitions as batches —,
    what the shards' durables still have to handle)."""

    samples: list[tuple[float, int, int]] = field(default_factory=list)

    async def run(self, sc: Scenario) -> None:
        while True:
            singles = await sc.js.consumer_info(s.RESULTS_STREAM, s.CORRELATOR_SINGLES_CONSUMER)
            shards = [d for d in await correlator_durables(sc.js) or () if d != s.CORRELATOR_SINGLES_CONSUMER]
            waiting = await backlog(sc.js, s.RESULTS_STREAM, shards)
            if waiting is not None:
                floor = singles.ack_floor.stream_seq if singles.ack_floor else 0
                self.samples.append((time.time(), floor, waiting))
            await asyncio.sleep(POLL)

    def reached(self, seq: int) -> float | None:
        """When every result up to stream sequence ``seq`` was sent on and every partition durable
        had nothing left (later results still coming make this an upper bound)."""
        return next((t for t, floor, waiting in self.samples if floor >= seq and waiting == 0), None)


@dataclass
class ChildWatch:
    """The parent's incident id, from its ``opened`` event (no database scan while the correlator
    works), then the incidents under it, counted until there are ``n`` (polled)."""

    n: int
    parent_id: str | None = None
    opened_at: float | None = None  # wall time the parent's opened event was seen on the bus
    count: int = 0
    complete_at: float | None = None

    async def on_event(self, msg: Any) -> None:
        event = IncidentEvent.model_validate_json(msg.data)
        if event.incident.system_id == "core" and self.parent_id is None:
            self.parent_id, self.opened_at = event.incident.id, time.time()

    async def run(self, sc: Scenario) -> None:
        sub = await sc.nc.subscribe(s.incident_subject("opened"), cb=self.on_event)
        try:
            while self.complete_at is None:
                await self.poll(sc)
                await asyncio.sleep(COUNT_POLL)
        finally:
            await sub.unsubscribe()

    async def poll(self, sc: Scenario) -> None:
        if self.parent_id is None:
            return
        self.count = await sc.db["incidents"].count_documents({"parent_incident_id": self.parent_id})
        if self.count >= self.n and self.complete_at is None:
            self.complete_at = time.time()


async def cpu_seconds(sc: Scenario, ferret_pid: int) -> dict[str, float]:
    """CPU time used so far: the services' from their /metrics, FerretDB's from /proc (Linux)."""
    used = {"this script (publisher, fake LINE)": time.process_time()}
    async with httpx.AsyncClient(timeout=5) as http:
        for name, proc in sc.services.items():
            text = (await http.get(f"http://127.0.0.1:{proc.port}/metrics")).text
            line = next((x for x in text.splitlines() if x.startswith("process_cpu_seconds_total ")), None)
            if line is not None:
                used[name] = float(line.split()[1])
    ferret = process_cpu(ferret_pid)
    if ferret is not None:
        used["FerretDB"] = ferret
    return used


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


async def last_seq(sc: Scenario) -> int:
    info = await sc.js.stream_info(s.RESULTS_STREAM)
    return int(info.state.last_seq)


def goal(ok: bool, what: str, missed: list[str]) -> str:
    if not ok:
        missed.append(what)
    return "" if ok else "  <-- MISSED"


async def measure(sc: Scenario, ferret_pid: int, n: int, recovery_rounds: int, stage: list[str]) -> list[str]:
    missed: list[str] = []
    kids = child_monitors(n)

    stage[0] = "the healthy round"
    t = time.time()
    await sc.round(dict.fromkeys([PARENT, *kids], True))
    await settle(sc)
    print(f"healthy round: {n + 1:,} results handled in {time.time() - t:.1f} s")

    # The storm: the dependants fail twice, then the parent twice (one re-check apart).
    stage[0] = "the storm"
    before = await last_seq(sc)
    cpu0 = await cpu_seconds(sc, ferret_pid)
    t_storm = time.time()
    for _ in range(2):
        await sc.round(dict.fromkeys(kids, False))
    t_kids_published = time.time()
    kids_seq = await last_seq(sc)
    acks, children = AckWatch(), ChildWatch(n)
    watchers = [asyncio.create_task(acks.run(sc)), asyncio.create_task(children.run(sc))]
    try:
        t_parent = time.time()
        await sc.round({PARENT: False})
        await asyncio.sleep(MONITOR.recheck_interval)
        await sc.round({PARENT: False})
        all_seq = await last_seq(sc)
        stage[0] = "the storm: waiting for the first push"

        async def pushed() -> bool:
            return bool(pushes(sc))

        await until(pushed, 0.02)
        stage[0] = "the storm: waiting for every result and event to be handled"
        await settle(sc)
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    t_settled = time.time()
    cpu1 = await cpu_seconds(sc, ferret_pid)
    await children.poll(sc)
    storm = pushes(sc)

    within = "within" if len(storm) <= STORM_PUSH_LIMIT else "above"
    print(
        f"(a) LINE pushes once every result and event was handled: {len(storm):,} "
        f"(goal {STORM_PUSH_GOAL}, never more than {STORM_PUSH_LIMIT})"
        + goal(
            len(storm) == STORM_PUSH_GOAL,
            f"{len(storm)} pushes in the storm, goal {STORM_PUSH_GOAL} ({within} the limit of {STORM_PUSH_LIMIT})",
            missed,
        )
    )
    print("\n".join(describe(storm[:5])) + (f"\n    … and {len(storm) - 5:,} more" if len(storm) > 5 else ""))
    first_noc = next((p for p in storm if p.team == "noc"), None)
    if first_noc is None:
        missed.append("no push to the parent's team (noc)")
        print("(b) no push to noc")
    else:
        print(f"(b) parent's first failing result published → push received: {first_noc.at - t_parent:.2f} s")
    complete = children.complete_at
    print(
        f"(c) incidents with parent_incident_id = the parent's: {children.count:,} (goal {n:,})"
        + goal(children.count == n, f"{children.count} incidents under the parent's, goal {n}", missed)
    )
    if children.opened_at is not None:
        print(
            f"    the parent's opened event on the bus {children.opened_at - t_parent:.2f} s after its first failing result"
        )
    if complete is not None:
        print(
            f"    all {n:,} recorded {complete - t_parent:.2f} s after the parent's first failing result "
            f"(counted every {COUNT_POLL:g} s once the parent's incident id is known)"
        )
    kids_acked, all_acked = acks.reached(kids_seq), acks.reached(all_seq)
    kids_results = kids_seq - before
    if kids_acked is None or all_acked is None:
        print("    correlator throughput: not measured (the results consumer could not be read)")
    else:
        print(
            f"    correlator throughput: the dependants' {kids_results:,} failing results absorbed in "
            f"{kids_acked - t_storm:.2f} s from the first publish = {kids_results / (kids_acked - t_storm):,.0f} results/s "
            f"(publishing them took {t_kids_published - t_storm:.2f} s)"
        )
        print(
            f"    then the parent's {all_seq - kids_seq} results and its decision (1 opened + {children.count:,} "
            f"suppressed) in {all_acked - max(kids_acked, t_parent):.2f} s more; all {all_seq - before:,} "
            f"failing results drained {all_acked - t_storm:.2f} s after the first publish"
        )

    print_cpu(cpu0, cpu1, t_settled - t_storm, "the storm")
    others = Counter(
        f"{d['kind']} ({d['status']})"
        for d in await sc.db["incidents"].find({}).to_list()
        if d["_id"] != children.parent_id and d.get("parent_incident_id") != children.parent_id
    )
    print("    other incidents: " + (", ".join(f"{k} ×{v:,}" for k, v in sorted(others.items())) or "none"))

    # Recovery: everyone healthy, the parent first in each round.
    stage[0] = "the recovery rounds"
    seen = len(storm)
    before = await last_seq(sc)
    acks = AckWatch()
    watcher = asyncio.create_task(acks.run(sc))
    try:
        t_healthy = time.time()
        for r in range(recovery_rounds):
            t_round = time.time()
            await sc.round(dict.fromkeys([PARENT, *kids], True))
            if r < recovery_rounds - 1:
                await asyncio.sleep(max(0.0, MONITOR.interval - (time.time() - t_round)))
        t_last_round = time.time()
        all_seq = await last_seq(sc)
        stage[0] = "the recovery: waiting for the resolved push"

        async def resolved_pushed() -> bool:
            return any(p.team == "noc" for p in pushes(sc)[seen:])

        await until(resolved_pushed, 0.05)
        stage[0] = "the recovery: waiting for every result and event to be handled"
        await settle(sc)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    t_settled = time.time()
    cpu2 = await cpu_seconds(sc, ferret_pid)
    total = pushes(sc)
    print(
        f"(d) after {recovery_rounds} healthy rounds {MONITOR.interval:g} s apart: LINE pushes in total: "
        f"{len(total):,} (goal exactly {TOTAL_PUSH_GOAL})"
        + goal(len(total) == TOTAL_PUSH_GOAL, f"{len(total)} pushes in total, goal 2", missed)
    )
    print("\n".join(describe(total[seen : seen + 5])))
    resolved = next(p for p in total[seen:] if p.team == "noc")
    print(
        f"    parent's first healthy result published → 'resolved' push received: {resolved.at - t_healthy:.2f} s "
        f"(quiet_period {MONITOR.effective_quiet_period:g} s, correlator tick 1 s)"
    )
    if children.parent_id is not None:
        done = await sc.db["incidents"].count_documents(
            {"parent_incident_id": children.parent_id, "status": "resolved"}
        )
        print(f"    dependants' incidents resolved: {done:,} of {n:,}")
    all_acked = acks.reached(all_seq)
    if all_acked is not None:
        print(
            f"    the {all_seq - before:,} healthy results: all handled {all_acked - t_healthy:.2f} s after the "
            f"first was published, {all_acked - t_last_round:.2f} s after the last round was"
        )
    still_open = await sc.db["incidents"].find({"status": {"$ne": "resolved"}}).to_list()
    print(f"    incidents still open: {len(still_open)}")
    for doc in still_open[:3]:
        started = doc["started_at"].timestamp() - t_healthy
        print(
            f"      {doc['kind']} {doc['system_id']}: {doc['title']} "
            f"(started {started:+.1f} s from the parent's first healthy result)"
        )
    print_cpu(cpu1, cpu2, t_settled - t_healthy, "the recovery")
    return missed


def print_cpu(before: dict[str, float], after: dict[str, float], wall: float, what: str) -> None:
    used = ", ".join(f"{name} {after[name] - before[name]:.1f}" for name in after if name in before)
    print(f"    CPU seconds during {what} ({wall:.1f} s wall, first publish → settled): {used}")


def print_log_tails(sc: Scenario, lines: int = 6) -> None:
    for name, proc in sc.services.items():
        tail = proc.output().splitlines()[-lines:]
        print(f"--- last {len(tail)} lines of the {name} log", *tail, sep="\n", file=sys.stderr)


async def servers(
    stack: contextlib.AsyncExitStack, prefix: str
) -> tuple[Path, LocalServer, LocalServer, AsyncMongoClient[Document]]:
    """A temporary folder, nats-server, FerretDB and a client of it, all stopped by ``stack``."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    nats_server = start_nats(tmp / "nats")
    stack.callback(nats_server.stop)
    ferret = start_ferretdb(tmp / "ferretdb")
    stack.callback(ferret.stop)
    mongo = connect(ferret.url)
    stack.push_async_callback(mongo.close)
    return tmp, nats_server, ferret, mongo


async def run(args: argparse.Namespace, stage: list[str]) -> list[str]:
    async with contextlib.AsyncExitStack() as stack:
        tmp, nats_server, ferret, mongo = await servers(stack, "fao-storm-")
        stage[0] = "applying the inventory and starting the correlator and the notifier"
        t = time.time()
        sc = await stack.enter_async_context(
            scenario(tmp, nats_server.url, ferret.url, mongo["storm"], inventory(args.children))
        )
        print(f"inventory applied, correlator and notifier healthy: {time.time() - t:.1f} s")
        try:
            missed = await measure(sc, ferret.process.pid, args.children, args.recovery_rounds, stage)
        except BaseException:
            print_log_tails(sc)
            raise
        if missed:
            print_log_tails(sc)
        stage[0] = "stopping"
        return missed


Run = Callable[[argparse.Namespace, list[str]], Awaitable[list[str]]]


def exit_bounded(args: argparse.Namespace, run: Run) -> NoReturn:
    """``bounded(args, run)``, then exit with its code (143 when SIGTERM stopped it)."""
    try:
        code = asyncio.run(bounded(args, run))
    except asyncio.CancelledError:  # SIGTERM: everything was stopped on the way out
        print("FAILED: stopped by SIGTERM", file=sys.stderr)
        code = 143
    sys.exit(code)


async def bounded(args: argparse.Namespace, run: Run) -> int:
    """``run(args, stage)`` within ``args.timeout`` seconds, SIGTERM cancelling it: 0 when every
    goal was met, 1 when one was missed (``run`` returns what was missed), 2 when the time ran out
    (during ``stage[0]``, which ``run`` keeps up to date)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    stage = ["starting nats-server and FerretDB"]
    started = time.time()
    deadline = asyncio.timeout(args.timeout)
    try:
        async with deadline:
            missed = await run(args, stage)
    except TimeoutError:
        if not deadline.expired():
            raise
        print(f"FAILED: timed out after {args.timeout:g} s during {stage[0]}", file=sys.stderr)
        return 2
    print(f"whole run: {time.time() - started:.0f} s; load average at the end: {os.getloadavg()[0]:.1f}")
    if missed:
        print("FAILED: " + "; ".join(missed), file=sys.stderr)
        return 1
    print("all goals met")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--children", type=int, default=1000, help="dependants of core (1..5000)")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run, seconds")
    parser.add_argument("--recovery-rounds", type=int, default=3, help="healthy rounds at the end (1..10)")
    args = parser.parse_args()
    if not 1 <= args.children <= 5000 or not 1 <= args.recovery_rounds <= 10 or args.timeout <= 0:
        parser.error("--children must be 1..5000, --recovery-rounds 1..10, --timeout positive")
    print(f"code: {code_version()}")
    print(
        f"machine: {os.cpu_count()} CPUs; {args.children:,} dependants of core, one monitor each; monitors: "
        f"interval {MONITOR.interval:g} s, timeout {MONITOR.timeout:g} s, recheck_interval "
        f"{MONITOR.recheck_interval:g} s, confirm {MONITOR.confirm.failures} of {MONITOR.confirm.of}, "
        f"quiet_period {MONITOR.effective_quiet_period:g} s (a held dependant waits at most "
        f"{MONITOR.confirm_time:g} s for the parent)"
    )
    exit_bounded(args, run)


if __name__ == "__main__":
    main()
