"""How many check results per second the correlator folds into state (real NATS + FerretDB).

Starts a nats-server and FerretDB on loopback, registers MONITORS monitors in the KV bucket,
publishes RESULTS results, then runs the correlator in-process over them (every monitor in turn; rounds 3-4 of every 10 fail,
so every monitor goes down and comes back up: incidents and events happen too), and reports results/s and CPU µs per result
once its durable consumers have acknowledged them all. Bounded: --results (default 5,000) and
--max-seconds (default 120).

    python bench/correlator_throughput.py [--monitors 200] [--results 5000] [--healthy] [--batch 256]
        [--failing 0.3]

``--failing 0.3``: three monitors in ten of every system always fail (30 % of results fail; the
systems go down and stay down) instead of the two failing rounds in ten.

``--batch N`` publishes the results as probers do (``ResultBatch`` messages of up to N results per
partition subject); ``--batch 1`` as single-result messages (older probers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fao.correlator.app import CorrelatorSettings, build
from fao.runtime.bus import ensure_bus, monitors_bucket
from fao.runtime.launch import start_ferretdb, start_nats
from fao.runtime.store import connect
from fao.schemas import CheckResult, ErrorKind, HttpCheck, Monitor, System, Team
from fao.schemas import subjects as s
from fao.schemas.results import ResultBatch
from fao.schemas.subjects import monitor_key, result_batch_subject, result_partition, result_subject
from fao.testing.backlog import consumer_infos, correlator_durables
from fao.testing.inprocess import serving

SYSTEMS = 100


def _result(n: int, monitors: int, start: datetime, healthy: bool, failing: float = 0.0) -> CheckResult:
    i = n % monitors
    # --failing: this share of every system's monitors always fails (down, steadily); otherwise
    # two failing rounds in ten: every monitor goes down, then up (unless healthy)
    steady = (i // SYSTEMS) % 10 >= round(failing * 10)
    ok = steady if failing else healthy or (n // monitors) % 10 not in (3, 4)
    return CheckResult(
        monitor_id=f"m{i}", system_id=f"sys{i % SYSTEMS}", zone="default", prober_id="bench",
        started_at=start + timedelta(seconds=n), ok=ok, latency_ms=1.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.TIMEOUT,
    )  # fmt: skip


# Below the results stream's 64 KiB message limit, as the prober keeps its batches.
MAX_BATCH_BYTES = 60 * 1024
_batch_ids = itertools.count(1)


async def _publish_batch(js: JetStreamContext, partition: int, results: list[CheckResult]) -> int:
    """Publish one batch (split in halves while too large); returns the messages sent."""
    body = ResultBatch(
        prober_id="bench", zone="default", batch_id=f"bench.{next(_batch_ids)}", results=results
    )
    data = body.model_dump_json().encode()
    if len(data) > MAX_BATCH_BYTES and len(results) > 1:
        half = len(results) // 2
        return await _publish_batch(js, partition, results[:half]) + await _publish_batch(
            js, partition, results[half:]
        )
    await js.publish(result_batch_subject("default", partition), data, headers={"Nats-Msg-Id": body.batch_id})
    return 1


async def publish_all(js: JetStreamContext, results: list[CheckResult], batch: int) -> int:
    """Publish as a busy prober does: per partition subject, a batch when it holds ``batch``
    results (the rest at the end); single-result messages when ``batch`` is 1. Returns messages."""
    if batch == 1:
        for r in results:
            await js.publish(
                result_subject(r.monitor_id), r.model_dump_json().encode(), headers={"Nats-Msg-Id": r.msg_id}
            )
        return len(results)
    buffers: dict[int, list[CheckResult]] = {}
    sent = 0
    for r in results:
        partition = result_partition(r.system_id)
        buffer = buffers.setdefault(partition, [])
        buffer.append(r)
        if len(buffer) >= batch:
            sent += await _publish_batch(js, partition, buffer)
            buffers[partition] = []
    for partition, buffer in buffers.items():
        if buffer:
            sent += await _publish_batch(js, partition, buffer)
    return sent


async def _first_round_ends(js: JetStreamContext, batch: int) -> dict[int | None, int]:
    """Once the first round is published (and nothing else): each results partition → the stream
    sequence of its last message of that round. Single results (``batch`` 1, key None) are read
    by the singles durable and sent on to their partitions as batches: their first round ends
    when the singles durable has passed it (the batches sent on may still be on their way)."""
    if batch == 1:
        return {None: (await js.stream_info(s.RESULTS_STREAM)).state.last_seq}
    ends: dict[int | None, int] = {}
    for partition in range(s.RESULT_PARTITIONS):
        with contextlib.suppress(NotFoundError):  # no monitor in this partition
            last = await js.get_last_msg(s.RESULTS_STREAM, result_batch_subject("default", partition))
            ends[partition] = int(last.seq or 0)
    return ends


def _passed(floors: dict[str, int], ends: dict[int | None, int]) -> bool:
    """Every durable has acknowledged the first round of each partition it reads."""
    for name, floor in floors.items():
        parts: frozenset[int | None] = (
            frozenset({None})
            if name == s.CORRELATOR_SINGLES_CONSUMER
            else frozenset(s.consumer_partitions(name) or ())
        )
        if any(floor < end for key, end in ends.items() if key in parts):
            return False
    return True


async def run(
    monitors: int,
    results: int,
    max_seconds: float,
    healthy: bool = False,
    batch: int = 256,
    failing: float = 0.0,
) -> None:
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
            for n in range(SYSTEMS):
                system = System(id=f"sys{n}", name=f"System {n}", team="t")
                await db["systems"].insert_one({"_id": system.id, **system.model_dump(mode="json")})
            for i in range(monitors):
                m = Monitor(
                    id=f"m{i}",
                    system=f"sys{i % SYSTEMS}",
                    check=HttpCheck(url="http://127.0.0.1:9/"),
                    interval=30,
                )
                await kv.put(monitor_key(m.id), m.model_dump_json().encode())
            settings = CorrelatorSettings(
                nats_url=nats_server.url, mongo_url=ferret.url, mongo_db="bench", http_port=-1
            )
            start = datetime(2026, 11, 1, tzinfo=UTC)
            # Published first, then the correlator is started and timed until it has acknowledged
            # everything: its own throughput, not the publisher's.
            # The first round (one result per monitor: every state is new and written) is timed
            # apart from the rest (the steady state).
            pub0 = time.perf_counter()
            everything = [_result(n, monitors, start, healthy, failing) for n in range(results)]
            messages = await publish_all(js, everything[:monitors], batch)
            first_round_ends = await _first_round_ends(js, batch)
            messages += await publish_all(js, everything[monitors:], batch)
            published = time.perf_counter() - pub0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            first_round: tuple[float, float] | None = None
            left_after_first = 0
            async with serving(build(settings)):
                deadline = time.perf_counter() + max_seconds
                while True:
                    # every durable of the correlator (one per shard, one for singles)
                    durables = await correlator_durables(js)
                    infos = None if durables is None else await consumer_infos(js, s.RESULTS_STREAM, durables)
                    pending = None
                    if infos is not None:
                        floors = {i.name: i.ack_floor.stream_seq if i.ack_floor else 0 for i in infos}
                        pending = sum(int(i.num_pending or 0) + int(i.num_ack_pending or 0) for i in infos)
                        if first_round is None and _passed(floors, first_round_ends):
                            # the messages grouped behind a first round are acknowledged with it:
                            # what is left is what these messages still hold
                            first_round = time.perf_counter(), time.process_time()
                            left_after_first = min(results - monitors, pending * batch)
                        if pending == 0:
                            break
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"gave up after {max_seconds}s: {pending} pending")
                    await asyncio.sleep(0.02)
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                end_wall, end_cpu = time.perf_counter(), time.process_time()
            incidents = await db["incidents"].count_documents({})
            print(
                f"monitors={monitors} results={results} batch={batch} incidents={incidents} healthy={healthy}"
                f" failing={failing:.0%}"
            )
            print(
                f"throughput: {results / wall:,.0f} results/s wall ({wall:.2f} s, start-up and first round included)"
            )
            if first_round is not None and left_after_first < (results - monitors) / 2:
                # every shard's first message is committed with the messages grouped behind it
                # (up to FAO_RESULTS_GROUP): too little is left to time the rest apart
                print(f"after the first round: {left_after_first:,} results left, too few to time apart")
            elif first_round is not None and end_wall > first_round[0]:
                rest = left_after_first
                steady_wall, steady_cpu = end_wall - first_round[0], end_cpu - first_round[1]
                print(
                    f"after the first round: {rest / steady_wall:,.0f} results/s wall"
                    f" ({rest:,} results in {steady_wall:.2f} s), {steady_cpu / rest * 1e6:,.0f} µs CPU/result"
                )
            print(f"published {messages:,} messages in {published:.2f} s before the correlator started")
            print(
                f"CPU of the correlator (this process, start-up included): {cpu / results * 1e6:,.0f} µs/result"
            )
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
    parser.add_argument("--batch", type=int, default=256, help="results per message (1: single results)")
    parser.add_argument(
        "--failing", type=float, default=0.0, help="share of monitors (tenths) that always fail, e.g. 0.3"
    )
    args = parser.parse_args()
    asyncio.run(
        run(args.monitors, args.results, args.max_seconds, args.healthy, max(1, args.batch), args.failing)
    )


if __name__ == "__main__":
    main()
