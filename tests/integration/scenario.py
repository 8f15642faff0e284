"""A Fao for incident-policy scenarios: correlator and notifier processes, fake LINE, and the test
publishing check results itself (as a prober would), so the order of checks is the test's choice.

Everything the scenario touches is real: nats-server, FerretDB, the services as processes, the
fake LINE API driven by the real line-bot-sdk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually, service_env

from fao.cli.apply import apply
from fao.runtime.store import Document
from fao.schemas import CheckResult, Command, ErrorKind
from fao.schemas import subjects as s
from fao.testing.backlog import correlator_drained, drained
from fao.testing.fake_line import FakeLineServer, message_texts
from fao.testing.processes import ServiceProcess


def group(n: int) -> str:
    return "C" + f"{n:02x}" * 16


@dataclass
class Scenario:
    db: AsyncDatabase[Document]
    line: FakeLineServer
    nc: Client
    js: JetStreamContext
    env: dict[str, str]
    log_dir: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    systems_of: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, service: str | None = None) -> ServiceProcess:
        proc = ServiceProcess(service or name, self.env, self.log_dir)
        proc.log_path = self.log_dir / f"{name}.log"
        self.services[name] = proc.start(timeout=60)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.output()}" for n, p in self.services.items())

    async def publish(
        self,
        monitor_id: str,
        ok: bool,
        *,
        zone: str = "default",
        prober: str = "p1",
        at: datetime | None = None,
    ) -> None:
        result = CheckResult(
            monitor_id=monitor_id,
            system_id=self.systems_of[monitor_id],
            zone=zone,
            prober_id=prober,
            started_at=at or datetime.now(UTC),
            ok=ok,
            latency_ms=1.0,
            error_kind=ErrorKind.NONE if ok else ErrorKind.CONNECTION_REFUSED,
            detail="" if ok else "connection refused",
        )
        await self.js.publish(
            s.result_subject(monitor_id),
            result.model_dump_json().encode(),
            headers={"Nats-Msg-Id": result.msg_id},
        )

    async def round(self, outcomes: dict[str, bool], zone: str = "default") -> None:
        """One check of each monitor, with the same check time (one prober round)."""
        at = datetime.now(UTC)
        for monitor_id, ok in outcomes.items():
            await self.publish(monitor_id, ok, zone=zone, at=at)

    async def command(self, command: Command) -> None:
        await self.js.publish(
            s.command_subject(command.action),
            command.model_dump_json().encode(),
            headers={"Nats-Msg-Id": str(command.command_id)},
        )

    async def drained(self) -> bool:
        """Every result and every incident event published so far is handled and acknowledged, and
        every LINE delivery they caused is final (sent, or given up)."""
        if not await correlator_drained(self.js) or not await drained(
            self.js, s.INCIDENTS_STREAM, (s.NOTIFIER_CONSUMER,)
        ):
            return False
        # the notifier acks an event once its deliveries are recorded; they are sent afterwards
        undelivered = await self.db["deliveries"].count_documents({"status": {"$in": ["pending", "claimed"]}})
        return undelivered == 0

    async def until(self, check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
        """``eventually``, with the services' logs attached on failure."""
        try:
            await eventually(check, within, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()[-12000:]}") from None

    async def settle(self, within: float = 60) -> None:
        await self.until(self.drained, within, "results and events all handled")

    async def wait_pushes(self, n: int, within: float) -> list[dict[str, Any]]:
        try:
            return await self.line.wait_for_pushes(n, timeout=within)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()[-12000:]}") from None

    def texts(self, push: dict[str, Any]) -> str:
        return " ".join(t for m in push["messages"] for t in message_texts(m))

    async def incidents(self, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await self.db["incidents"].find(query or {}).to_list()


@asynccontextmanager
async def scenario(
    tmp_path: Path,
    nats_url: str,
    mongo_url: str,
    db: AsyncDatabase[Document],
    inventory: str,
    services: Iterable[str] = ("correlator", "notifier"),
) -> AsyncIterator[Scenario]:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "inventory.yaml").write_text(inventory, encoding="utf-8")
    plan = await apply(config, mongo_url, db.name, nats_url, dry_run=False)
    nc = await nats.connect(nats_url)
    async with FakeLineServer(access_token="test-token") as line:
        env = service_env(nats_url, mongo_url, db.name, line)
        sc = Scenario(db, line, nc, nc.jetstream(), env, tmp_path)
        sc.systems_of = {m.id: m.system for m in plan.inventory.monitors}
        try:
            for name in services:
                await asyncio.to_thread(sc.start, name)
            yield sc
        finally:
            for proc in sc.services.values():
                await asyncio.to_thread(proc.stop)
            await nc.close()
