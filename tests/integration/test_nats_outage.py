"""NATS away for three minutes in the middle of an outage: every service recovers (or is restarted
by its supervisor), none spins meanwhile, /healthz tells the truth within seconds, and the team
gets the outage's "down" and "resolved" exactly once. Also: a connection that can never come back
(NATS restarted with credentials the services do not have) makes a service exit, not go deaf.

Everything is real: nats-server (this test's own, on a fixed port, stopped and started again on
the same data), FerretDB, the services as processes, an HTTP target, the fake LINE API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import CONFIG, GROUP, Fao, Target, eventually, service_env, wait_pushes
from tests.integration.supervisor import SupervisedProcess, Supervisor

from fao.cli.apply import apply
from fao.runtime.launch import LocalServer, free_port, start_nats
from fao.runtime.store import Document
from fao.testing.fake_line import FakeLineServer

OUTAGE = 180.0
SERVICES = ("correlator", "notifier", "reporter", "prober")


@dataclass
class OwnNats:
    """A nats-server this test may stop and start again (same port, same data)."""

    data_dir: Path
    port: int
    log_path: Path
    server: LocalServer | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, *args: str) -> None:
        with self.log_path.open("ab") as log:
            self.server = start_nats(self.data_dir, self.port, log=log, args=args)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass
class System:
    fao: Fao
    nats: OwnNats
    processes: dict[str, SupervisedProcess]
    supervisor: Supervisor


@pytest.fixture
async def system(tmp_path: Path, mongo_url: str, mongo_db: AsyncDatabase[Document]) -> AsyncIterator[System]:
    own = OwnNats(tmp_path / "nats", free_port(), tmp_path / "nats-server.log")
    own.start()
    target = Target()
    await target.start()
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(CONFIG.replace("{port}", str(target.port)), encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, own.url, dry_run=False)
    async with FakeLineServer(access_token="test-token") as line:
        env = service_env(own.url, mongo_url, mongo_db.name, line, FAO_PROBER_ID="p1")
        processes = {name: SupervisedProcess(name, env, tmp_path) for name in SERVICES}
        fao = Fao(mongo_db, own.url, line, target, dict(processes))
        supervisor = Supervisor(processes)
        try:
            for proc in processes.values():
                await asyncio.to_thread(proc.start)
            supervisor.start()
            yield System(fao, own, processes, supervisor)
        finally:
            await supervisor.stop()
            for proc in processes.values():
                proc.stop()
            own.stop()
            await target.stop()


async def monitor_status(fao: Fao) -> str | None:
    doc = await fao.monitor_state("e-service-home")
    return None if doc is None else str(doc["status"])


async def wait_all_health(
    system: System, wanted: Callable[[int | None], bool], within: float, what: str
) -> dict[str, float]:
    """Seconds until each service's /healthz satisfied ``wanted``."""
    started = time.monotonic()
    seen: dict[str, float] = {}
    while len(seen) < len(system.processes):
        for name, proc in system.processes.items():
            if name not in seen and wanted(await asyncio.to_thread(proc.healthz)):
                seen[name] = round(time.monotonic() - started, 2)
        if time.monotonic() - started > within:
            missing = sorted(set(system.processes) - set(seen))
            raise AssertionError(f"{what}: not within {within:.0f} s for {missing}\n{system.fao.logs()}")
        await asyncio.sleep(0.1)
    return seen


def cpu_now(system: System) -> dict[str, tuple[int | None, float]]:
    return {name: (proc.pid, proc.cpu_seconds()) for name, proc in system.processes.items()}


@pytest.mark.timeout(OUTAGE + 240)
async def test_nats_down_three_minutes_mid_outage_everything_recovers_and_alerts_exactly_once(
    system: System,
) -> None:
    fao = system.fao

    async def monitor_up() -> bool:
        return await monitor_status(fao) == "up"

    await eventually(monitor_up, 30, "monitor up", fao)
    fao.target.down = True
    await wait_pushes(fao, 1, 30)  # the team knows it is down
    assert fao.line.pushes_to(GROUP) == fao.line.pushes

    system.nats.stop()
    stopped = time.monotonic()
    unhealthy_after = await wait_all_health(system, lambda code: code != 200, 10, "/healthz failing")
    print(f"\n/healthz not 200 after NATS stopped, s: {unhealthy_after}")
    await asyncio.sleep(OUTAGE / 3)
    fao.target.down = False  # the target recovers while NATS is still away
    await asyncio.sleep(OUTAGE / 3)
    cpu_before, measured_from = cpu_now(system), time.monotonic()
    await asyncio.sleep(stopped + OUTAGE - time.monotonic())
    window = time.monotonic() - measured_from
    cpu_after = cpu_now(system)
    for name, (pid, used) in cpu_after.items():
        before_pid, before = cpu_before[name]
        if pid == before_pid:  # the same process all along the window: it must have been waiting
            share = (used - before) / window
            print(f"{name}: {share:.1%} CPU over the outage's last {window:.0f} s")
            assert share < 0.25, f"{name} used {share:.0%} of a CPU while NATS was away\n{fao.logs()}"
    for proc in system.processes.values():
        assert proc.healthz() != 200, "still no NATS: no service may say it is healthy"

    system.nats.start()
    back = time.monotonic()
    healthy_after = await wait_all_health(system, lambda code: code == 200, 60, "/healthz back to 200")
    print(f"/healthz 200 again after NATS restarted, s: {healthy_after}")

    pushes = await wait_pushes(fao, 2, 90)
    resolved_after = time.monotonic() - back
    await asyncio.sleep(5)  # anything duplicated would come now
    to_group = fao.line.pushes_to(GROUP)
    assert len(to_group) == 2, f"expected down + resolved once each, got {len(to_group)}\n{fao.logs()}"
    assert pushes[:2] == to_group
    incidents = await fao.db["incidents"].find({"system_id": "e-service"}).to_list()
    assert len(incidents) == 1, incidents
    assert incidents[0]["status"] == "resolved"
    exits = [(e.service, e.code, round(e.at - stopped, 1)) for e in system.supervisor.exits]
    print(
        f"resolved push {resolved_after:.1f} s after NATS was back; exits (service, code, s into outage): {exits}"
    )
    assert all(code == 1 for _, code, _ in exits), f"only deliberate exits (status 1): {exits}"
    exited = {name for name, _, _ in exits}
    assert not exited & {"reporter", "prober"}, f"these ride the outage out: {exits}"
    for name in exited:  # singletons: their lease expires meanwhile; crash-only, restarted as standbys
        assert '"lease_lost"' in system.processes[name].log_path.read_text(), (name, exits)


@pytest.mark.timeout(120)
async def test_a_connection_that_can_never_come_back_makes_each_service_exit_1(system: System) -> None:
    """NATS comes back requiring credentials the services lack: nats-py's reconnect loop dies
    (FastStream's error callback raises on "authorization violation") and the connection would
    stay "connecting" for ever. Each service notices and exits 1 for its supervisor."""
    fao = system.fao

    async def monitor_up() -> bool:
        return await monitor_status(fao) == "up"

    await eventually(monitor_up, 30, "monitor up", fao)
    system.nats.stop()
    system.nats.start("--user", "someone", "--pass", "secret-they-do-not-have")
    restarted = time.monotonic()

    def exited() -> set[str]:
        return {e.service for e in system.supervisor.exits}

    while exited() != set(SERVICES):
        assert time.monotonic() - restarted < 60, f"exited so far: {exited()}\n{fao.logs()}"
        await asyncio.sleep(0.2)
    took = {e.service: round(e.at - restarted, 1) for e in system.supervisor.exits}
    print(f"\nexited after NATS came back with credentials, s: {took}")
    assert {e.code for e in system.supervisor.exits} == {1}
    for name in SERVICES:
        assert "nats_connection_lost" in system.processes[name].log_path.read_text(), name
