"""A storm: N monitors fail at once — how long until the correlator has committed every incident and
suppression, and how many LINE pushes follow (real NATS + FerretDB, correlator and notifier in process).

Starts a nats-server and FerretDB on loopback and registers N monitors (default 10,000) in S = N / 10
systems of one team: ``core`` (the core network), ``--branches`` distribution systems that depend on
it, and every other system depending on one of them (``--flat``: no dependencies at all, S
independent outages). Then, with the correlator running in this process (``fao.correlator.app.build``):

1. one healthy round for every monitor, published as probers do (``ResultBatch`` messages per
   partition subject), and waited for;
2. the storm: every monitor fails twice (its X-of-Y confirmation, ``recheck_interval`` apart),
   published at once. Timed from the first failing publish until every system has its incident
   committed (core's opened; every dependant's suppressed under its parent's, or with ``--flat``
   every system's opened), the results consumer has acknowledged everything and the journal is
   empty: **settled**. Printed: the seconds, the results per second absorbed, the incident events
   by type and their bytes, and the correlator's CPU;
3. the notifier is started (this process, the real line-bot-sdk pointed at the fake LINE server;
   each team its own group) over the stream of events the storm produced, and the LINE pushes are
   counted once every delivery is final and every digest window flushed.

Bounded: --monitors (at most 20,000) and --timeout per phase (default 300 s); exits 1 when the
storm does not settle in time.

    python bench/correlator_storm.py [--monitors 10000] [--branches 10] [--flat] [--timeout 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.*

from bench.correlator_throughput import publish_all

from fao.correlator.app import RESULTS_GROUP, CorrelatorSettings
from fao.correlator.app import build as build_correlator
from fao.notifier.app import build as build_notifier
from fao.notifier.settings import NotifierSettings
from fao.runtime.bus import ensure_bus, monitors_bucket
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.launch import start_ferretdb, start_nats
from fao.runtime.service import serve
from fao.runtime.store import Document, connect
from fao.schemas import CheckResult, ErrorKind, HttpCheck, Monitor, System, Team
from fao.schemas import subjects as s
from fao.schemas.subjects import monitor_key
from fao.testing.backlog import correlator_drained, drained
from fao.testing.fake_line import FakeLineServer
from fao.testing.inprocess import serving

TOKEN = "bench-token"
NOC_GROUP, APPS_GROUP = "C" + "1" * 32, "C" + "2" * 32
PER_SYSTEM = 10
POLL = 0.05
PUT_CONCURRENCY = 200


def inventory(monitors: int, branches: int, flat: bool) -> tuple[list[Team], list[System], list[Monitor]]:
    teams = [
        Team(id="noc", name="ทีมเครือข่าย", line_groups=[NOC_GROUP]),
        Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[APPS_GROUP]),
    ]
    count = max(1 + branches + 1, monitors // PER_SYSTEM)
    systems: list[System] = []
    for n in range(count):
        if flat:
            systems.append(System(id=f"svc-{n:05d}", name=f"Service {n}", team="apps"))
        elif n == 0:
            systems.append(System(id="core", name="Core network", team="noc"))
        elif n <= branches:
            systems.append(
                System(id=f"dist-{n:02d}", name=f"Distribution {n}", team="noc", depends_on=["core"])
            )
        else:
            parent = f"dist-{(n % branches) + 1:02d}"
            systems.append(System(id=f"svc-{n:05d}", name=f"Service {n}", team="apps", depends_on=[parent]))
    checks = [
        Monitor(
            id=f"m{i:05d}",
            system=systems[i % count].id,
            check=HttpCheck(url=f"http://127.0.0.1:9/{i}"),
            interval=30,
            recheck_interval=1,
            timeout=1,
        )
        for i in range(monitors)
    ]
    return teams, systems, checks


def results(monitors: list[Monitor], at: datetime, ok: bool) -> list[CheckResult]:
    return [
        CheckResult(
            monitor_id=m.id,
            system_id=m.system,
            zone="default",
            prober_id="bench",
            started_at=at,
            ok=ok,
            latency_ms=1.0,
            error_kind=ErrorKind.NONE if ok else ErrorKind.CONNECTION_REFUSED,
            detail="" if ok else "connection refused",
        )
        for m in monitors
    ]


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:  # noqa: ASYNC109
    """Poll ``predicate`` until it is true; the seconds it took."""
    started = time.perf_counter()
    while not await predicate():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(POLL)
    return time.perf_counter() - started


async def put_inventory(
    db: AsyncDatabase[Document],
    js: JetStreamContext,
    teams: list[Team],
    systems: list[System],
    checks: list[Monitor],
) -> None:
    for team in teams:
        await db[TEAMS].insert_one(to_doc(team, team.id))
    for start in range(0, len(systems), 50):
        await db[SYSTEMS].insert_many([to_doc(x, x.id) for x in systems[start : start + 50]])
    kv = await monitors_bucket(js)
    for start in range(0, len(checks), PUT_CONCURRENCY):
        await asyncio.gather(
            *(
                kv.put(monitor_key(m.id), m.model_dump_json().encode())
                for m in checks[start : start + PUT_CONCURRENCY]
            )
        )


async def storm(args: argparse.Namespace) -> int:
    teams, systems, checks = inventory(args.monitors, args.branches, args.flat)
    with tempfile.TemporaryDirectory(prefix="fao-bench-storm-") as tmp:
        nats_server = start_nats(Path(tmp) / "nats")
        ferret = start_ferretdb(Path(tmp) / "ferretdb")
        nc = await nats.connect(nats_server.url)
        mongo = connect(ferret.url)
        try:
            js = nc.jetstream()
            await ensure_bus(js)
            db = mongo["bench"]
            await put_inventory(db, js, teams, systems, checks)
            print(
                f"{len(checks):,} monitors in {len(systems):,} systems"
                f" ({'no dependencies' if args.flat else f'core → {args.branches} branches → the rest'})",
                flush=True,
            )
            settings = CorrelatorSettings(
                nats_url=nats_server.url,
                mongo_url=ferret.url,
                mongo_db="bench",
                http_port=-1,
                log_level="warning",
                results_group=args.group,
            )
            t0 = datetime.now(UTC)
            async with serving(build_correlator(settings)):

                async def results_done() -> bool:
                    return await correlator_drained(js)

                await publish_all(js, results(checks, t0, ok=True), 256)
                healthy = await until(results_done, args.timeout, "the healthy round")
                print(f"healthy round: {len(checks):,} results in {healthy:.2f} s", flush=True)

                cpu0, wall0 = time.process_time(), time.perf_counter()
                storm_at = datetime.now(UTC)
                published = 0
                for n in range(2):  # confirmation: 2 of 3, one recheck apart
                    published += await publish_all(
                        js, results(checks, storm_at + timedelta(seconds=n), ok=False), 256
                    )
                publish_s = time.perf_counter() - wall0

                async def settled() -> bool:
                    if not await results_done():
                        return False
                    if await db["correlator_journal"].count_documents({}):
                        return False
                    open_incidents = {"status": {"$ne": "resolved"}, "kind": "outage"}
                    return await db["incidents"].count_documents(open_incidents) >= len(systems)

                took = await until(settled, args.timeout, "every incident committed") + publish_s
                cpu = time.process_time() - cpu0
            info = await js.stream_info(s.INCIDENTS_STREAM)
            kinds: Counter[str] = Counter()
            suppressed = await db["incidents"].count_documents({"parent_incident_id": {"$ne": None}})
            decided: list[datetime] = []
            async for doc in db["incident_timeline"].find({}, {"type": 1, "at": 1}):
                kinds[str(doc["type"])] += 1
                decided.append(doc["at"])
            print(
                f"storm: {2 * len(checks):,} failing results ({published:,} messages, published in {publish_s:.2f} s)"
                f" settled {took:.2f} s after the first publish: {2 * len(checks) / took:,.0f} results/s;"
                f" correlator CPU {cpu:.1f} s ({cpu / (2 * len(checks)) * 1e6:,.0f} µs/result)",
                flush=True,
            )
            groups = REGISTRY.get_sample_value(
                "fao_message_groups_total", {"service": "correlator", "outcome": "ok"}
            )
            print(
                f"result messages committed in groups of up to {args.group}: {groups or 0:.0f} groups of several"
                f" (the rest one by one)",
                flush=True,
            )
            if decided:
                first, last = (
                    (min(decided) - storm_at).total_seconds(),
                    (max(decided) - storm_at).total_seconds(),
                )
                print(f"incident events decided from +{first:.2f} s to +{last:.2f} s after the storm began")
            print(
                f"incidents: {await db['incidents'].count_documents({}):,} ({suppressed:,} suppressed under a parent);"
                f" events {dict(sorted(kinds.items()))}; incident stream {info.state.messages:,} messages,"
                f" {info.state.bytes / 1e6:.1f} MB",
                flush=True,
            )
            pushes = await notify(nats_server.url, ferret.url, js, db, args.timeout)
            print(
                f"LINE pushes after the storm: {pushes} ({', '.join(f'{g[:5]}…' for g in (NOC_GROUP, APPS_GROUP))})"
            )
            goal = 10.0
            print(f"goal: settled in ≤ {goal:g} s: {'met' if took <= goal else 'NOT met'}")
            return 0
        finally:
            await mongo.close()
            await nc.close()
            ferret.stop()
            nats_server.stop()


async def notify(
    nats_url: str, mongo_url: str, js: JetStreamContext, db: AsyncDatabase[Document], limit: float
) -> int:
    """Run the notifier over the storm's events; the pushes LINE accepted."""
    groups = {NOC_GROUP: 12, APPS_GROUP: 30}
    async with FakeLineServer(access_token=TOKEN, groups=groups) as line:
        settings = NotifierSettings(
            nats_url=nats_url, mongo_url=mongo_url, mongo_db="bench", http_port=-1, log_level="warning",
            line_channel_access_token=TOKEN, line_api_base=line.base_url, storm_window=10,
            review_enabled=False,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(serve(build_notifier(settings), stop))

        async def delivered() -> bool:
            if not await drained(js, s.INCIDENTS_STREAM, (s.NOTIFIER_CONSUMER,)):
                return False
            if await db["digests"].count_documents({"status": "open"}):
                return False
            return not await db["deliveries"].count_documents({"status": {"$in": ["pending", "claimed"]}})

        try:
            took = await until(delivered, limit, "every delivery final")
            print(f"notifier: every delivery final after {took:.2f} s", flush=True)
        finally:
            stop.set()
            await task
        return len(line.pushes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--flat", action="store_true", help="no dependencies: every system its own outage")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--group",
        type=int,
        default=RESULTS_GROUP,
        help="result messages committed together at most (1: none)",
    )
    args = parser.parse_args()
    args.monitors = max(PER_SYSTEM * (args.branches + 2), min(args.monitors, 20_000))
    raise SystemExit(asyncio.run(storm(args)))


if __name__ == "__main__":
    main()
