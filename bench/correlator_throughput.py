"""How many check results per second the correlator folds into state (real NATS + FerretDB).

Starts a nats-server and FerretDB on loopback, registers MONITORS monitors in the KV bucket, runs
the correlator in-process, publishes RESULTS results (every monitor in turn; rounds 3-4 of every 10 fail,
so every monitor goes down and comes back up: incidents and events happen too), and reports results/s and CPU µs per result
once the durable consumer has acknowledged them all. Bounded: --results (default 5,000) and
--max-seconds (default 120).

    python bench/correlator_throughput.py [--monitors 200] [--results 5000] [--healthy]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats

from fao.correlator.app import CorrelatorSettings, build
from fao.runtime.bus import ensure_bus, monitors_bucket
from fao.runtime.launch import start_ferretdb, start_nats
from fao.runtime.store import connect
from fao.schemas import CheckResult, ErrorKind, HttpCheck, Monitor, System, Team
from fao.schemas import subjects as s
from fao.schemas.subjects import monitor_key, result_subject
from fao.testing.inprocess import serving


async def run(monitors: int, results: int, max_seconds: float, healthy: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="fao-bench-") as tmp:
        nats_server = start_nats(Path(tmp) / "nats")
        ferret = start_ferretdb(Path(tmp) / "ferretdb")
        try:
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            await ensure_bus(js)
            kv = await monitors_bucket(js)
            mongo = connect(ferret.url)
            db = mongo["bench"]
            team = Team(id="t", name="t")
            await db["teams"].insert_one({"_id": "t", **team.model_dump(mode="json")})
            system = System(id="sys", name="System", team="t")
            await db["systems"].insert_one({"_id": "sys", **system.model_dump(mode="json")})
            for i in range(monitors):
                m = Monitor(id=f"m{i}", system="sys", check=HttpCheck(url="http://127.0.0.1:9/"), interval=30)
                await kv.put(monitor_key(m.id), m.model_dump_json().encode())
            settings = CorrelatorSettings(
                nats_url=nats_server.url, mongo_url=ferret.url, mongo_db="bench", http_port=-1
            )
            start = datetime(2026, 11, 1, tzinfo=UTC)
            async with serving(build(settings)):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for n in range(results):
                    i = n % monitors
                    # Two failing rounds in ten: every monitor goes down, then up (unless --healthy).
                    ok = healthy or (n // monitors) % 10 not in (3, 4)
                    r = CheckResult(
                        monitor_id=f"m{i}", system_id="sys", zone="default", prober_id="bench",
                        started_at=start + timedelta(seconds=n), ok=ok, latency_ms=1.0,
                        error_kind=ErrorKind.NONE if ok else ErrorKind.TIMEOUT,
                    )  # fmt: skip
                    await js.publish(
                        result_subject(r.monitor_id),
                        r.model_dump_json().encode(),
                        headers={"Nats-Msg-Id": r.msg_id},
                    )
                deadline = time.perf_counter() + max_seconds
                while True:
                    info = await js.consumer_info(s.RESULTS_STREAM, s.CORRELATOR_RESULTS_CONSUMER)
                    if info.num_pending == 0 and info.num_ack_pending == 0:
                        break
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"gave up after {max_seconds}s: {info.num_pending} pending")
                    await asyncio.sleep(0.05)
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            incidents = await db["incidents"].count_documents({})
            print(f"monitors={monitors} results={results} incidents={incidents} healthy={healthy}")
            print(f"throughput: {results / wall:,.0f} results/s wall ({wall:.2f} s)")
            print(f"CPU of this process (correlator + publisher): {cpu / results * 1e6:,.0f} µs/result")
            await mongo.close()
            await nc.close()
        finally:
            ferret.stop()
            nats_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--monitors", type=int, default=200)
    parser.add_argument("--results", type=int, default=5000)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--healthy", action="store_true", help="every result succeeds (the common case)")
    args = parser.parse_args()
    asyncio.run(run(args.monitors, args.results, args.max_seconds, args.healthy))


if __name__ == "__main__":
    main()
