"""A LINE outage for one team's group, with a notifier crash in the middle: real notifier processes
(``python -m fao.notifier``), real nats-server and FerretDB, the fake LINE API.

LINE fails for ``FAIL_FOR`` = two minutes, as issue 7 asks; the "delivery failing" threshold (5 min
by default) is ``FAILING_AFTER`` = 4 s and the back-off is capped at 1 s, so every phase — failing,
noticed, crashed, resumed, healed — happens inside those two minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import claim_id, retry_key
from fao.runtime.bus import ensure_streams
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import Incident, IncidentEvent, System, Team
from fao.schemas import subjects as s
from fao.testing.fake_line import PUSH_PATH, FakeLineServer, RecordedRequest

TOKEN = "outage-test-token"
GROUP_A = "C" + "a" * 32  # team apps: its LINE "fails"
GROUP_B = "C" + "b" * 32  # team infra: its LINE works
GROUP_OPS = "C" + "0" * 32  # the platform team's group (no incident of its own here)
FAIL_FOR = 120.0
FAILING_AFTER = 4.0
SLOW_FAILURE = 0.5  # each failing push also takes this long (slow LINE calls, as in the issue)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NotifierProcess:
    """One ``python -m fao.notifier`` with its own /healthz + /metrics port and log file."""

    name: str
    port: int
    log: Path
    process: asyncio.subprocess.Process

    async def metrics(self) -> dict[str, float]:
        """The unlabelled samples of /metrics (and ``fao_service_active``), by name."""
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.port}/metrics") as r:
            text = await r.text()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            if name == 'fao_service_active{service="notifier"}':
                name = "fao_service_active"
            samples[name] = float(value)
        return samples

    async def healthz(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
            return r.status, json.loads(await r.text())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


@dataclass
class Scenario:
    db: AsyncDatabase[Document]
    js: JetStreamContext
    line: FakeLineServer
    env: dict[str, str]
    tmp: Path
    processes: list[NotifierProcess]

    async def start(self, name: str) -> NotifierProcess:
        port = free_port()
        log = self.tmp / f"{name}.log"
        env = {**self.env, "FAO_HTTP_PORT": str(port)}
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fao.notifier", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        notifier = NotifierProcess(name, port, log, process)
        self.processes.append(notifier)

        async def active() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{notifier.logs()}")
            with contextlib.suppress(aiohttp.ClientError):
                return (await notifier.metrics()).get("fao_service_active") == 1
            return False

        await self.eventually(active, f"{name} active (holds the lease)", 30)
        return notifier

    async def publish(self, event: IncidentEvent) -> float:
        """Publish as the correlator does; returns the loop time of the publish."""
        await self.js.publish(
            s.incident_subject(event.type),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": str(event.event_id)},
        )
        return asyncio.get_running_loop().time()

    def requests_to(self, group: str) -> list[RecordedRequest]:
        return [r for r in self.line.requests if r.path == PUSH_PATH and r.json and r.json.get("to") == group]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.logs()}" for p in self.processes)

    async def eventually(self, predicate: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await predicate():
            if loop.time() > deadline:
                raise AssertionError(f"not within {within}s: {what}\n{self.logs()}")
            await asyncio.sleep(0.05)

    async def quiet(self) -> bool:
        """Every event acknowledged and every delivery final."""
        with contextlib.suppress(NotFoundError):
            info = await self.js.consumer_info(s.INCIDENTS_STREAM, s.NOTIFIER_CONSUMER)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                undelivered = {"status": {"$in": ["pending", "claimed"]}}
                return await self.db["deliveries"].count_documents(undelivered) == 0
        return False


@pytest.fixture
async def scenario(
    nats_url: str, mongo_url: str, db: AsyncDatabase[Document], tmp_path: Path
) -> AsyncIterator[Scenario]:
    groups = {GROUP_A: 5, GROUP_B: 4, GROUP_OPS: 3}
    async with FakeLineServer(access_token=TOKEN, groups=groups) as line:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await ensure_streams(js)
        env = {name: value for name, value in os.environ.items() if not name.startswith("FAO_")}
        env.update(
            FAO_NATS_URL=nats_url,
            FAO_MONGO_URL=mongo_url,
            FAO_MONGO_DB=db.name,
            FAO_LINE_CHANNEL_ACCESS_TOKEN=TOKEN,
            FAO_LINE_API_BASE=line.base_url,
            FAO_LINE_TIMEOUT="5",
            FAO_LINE_BACKOFF_BASE="0.2",
            FAO_LINE_BACKOFF_MAX="1",
            FAO_DELIVERY_FAILING_AFTER=str(FAILING_AFTER),
            FAO_DELIVERY_SWEEP_INTERVAL="2",
            FAO_LEASE_TTL="1",
            FAO_LOG_FORMAT="json",
            FAO_REVIEW_ENABLED="false",  # the owner review's pushes would be counted with apps' messages
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        sc = Scenario(db, js, line, env, tmp_path, [])
        try:
            yield sc
        finally:
            for p in sc.processes:
                if p.process.returncode is None:
                    p.kill()
                    await p.process.wait()
            await nc.close()


async def add_inventory(db: AsyncDatabase[Document]) -> None:
    teams = [
        Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[GROUP_A]),
        Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=[GROUP_B]),
        Team(id="ops", name="ทีมดูแล Fao", line_groups=[GROUP_OPS], platform=True),
    ]
    systems = [
        System(id="e-service", name="e-Service", name_th="ระบบบริการอิเล็กทรอนิกส์", team="apps"),
        System(id="core-network", name="Core network", name_th="เครือข่ายหลัก", team="infra"),
    ]
    for team in teams:
        await db[TEAMS].insert_one(to_doc(team, team.id))
    for system in systems:
        await db[SYSTEMS].insert_one(to_doc(system, system.id))


def alt_texts(line: FakeLineServer, group: str) -> list[str]:
    return [str(body["messages"][0]["altText"]) for body in line.pushes_to(group)]


@pytest.mark.timeout(300)
async def test_line_failing_for_one_group_through_a_crash_keeps_order_once_and_does_not_hold_back_others(
    scenario: Scenario,
    make_incident: Callable[..., Incident],
    make_event: Callable[..., IncidentEvent],
) -> None:
    """Team apps' LINE group answers 500 (slowly) to every push for ``FAIL_FOR`` s while its
    incident opens, is acknowledged and resolves, and team infra's incident opens and resolves.
    Notifier 1 is killed (SIGKILL) mid-retry and notifier 2 takes over. Then:

    - infra's group got each message within 2 s of its event, while apps' group was failing;
    - /metrics showed the oldest undelivered message getting older, /healthz stayed 200, and one
      "delivery failing" notice for the platform team reached the outbox (none from notifier 2);
    - once LINE works, apps' group gets "down" then "back to normal", each exactly once, every try
      of a message with its one retry key, and nothing of the later message tried before the
      earlier one was accepted; the acknowledgement, never tried and moot once resolved, is
      superseded; the gauges return to 0 and one "recovered" notice ends the period.
    """
    sc = scenario
    await add_inventory(sc.db)
    sc.line.fail_next(500, count=None, to=GROUP_A)
    sc.line.delay_next(SLOW_FAILURE, count=None, to=GROUP_A)
    first = await sc.start("notifier-1")
    loop = asyncio.get_running_loop()

    apps = make_incident("inc-apps", system_id="e-service")
    infra = make_incident("inc-infra", system_id="core-network")
    a_opened = make_event("opened", apps)
    a_acked = make_event("acknowledged", apps, actor="line:สมชาย")
    a_resolved = make_event("resolved", apps)
    b_opened, b_resolved = make_event("opened", infra), make_event("resolved", infra)

    failing_from = await sc.publish(a_opened)

    async def apps_failed(n: int) -> bool:
        return sum(r.status == 500 for r in sc.requests_to(GROUP_A)) >= n

    await sc.eventually(lambda: apps_failed(2), "apps' group failed twice", 10)
    published = await sc.publish(b_opened)
    await sc.eventually(lambda: _true(len(sc.line.pushes_to(GROUP_B)) == 1), "infra told", 5)
    assert loop.time() - published < 2.0, "infra's message waited behind apps' retries"
    await sc.publish(a_acked)
    await sc.publish(a_resolved)

    async def three_waiting() -> bool:
        return (await first.metrics()).get("fao_notifier_undelivered") == 3

    await sc.eventually(three_waiting, "apps' three messages waiting", 10)
    early = (await first.metrics())["fao_notifier_oldest_undelivered_seconds"]

    async def notice_written() -> bool:
        return await sc.db["outbox"].count_documents({"kind": "delivery_failing"}) == 1

    await sc.eventually(notice_written, "the delivery-failing notice", FAILING_AFTER + 10)
    samples = await first.metrics()
    assert samples["fao_notifier_oldest_undelivered_seconds"] > max(early, FAILING_AFTER - 1)
    assert samples["fao_notifier_delivery_failing"] == 1
    assert samples["fao_notifier_failing_groups"] == 1
    # /healthz answers from a snapshot refreshed every second, after its checks: wait for one
    # taken since the notice.
    health = await healthz_when(sc, first, lambda details: details.get("failing_groups") == 1)
    assert health["checks"]["deliveries"] is True
    details = health["details"]
    assert details["undelivered"] == 3, details
    assert details["oldest_undelivered_s"] > FAILING_AFTER - 1, details
    assert details["failing_groups"] == 1
    assert details["failing_since"] is not None

    # Crash in the middle of a retry: right after one more failed try has started.
    tried = len(sc.requests_to(GROUP_A))
    await sc.eventually(lambda: _true(len(sc.requests_to(GROUP_A)) > tried), "one more try", 10)
    first.kill()
    assert await first.process.wait() == -signal.SIGKILL
    second = await sc.start("notifier-2")
    published = await sc.publish(b_resolved)
    await sc.eventually(lambda: _true(len(sc.line.pushes_to(GROUP_B)) == 2), "infra told again", 5)
    assert loop.time() - published < 2.0, "infra's message waited behind apps' retries"
    failed_so_far = sum(r.status == 500 for r in sc.requests_to(GROUP_A))
    await sc.eventually(lambda: apps_failed(failed_so_far + 1), "notifier 2 retrying", 10)

    async def failing_long_enough() -> bool:
        return loop.time() - failing_from >= FAIL_FOR

    await sc.eventually(failing_long_enough, "the outage's length", FAIL_FOR)
    sc.line.clear_faults()
    await sc.eventually(sc.quiet, "everything delivered", 15)

    # Order and exactly once.
    assert [t.split(" ")[0] for t in alt_texts(sc.line, GROUP_A)] == ["🔴", "✅"], alt_texts(sc.line, GROUP_A)
    assert [t.split(" ")[0] for t in alt_texts(sc.line, GROUP_B)] == ["🔴", "✅"]
    problem_key = retry_key(claim_id(a_opened.event_id, GROUP_A))
    fixed_key = retry_key(claim_id(a_resolved.event_id, GROUP_A))
    keys = [r.headers["x-line-retry-key"] for r in sc.requests_to(GROUP_A)]
    statuses = [r.status for r in sc.requests_to(GROUP_A)]
    assert set(keys) == {problem_key, fixed_key}
    first_fixed_try = keys.index(fixed_key)
    assert set(keys[:first_fixed_try]) == {problem_key}
    assert statuses[first_fixed_try - 1] in (200, 409)  # the problem was accepted before
    assert statuses.count(200) == 2
    failures = [r.at for r in sc.requests_to(GROUP_A) if r.status == 500]
    assert (failures[-1] - failures[0]).total_seconds() >= FAIL_FOR - 2
    acked = await sc.db["deliveries"].find_one({"_id": claim_id(a_acked.event_id, GROUP_A)})
    assert acked is not None
    assert acked["status"] == "superseded"

    # Visibility after the outage.
    async def gauges_back_to_zero() -> bool:
        samples = await second.metrics()
        return (
            samples.get("fao_notifier_undelivered") == 0
            and samples.get("fao_notifier_oldest_undelivered_seconds") == 0
            and samples.get("fao_notifier_delivery_failing") == 0
        )

    await sc.eventually(gauges_back_to_zero, "gauges back to 0", 10)
    notices = await sc.db["outbox"].find({}).sort("created_at", 1).to_list()
    assert [n["kind"] for n in notices] == ["delivery_failing", "delivery_recovered"]
    assert (notices[0]["teams"], notices[0]["groups"]) == (["ops"], [GROUP_OPS])
    logged = [
        line
        for p in sc.processes
        for raw in p.log.read_text(errors="replace").splitlines()
        if raw.startswith("{") and (line := json.loads(raw)).get("event") == "delivery_failing"
    ]
    assert [(line["level"], line["notice"]) for line in logged] == [("error", notices[0]["_id"])]
    assert sc.line.pushes_to(GROUP_OPS) == []
    health = await healthz_when(
        sc, second, lambda details: (details.get("undelivered"), details.get("failing_groups")) == (0, 0)
    )
    assert health["checks"]["deliveries"] is True
    assert health["details"]["oldest_undelivered_s"] == 0, health["details"]

    second.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(second.process.wait(), timeout=20) == 0


async def _true(value: bool) -> bool:
    return value


async def healthz_when(
    sc: Scenario, notifier: NotifierProcess, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first /healthz body (answered 200) whose details satisfy ``ready``."""
    seen: dict[str, Any] = {}

    async def answered() -> bool:
        nonlocal seen
        status, seen = await notifier.healthz()
        return status == 200 and ready(seen.get("details", {}))

    await sc.eventually(answered, "a /healthz snapshot with the expected figures", 10)
    return seen
