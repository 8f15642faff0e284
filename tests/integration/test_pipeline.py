"""Service behaviour through real NATS and FerretDB, services run in-process.

- the prober follows the monitors bucket live: an applied change is probed with no restart;
- a result that breaks the contract is dead-lettered with its reason and never blocks the stream;
- the correlator skips writes for healthy results without losing correctness across a restart.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import CONFIG, Target, eventually

from fao.cli.apply import apply
from fao.correlator.app import CorrelatorSettings
from fao.correlator.app import build as build_correlator
from fao.prober.app import ProberSettings
from fao.prober.app import build as build_prober
from fao.runtime.bus import ensure_streams, state_bucket
from fao.runtime.states import encode, state_doc, state_docs
from fao.runtime.store import Document
from fao.schemas import CheckResult, ErrorKind
from fao.schemas import subjects as s
from fao.schemas.results import ResultMessage
from fao.schemas.subjects import state_key
from fao.testing.backlog import correlator_drained
from fao.testing.inprocess import serving

EXTRA_MONITOR = """
  - id: network-tcp
    system: network
    check: {{type: tcp, host: 127.0.0.1, port: {port}}}
    interval: 1s
    timeout: 500ms
"""


@dataclass
class Env:
    """A test's servers plus its inventory folder."""

    nats_url: str
    mongo_url: str
    db: AsyncDatabase[Document]
    config: Path

    async def apply(self, inventory: str) -> None:
        (self.config / "inventory.yaml").write_text(inventory, encoding="utf-8")
        # prune: a monitor left out of the files is removed (fao apply keeps it otherwise)
        await apply(
            self.config, self.mongo_url, self.db.name, self.nats_url, dry_run=False, prune=True, force=True
        )

    def correlator(self) -> CorrelatorSettings:
        return CorrelatorSettings(
            nats_url=self.nats_url, mongo_url=self.mongo_url, mongo_db=self.db.name, http_port=-1
        )


@pytest.fixture
def env(tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]) -> Env:
    config = tmp_path / "config"
    config.mkdir()
    return Env(nats_url, mongo_url, mongo_db, config)


async def test_prober_follows_applied_changes_live(env: Env) -> None:
    target = Target()
    await target.start()
    base = CONFIG.replace("{port}", str(target.port))
    await env.apply(base)
    nats_url = env.nats_url

    seen: list[CheckResult] = []
    nc = await nats.connect(nats_url)

    async def collect(msg: Msg) -> None:
        seen.extend(ResultMessage.model_validate_json(msg.data).results)

    await nc.subscribe(s.RESULTS_SUBJECTS, cb=collect)
    settings = ProberSettings(nats_url=nats_url, http_port=-1, prober_id="p-live", zone="default")
    try:
        async with serving(build_prober(settings)):

            async def probed(monitor_id: str) -> bool:
                return any(r.monitor_id == monitor_id for r in seen)

            await eventually(lambda: probed("e-service-home"), 10, "first monitor probed")
            assert not any(r.monitor_id == "network-tcp" for r in seen)

            await env.apply(base + EXTRA_MONITOR.format(port=target.port))
            await eventually(lambda: probed("network-tcp"), 10, "added monitor probed without restart")
            checks = REGISTRY.get_sample_value("fao_prober_checks_total") or 0
            assert checks >= len(seen) > 0, "/metrics counts the prober's checks"
            assert REGISTRY.get_sample_value("fao_prober_results_dropped_total") == 0
            new = next(r for r in seen if r.monitor_id == "network-tcp")
            assert new.ok
            assert new.zone == "default"
            assert new.prober_id == "p-live"

            await env.apply(base)
            await asyncio.sleep(0.5)  # let a check already in flight land
            count = sum(1 for r in seen if r.monitor_id == "network-tcp")
            await asyncio.sleep(2.5)
            assert sum(1 for r in seen if r.monitor_id == "network-tcp") == count, "removed monitor stops"
    finally:
        await nc.close()
        await target.stop()


async def test_malformed_result_is_dead_lettered_and_does_not_block(env: Env) -> None:
    await env.apply(CONFIG.replace("{port}", "9"))
    settings = env.correlator()
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()
    try:
        async with serving(build_correlator(settings)):
            await js.publish(s.result_subject("e-service-home"), b"\xff\xfe not even JSON")
            await js.publish(
                s.result_subject("e-service-home"), b'{"monitor_id": "e-service-home", "ok": "maybe"}'
            )
            good = CheckResult(
                monitor_id="e-service-home", system_id="e-service", zone="default", prober_id="p1",
                started_at="2026-11-25T01:00:00Z", ok=True, latency_ms=3.0,
            )  # fmt: skip
            await js.publish(s.result_subject("e-service-home"), good.model_dump_json().encode())

            async def state_saved() -> bool:
                return await state_doc(js, "e-service-home") is not None

            await eventually(state_saved, 10, "the valid result after the bad one is applied")
        sub = await js.pull_subscribe(s.DEAD_LETTER_SUBJECTS, durable="t", stream=s.DEAD_LETTER_STREAM)
        [not_json, dead] = await sub.fetch(2, timeout=5)
        assert not_json.data == b"\xff\xfe not even JSON"
        assert dead.subject == s.dead_letter_subject("correlator")
        assert json.loads(dead.data)["ok"] == "maybe", "the original body is kept"
        assert dead.headers is not None
        assert "ok" in dead.headers["Fao-Reason"]
        assert dead.headers["Fao-Original-Subject"] == s.result_subject("e-service-home")
    finally:
        await nc.close()


def _result(i: int, ok: bool) -> CheckResult:
    return CheckResult(
        monitor_id="e-service-home", system_id="e-service", zone="default", prober_id="p1",
        started_at=datetime(2026, 11, 25, 1, 0, tzinfo=UTC) + timedelta(seconds=i), ok=ok, latency_ms=1.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.HTTP_STATUS, detail="" if ok else "HTTP 503",
    )  # fmt: skip


async def test_healthy_results_skip_the_write_and_a_restart_still_confirms_correctly(env: Env) -> None:
    """Successes on a settled monitor are not written; after a restart the stored (older) settled
    state still decides the next outage exactly: one incident, starting at its first failure."""
    await env.apply(CONFIG.replace("{port}", "9"))
    settings, mongo_db = env.correlator(), env.db
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()

    async def publish(i: int, ok: bool) -> None:
        r = _result(i, ok)
        await js.publish(
            s.result_subject(r.monitor_id), r.model_dump_json().encode(), headers={"Nats-Msg-Id": r.msg_id}
        )

    try:
        async with serving(build_correlator(settings)):
            for i in range(6):
                await publish(i, ok=True)
            await eventually(lambda: correlator_drained(js), 10, "six successes applied")
        doc = await state_doc(js, "e-service-home")
        assert doc is not None
        assert doc["applied"]["default/p1"] == _result(0, True).started_at, (
            "only the first success was written"
        )

        async with serving(build_correlator(settings)):
            await publish(10, ok=False)
            await publish(11, ok=False)

            async def opened() -> bool:
                return await mongo_db["incidents"].count_documents({}) == 1

            await eventually(opened, 10, "incident after restart")
            await eventually(lambda: correlator_drained(js), 10, "failures applied")
        [incident] = await mongo_db["incidents"].find({}).to_list()
        assert incident["started_at"] == _result(10, False).started_at
        assert incident["status"] == "open"
    finally:
        await nc.close()


TWO_MONITORS = """
teams:
  - {id: apps, name: Apps, line_groups: ["C0123456789abcdef0123456789abcdef"]}
systems:
  - {id: e-service, name: e-Service, team: apps}
monitors:
  - {id: web, system: e-service, check: {type: http, url: "http://127.0.0.1:9/"}, interval: 30s}
  - {id: api, system: e-service, check: {type: tcp, host: 127.0.0.1, port: 9}, interval: 30s}
"""


async def test_monitors_of_one_system_share_one_incident(env: Env) -> None:
    """Two monitors of a system fail: one incident (opened, then noted), one alert; it resolves
    only when the last monitor has recovered and stayed up for the quiet period, at that monitor's first
    success."""
    await env.apply(TWO_MONITORS)
    settings, mongo_db = env.correlator(), env.db
    t0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()

    async def publish(monitor: str, second: int, ok: bool) -> None:
        r = CheckResult(
            monitor_id=monitor, system_id="e-service", zone="default", prober_id="p1",
            started_at=t0 + timedelta(seconds=second), ok=ok, latency_ms=1.0,
            error_kind=ErrorKind.NONE if ok else ErrorKind.TIMEOUT,
        )  # fmt: skip
        await js.publish(
            s.result_subject(monitor), r.model_dump_json().encode(), headers={"Nats-Msg-Id": r.msg_id}
        )

    def gauge(status: str) -> float:
        return REGISTRY.get_sample_value("fao_correlator_monitors", {"status": status}) or 0.0

    up_before, down_before = gauge("up"), gauge("down")
    try:
        async with serving(build_correlator(settings)):
            for monitor, second, ok in [
                ("web", 0, False), ("web", 1, False),    # web down: incident opened
                ("api", 2, False), ("api", 3, False),    # api down too: same incident
                ("web", 10, True),                        # web back, api still down: stays open
            ]:  # fmt: skip
                await publish(monitor, second, ok)
            await eventually(lambda: correlator_drained(js), 10, "first results applied")
            [incident] = await mongo_db["incidents"].find({}).to_list()
            assert incident["status"] == "open", [
                (monitor_id, d["status"], d["system_id"]) for monitor_id, d in (await state_docs(js)).items()
            ]
            assert incident["monitor_ids"] == ["api", "web"]
            assert (gauge("up") - up_before, gauge("down") - down_before) == (1, 1), "/metrics counts states"
            await publish("api", 20, True)
            await publish("web", 90, True)  # evidence that the quiet period (60 s) has passed
            await eventually(lambda: correlator_drained(js), 10, "recovery applied")
        [incident] = await mongo_db["incidents"].find({}).to_list()
        assert incident["status"] == "resolved"
        assert incident["started_at"] == t0
        assert incident["resolved_at"] == t0 + timedelta(seconds=20)
        sub = await js.pull_subscribe(s.INCIDENTS_SUBJECTS, durable="t", stream=s.INCIDENTS_STREAM)
        events = [json.loads(m.data) for m in await sub.fetch(10, timeout=2)]
        assert [e["type"] for e in events] == ["opened", "noted", "resolved"]
        assert len({e["incident"]["id"] for e in events}) == 1
    finally:
        await nc.close()


async def test_transition_whose_publish_failed_is_published_on_redelivery(env: Env) -> None:
    """The incident stream is unavailable when a monitor goes down: the decision is committed
    (a journal entry) and the result nak'ed; once the stream is back, the redelivery publishes the
    event and clears the journal."""
    await env.apply(CONFIG.replace("{port}", "9"))
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()
    try:
        async with serving(build_correlator(env.correlator())):
            await js.delete_stream(s.INCIDENTS_STREAM)
            for i in (0, 1):
                r = _result(i, ok=False)
                await js.publish(
                    s.result_subject(r.monitor_id),
                    r.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": r.msg_id},
                )

            async def committed() -> bool:
                return await env.db["correlator_journal"].count_documents({}) == 1

            await eventually(committed, 10, "decision committed with its event unpublished")
            await ensure_streams(js)

            async def completed() -> bool:
                return await env.db["correlator_journal"].count_documents({}) == 0

            await eventually(completed, 15, "the journal entry completed after the stream came back")
            assert (await js.stream_info(s.INCIDENTS_STREAM)).state.messages == 1, "published once"
            assert await env.db["incidents"].count_documents({}) == 1
    finally:
        await nc.close()


async def test_a_decision_committed_before_a_crash_is_finished_at_start(env: Env) -> None:
    """A journal entry left by a crashed correlator (committed, nothing applied or published) is
    applied and published at start-up, and memory follows it: the next result continues from it."""
    from uuid import uuid4

    from fao.correlator.monitor_state import MonitorState
    from fao.correlator.state_machine import Sample, ZoneState
    from fao.correlator.store import JournalEntry
    from fao.schemas import Incident, IncidentEvent

    await env.apply(CONFIG.replace("{port}", "9"))
    t0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    failing = Sample(ok=False, at=t0, detail="HTTP 503")
    state = MonitorState(
        monitor_id="e-service-home",
        system_id="e-service",
        zones={"default": ZoneState(status="down", window=(failing, failing), down_since=t0, last_at=t0)},
        applied={"default/p1": t0},
        status="down",
        down_since=t0,
        problem_since=t0,
    )
    incident = Incident(
        id="inc-crashed", system_id="e-service", monitor_ids=["e-service-home"], status="open",
        title="down", started_at=t0, alerted=True,
    )  # fmt: skip
    event = IncidentEvent(event_id=uuid4(), type="opened", at=t0, incident=incident)
    entry = JournalEntry("00000000000000000001", (state,), (incident,), (event,), (), None)
    await env.db["correlator_journal"].insert_one(entry.to_doc())
    older = MonitorState(monitor_id="e-service-home", system_id="e-service", status="up")
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()
    kv = await state_bucket(js)
    await kv.put(state_key("e-service-home"), encode(older.to_doc()))  # written before the crashed decision
    try:
        async with serving(build_correlator(env.correlator())):

            async def finished() -> bool:
                return await env.db["correlator_journal"].count_documents({}) == 0

            await eventually(finished, 10, "the journal entry applied")
            assert (await js.stream_info(s.INCIDENTS_STREAM)).state.messages == 1
            assert await env.db["incidents"].find_one({"_id": "inc-crashed"}) is not None
            doc = await state_doc(js, "e-service-home")
            assert doc is not None
            assert doc["status"] == "down"
            for second in (1, 4):  # recovered, and still up after the quiet period (2 s)
                r = _result(second, ok=True)
                await js.publish(
                    s.result_subject(r.monitor_id),
                    r.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": r.msg_id},
                )

            async def resolved() -> bool:
                doc = await env.db["incidents"].find_one({"_id": "inc-crashed"})
                return doc is not None and doc["status"] == "resolved"

            await eventually(resolved, 10, "the recovery resolves the incident the journal opened")
    finally:
        await nc.close()


async def test_implausible_results_are_dead_lettered_and_never_blind_the_monitor(env: Env) -> None:
    """A result dated ten years ahead (or for a monitor that does not exist) is dead-lettered with
    the reason; the same prober's real results still count and open the incident."""
    await env.apply(CONFIG.replace("{port}", "9"))
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()

    async def publish(r: CheckResult) -> None:
        await js.publish(
            s.result_subject(r.monitor_id), r.model_dump_json().encode(), headers={"Nats-Msg-Id": r.msg_id}
        )

    now = datetime.now(UTC)
    future = _result(0, ok=True).model_copy(update={"started_at": now + timedelta(days=3650)})
    ghost = _result(0, ok=False).model_copy(update={"monitor_id": "no-such-monitor", "started_at": now})
    try:
        async with serving(build_correlator(env.correlator())):
            await publish(future)
            await publish(ghost)
            for second in (1, 2):
                await publish(
                    _result(0, ok=False).model_copy(update={"started_at": now + timedelta(seconds=second)})
                )

            async def opened() -> bool:
                return await env.db["incidents"].count_documents({"system_id": "e-service"}) == 1

            await eventually(opened, 10, "the real failures open the incident")
        sub = await js.pull_subscribe(s.DEAD_LETTER_SUBJECTS, durable="t", stream=s.DEAD_LETTER_STREAM)
        reasons = sorted((m.headers or {}).get("Fao-Reason", "") for m in await sub.fetch(2, timeout=5))
        assert "in the future" in reasons[1] or "in the future" in reasons[0], reasons
        assert any("no monitor 'no-such-monitor'" in r for r in reasons), reasons
    finally:
        await nc.close()


async def test_the_correlator_notices_a_monitor_written_straight_into_kv(env: Env) -> None:
    """The probers and the correlator follow the KV bucket; a definition written there by hand (or
    removed) no longer matches what ``fao apply`` recorded, and the correlator reports the drift."""
    from fao.correlator.app import Correlator
    from fao.correlator.store import CorrelatorStore
    from fao.runtime.bus import monitors_bucket
    from fao.runtime.inventory import MonitorCatalog
    from fao.runtime.service import new_broker
    from fao.schemas import Monitor
    from fao.schemas.subjects import monitor_key

    await env.apply(CONFIG.replace("{port}", "9"))
    nc = await nats.connect(env.nats_url)
    catalog = MonitorCatalog(nc.jetstream())
    await catalog.start()
    try:
        js = nc.jetstream()
        store = CorrelatorStore(env.db, js, await state_bucket(js))
        correlator = Correlator(new_broker(env.correlator()), store, catalog)
        assert await correlator.check_drift() == []
        forged = Monitor.model_validate(
            {"id": "forged", "system": "e-service", "check": {"type": "tcp", "host": "127.0.0.1", "port": 22}}
        )
        kv = await monitors_bucket(nc.jetstream())
        await kv.put(monitor_key("forged"), forged.model_dump_json().encode())
        await eventually(lambda: _seen(catalog, "forged"), 10, "the catalog follows the bucket")
        assert await correlator.check_drift() == ["forged"]
        assert REGISTRY.get_sample_value("fao_correlator_inventory_drift") == 1
    finally:
        await catalog.stop()
        await nc.close()


async def _seen(catalog: object, monitor_id: str) -> bool:
    return monitor_id in getattr(catalog, "monitors", {})
