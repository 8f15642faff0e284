"""A store outage is not a prober outage: while MongoDB was away the correlator could not apply the
results waiting for it, so when it comes back the first tick must not call the probers silent
(found black-box: FerretDB stopped 3 minutes under ``fao dev up`` gave the platform team a false
"probers silent" and its resolution one second later). Real NATS and FerretDB, a decision clock of
the test's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from fao.cli.apply import apply
from fao.correlator.app import Correlator, CorrelatorSettings
from fao.correlator.monitor_state import MonitorState
from fao.correlator.store import INCIDENTS, CorrelatorStore, JournalEntry
from fao.runtime.bus import state_bucket
from fao.runtime.inventory import MonitorCatalog
from fao.runtime.service import new_broker
from fao.runtime.store import Document
from fao.schemas import CheckResult, ErrorKind
from fao.schemas import subjects as s

INVENTORY = """
teams:
  - {id: apps, name: Apps, line_groups: ["C0123456789abcdef0123456789abcdef"]}
  - {id: ops, name: Ops, platform: true, line_groups: ["C1123456789abcdef0123456789abcdef"]}
systems:
  - {id: e-service, name: e-Service, team: apps}
monitors:
  - {id: web, system: e-service, check: {type: tcp, host: 127.0.0.1, port: 9}, interval: 30s}
"""
T0 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


class _Store(CorrelatorStore):
    """MongoDB as seen from the correlator: ``down`` makes every write fail."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("store gone")

    async def save_state(self, state: MonitorState) -> None:
        self._check()
        await super().save_state(state)

    async def save_states(self, states: list[MonitorState]) -> None:
        self._check()
        await super().save_states(states)

    async def append(self, entry: JournalEntry) -> None:
        self._check()
        await super().append(entry)


def _result(second: int, ok: bool) -> CheckResult:
    return CheckResult(
        monitor_id="web", system_id="e-service", zone="default", prober_id="p1",
        started_at=T0 + timedelta(seconds=second), ok=ok, latency_ms=1.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.TIMEOUT, detail="" if ok else "timed out",
    )  # fmt: skip


async def test_the_first_tick_after_a_store_outage_does_not_call_the_probers_silent(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    catalog = MonitorCatalog(js)
    await catalog.start()
    broker = new_broker(CorrelatorSettings(nats_url=nats_url, http_port=-1))
    await broker.connect()
    clock = [T0]
    try:
        store = _Store(mongo_db, js, await state_bucket(js))
        correlator = Correlator(broker, store, catalog, clock=lambda: clock[0])
        await correlator.recover()

        async def silent_incidents() -> list[Document]:
            return await mongo_db[INCIDENTS].find({"kind": "prober_silent"}).to_list()

        await correlator.apply_all([_result(0, True)])
        clock[0] = T0 + timedelta(seconds=10)
        store.down = True
        # A failure that must be written: its message fails (and is redelivered), and the results
        # behind it wait in the stream for as long as the store is away.
        with pytest.raises(ConnectionError):
            await correlator.apply_all([_result(10, False)])
        for minute in (1, 2, 3, 4):
            clock[0] = T0 + timedelta(minutes=minute)
            with pytest.raises(ConnectionError):
                await correlator.tick()
        store.down = False
        clock[0] = T0 + timedelta(minutes=4, seconds=1)
        await correlator.tick()  # before the waiting results are applied
        assert await silent_incidents() == [], "nothing said the probers stopped: the store did"
        await correlator.apply_all([_result(235, True)])  # the backlog comes through
        await correlator.tick()
        assert await silent_incidents() == []

        # Silence is still noticed: no result for longer than the monitor's stale time after that.
        clock[0] = T0 + timedelta(minutes=4, seconds=1) + timedelta(seconds=3 * 30 + 10 + 10 + 1)
        await correlator.tick()
        [silent] = await silent_incidents()
        assert silent["monitor_ids"] == ["web"]
        assert (await js.stream_info(s.INCIDENTS_STREAM)).state.messages >= 1
    finally:
        await broker.stop()
        await catalog.stop()
        await nc.close()
