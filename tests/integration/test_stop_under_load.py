"""Under a flood — the prober running 200 monitors, a backlog of results for the correlator and of
incident events for the notifier and the reporter — every service's /healthz still answers at once
(and truthfully: NATS and MongoDB are up), and SIGTERM stops each service within its grace period.

Real nats-server, FerretDB, service processes, an HTTP target, the fake LINE API."""

from __future__ import annotations

import asyncio
import signal
import statistics
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import nats
import pytest
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import CONFIG, Target, service_env
from tests.integration.supervisor import SupervisedProcess

from fao.cli.apply import apply
from fao.runtime.store import Document
from fao.schemas import CheckResult, Incident, IncidentEvent
from fao.schemas import subjects as s
from fao.schemas.results import ErrorKind
from fao.testing.backlog import backlog, correlator_backlog
from fao.testing.fake_line import FakeLineServer

GRACE = 10.0
SERVICES = ("correlator", "notifier", "reporter", "prober")
LOAD_MONITORS = 200
# Enough that the correlator is still busy when SIGTERM is sent (≈7 s after the flood: it takes up
# to 32 waiting single-result messages at once, ≈5,700 a second here: 40,000 were nearly drained).
FLOOD_RESULTS = 100_000
FLOOD_EVENTS = 1500
# Each service's durables on the stream it is flooded on (the correlator's, all of them: one per
# shard and one for single results, ``correlator_backlog``).
CONSUMERS = {
    "correlator": (s.RESULTS_STREAM, ()),
    "notifier": (s.INCIDENTS_STREAM, (s.NOTIFIER_CONSUMER,)),
    "reporter": (s.INCIDENTS_STREAM, (s.REPORTER_CONSUMER,)),
}


def load_config(port: int) -> str:
    monitors = "".join(
        f"""
  - id: load-{i}
    system: network
    check: {{type: http, url: "http://127.0.0.1:{port}/", expected_status: [200]}}
    interval: 1s
    timeout: 500ms
"""
        for i in range(LOAD_MONITORS)
    )
    return CONFIG.replace("{port}", str(port)) + monitors


@dataclass
class Loaded:
    processes: dict[str, SupervisedProcess]
    js: JetStreamContext


@pytest.fixture
async def loaded(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[Loaded]:
    target = Target()
    await target.start()
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(load_config(target.port), encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    nc = await nats.connect(nats_url)
    async with FakeLineServer(access_token="test-token") as line:
        env = service_env(
            nats_url, mongo_url, mongo_db.name, line, FAO_PROBER_ID="p1", FAO_STOP_GRACE=str(GRACE)
        )
        processes = {name: SupervisedProcess(name, env, tmp_path) for name in SERVICES}
        try:
            for proc in processes.values():
                await asyncio.to_thread(proc.start)
            yield Loaded(processes, nc.jetstream())
        finally:
            for proc in processes.values():
                proc.stop()
            await nc.close()
            await target.stop()


def flood_result(i: int, start: datetime) -> CheckResult:
    """One of a second prober's results for the correlator: six failures in every seven."""
    ok = i % 7 == 0
    return CheckResult(
        monitor_id="e-service-home", system_id="e-service", zone="default", prober_id="flood",
        started_at=start + timedelta(milliseconds=5 * i), ok=ok, latency_ms=1.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.HTTP_STATUS,
    )  # fmt: skip


def flood_event(i: int, at: datetime) -> IncidentEvent:
    """An "opened" event of a distinct incident: a LINE push for the notifier, a fact for the reporter."""
    incident = Incident(
        id=f"inc-flood-{i}", system_id="e-service", monitor_ids=["e-service-home"], status="open",
        title="flood", started_at=at, alerted=True,
    )  # fmt: skip
    return IncidentEvent(event_id=uuid4(), type="opened", at=at, incident=incident)


async def flood(js: JetStreamContext) -> None:
    start = datetime.now(UTC) - timedelta(seconds=30)
    results = [flood_result(i, start) for i in range(FLOOD_RESULTS)]
    events = [flood_event(i, start) for i in range(FLOOD_EVENTS)]
    messages = [(s.result_subject(r.monitor_id), r.model_dump_json().encode(), r.msg_id) for r in results]
    messages += [(s.incident_subject(e.type), e.model_dump_json().encode(), str(e.event_id)) for e in events]
    for first in range(0, len(messages), 250):
        await asyncio.gather(
            *(
                js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
                for subject, body, msg_id in messages[first : first + 250]
            )
        )


def sample_healthz(ports: dict[str, int], seconds: float) -> dict[str, list[tuple[int | None, float]]]:
    """GET every service's /healthz every 50 ms from one thread per service: (status, latency)."""
    samples: dict[str, list[tuple[int | None, float]]] = {name: [] for name in ports}

    def poll(name: str, port: int) -> None:
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    status: int | None = client.get("/healthz").status_code
                except httpx.HTTPError:
                    status = None
                samples[name].append((status, time.monotonic() - sent))
                time.sleep(0.05)

    threads = [threading.Thread(target=poll, args=item) for item in ports.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


async def service_backlog(js: JetStreamContext, service: str) -> int:
    """What ``service`` still has to handle of its flood, over all its durables."""
    stream, durables = CONSUMERS[service]
    pending = await (correlator_backlog(js) if service == "correlator" else backlog(js, stream, durables))
    assert pending is not None, f"{service}: a durable of {durables} on {stream} is missing"
    return pending


@pytest.mark.timeout(240)
async def test_healthz_answers_under_a_flood_and_sigterm_stops_each_service_within_its_grace(
    loaded: Loaded,
) -> None:
    await flood(loaded.js)
    await asyncio.sleep(2)  # the services are into it
    ports = {name: proc.port for name, proc in loaded.processes.items()}
    samples = await asyncio.to_thread(sample_healthz, ports, 5.0)
    for name, got in samples.items():
        latencies = sorted(latency for _, latency in got)
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        codes = {code for code, _ in got}
        print(
            f"\n{name}: /healthz {len(got)} answers {sorted(map(str, codes))}, latency median "
            f"{statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )
        assert codes == {200}, f"{name}: NATS and MongoDB are up, yet /healthz said {codes}"
        assert latencies[-1] < 0.5, f"{name}: /healthz took {latencies[-1]:.2f} s under load"

    pending = {name: await service_backlog(loaded.js, name) for name in CONSUMERS}
    print(f"backlog when SIGTERM is sent: {pending}")
    assert all(n > 0 for n in pending.values()), f"the flood must still be going on: {pending}"

    sent = time.monotonic()
    for proc in loaded.processes.values():
        proc.send(signal.SIGTERM)
    took: dict[str, float] = {}
    while len(took) < len(SERVICES) and time.monotonic() - sent < GRACE + 5:
        for name, proc in loaded.processes.items():
            if name not in took and proc.returncode() is not None:
                took[name] = round(time.monotonic() - sent, 2)
        await asyncio.sleep(0.02)
    print(f"stopped after SIGTERM under load, s: {took}")
    exits = {name: proc.returncode() for name, proc in loaded.processes.items()}
    assert exits == dict.fromkeys(SERVICES, 0), (
        exits,
        {n: p.output()[-2000:] for n, p in loaded.processes.items()},
    )
    assert max(took.values()) < GRACE, f"a service outlived its {GRACE} s grace period: {took}"
