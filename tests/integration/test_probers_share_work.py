"""Probers of one zone share its monitors (real prober processes, real NATS, targets on 127.0.0.1).

Two probers start, a third joins, then one is killed with SIGKILL. Counted from the results
stream afterwards, per monitor and per slot of its schedule (``fao.prober.cadence``: slots are
the same on every prober): no slot is ever checked twice; once the dead prober's heartbeat has
expired (one TTL) its monitors are checked by the survivors at their next slot, and every monitor
is checked in every slot; each prober ran a share while it lived.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest_asyncio
from aiohttp import web
from nats.aio.msg import Msg
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually

from fao.cli.apply import apply
from fao.prober.cadence import unit_hash
from fao.runtime.store import Document
from fao.schemas import CheckResult
from fao.schemas import subjects as s
from fao.schemas.results import ResultMessage
from fao.testing.processes import ServiceProcess

MONITORS = 24
INTERVAL = 2.0
TTL = 2.0


def _inventory(port: int) -> str:
    lines = [
        "teams:",
        '  - {id: apps, name: Apps, line_groups: ["C0123456789abcdef0123456789abcdef"]}',
        "systems:",
        "  - {id: portal, name: Portal, team: apps}",
        "monitors:",
    ]
    lines += [
        f'  - {{id: m{i:02d}, system: portal, check: {{type: http, url: "http://127.0.0.1:{port}/{i}"}},'
        f" interval: {INTERVAL}s, timeout: 1s}}"
        for i in range(MONITORS)
    ]
    return "\n".join(lines) + "\n"


@pytest_asyncio.fixture
async def target_port() -> AsyncIterator[int]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{n}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1])
    await runner.cleanup()


def _slot(result: CheckResult) -> int:
    """The slot of the monitor's schedule a scheduled run belongs to (runs are jittered by at most
    10 % of the interval around the slot's grid point)."""
    unit = unit_hash(result.monitor_id)
    return round(result.started_at.timestamp() / INTERVAL - unit)


async def test_three_probers_one_killed_every_monitor_checked_none_twice(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document], target_port: int
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(_inventory(target_port), encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    nc = await nats.connect(nats_url)
    live: list[CheckResult] = []

    async def collect(msg: Msg) -> None:
        live.extend(ResultMessage.model_validate_json(msg.data).results)

    await nc.subscribe(s.RESULTS_SUBJECTS, cb=collect)

    def prober(name: str) -> ServiceProcess:
        env = {
            "FAO_NATS_URL": nats_url, "FAO_ZONE": "default", "FAO_PROBER_ID": name,
            "FAO_PROBER_TTL": str(TTL), "NO_PROXY": "127.0.0.1",
        }  # fmt: skip
        return ServiceProcess("prober", env, tmp_path / name)

    def checked_since(since: float, by: str | None = None) -> set[str]:
        return {r.monitor_id for r in live if r.started_at.timestamp() > since and by in (None, r.prober_id)}

    probers = {name: prober(name) for name in ("p-a", "p-b", "p-c")}
    for proc in probers.values():
        proc.log_path.parent.mkdir()
    try:
        for name in ("p-a", "p-b"):
            await asyncio.to_thread(probers[name].start)
        joined = time.time()
        await asyncio.to_thread(probers["p-c"].start)

        async def shared_by_three() -> bool:
            since = joined + INTERVAL
            return len(checked_since(since)) == MONITORS and all(checked_since(since, p) for p in probers)

        await eventually(shared_by_three, 30, "three probers sharing every monitor")
        killed_at = time.time()
        probers["p-c"].kill()

        # Every monitor checked after killed_at + TTL + 3 intervals: then the window checked below
        # (from one TTL and one interval after the kill to one interval before the stop) is at
        # least one interval long, so it holds a slot of every monitor.
        async def taken_over() -> bool:
            return len(checked_since(killed_at + TTL + 3 * INTERVAL)) == MONITORS

        await eventually(taken_over, 30, "the killed prober's monitors checked by the others")
        stopped_at = time.time()
    finally:
        for proc in probers.values():
            proc.stop()

    sub = await nc.jetstream().pull_subscribe(s.RESULTS_SUBJECTS, durable="count", stream=s.RESULTS_STREAM)
    stored = (await nc.jetstream().stream_info(s.RESULTS_STREAM)).state.messages
    results: list[CheckResult] = []
    for _ in range(stored):
        [msg] = await sub.fetch(1, timeout=5)
        results.extend(ResultMessage.model_validate_json(msg.data).results)
    await nc.close()
    logs = "\n".join(f"--- {n}\n{p.output()}" for n, p in probers.items())

    assert {r.attempt for r in results} == {"scheduled"}, "healthy targets: no re-checks"
    per_slot = Counter((r.monitor_id, _slot(r)) for r in results)
    twice = {key: n for key, n in per_slot.items() if n > 1}
    assert not twice, f"slots checked more than once: {twice}\n{logs}"

    by_prober = Counter(
        r.prober_id for r in results if joined + INTERVAL < r.started_at.timestamp() < killed_at
    )
    assert set(by_prober) == set(probers), f"each of the three ran a share: {by_prober}"
    after = [r for r in results if r.started_at.timestamp() > killed_at + TTL + 0.5]
    assert {r.prober_id for r in after} == {"p-a", "p-b"}, "only the survivors once the TTL is over"
    moved = {r.monitor_id for r in results if r.prober_id == "p-c"}
    takers = {r.prober_id for r in after if r.monitor_id in moved}
    assert takers == {"p-a", "p-b"}, f"the dead prober's monitors went to both survivors: {takers}"
    taken_at = [
        min(
            r.started_at.timestamp()
            for r in results
            if r.monitor_id == m and r.started_at.timestamp() > killed_at
        )
        for m in moved
    ]
    # Its key expires at most one TTL after its last heartbeat; the next slot follows within an
    # interval (plus jitter, and the server's expiry sweep).
    assert max(taken_at) - killed_at <= TTL + INTERVAL + 1.0, (
        f"taken over {max(taken_at) - killed_at:.2f}s after"
    )

    # Every monitor in every slot from one TTL after the kill until the probers stopped.
    slots: dict[str, set[int]] = defaultdict(set)
    for r in results:
        slots[r.monitor_id].add(_slot(r))
    first, last = killed_at + TTL + INTERVAL, stopped_at - INTERVAL
    for i in range(MONITORS):
        monitor = f"m{i:02d}"
        unit = unit_hash(monitor)
        expected = {k for k in range(int(first / INTERVAL) - 2, int(last / INTERVAL) + 2)
                    if first <= (k + unit) * INTERVAL <= last}  # fmt: skip
        assert expected, "the window after the takeover holds whole slots"
        missing = expected - slots[monitor]
        assert not missing, f"{monitor} not checked in slots {sorted(missing)}\n{logs}"
