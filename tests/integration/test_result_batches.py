"""The correlator reads result batches (and still single results) on real NATS and FerretDB:

- a batch's results are applied in order, and the same batch delivered again — as the stream
  presents it after a crash, or after a retry once the dedupe window is over — changes nothing;
- a batch whose handling dies half way (the store fails mid-batch, then the process is replaced)
  ends in exactly the state and incidents of an undisturbed run;
- single-result messages from probers before batching are still accepted, mixed with batches.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually

from fao.cli.apply import apply
from fao.correlator.app import Correlator, CorrelatorSettings
from fao.correlator.app import build as build_correlator
from fao.correlator.monitor_state import MonitorState
from fao.correlator.store import CorrelatorStore, JournalEntry
from fao.runtime.bus import state_bucket
from fao.runtime.inventory import MonitorCatalog
from fao.runtime.service import new_broker
from fao.runtime.states import state_doc, state_docs
from fao.runtime.store import Document
from fao.schemas import CheckResult, ErrorKind
from fao.schemas import subjects as s
from fao.schemas.results import ResultBatch
from fao.testing.backlog import correlator_drained
from fao.testing.inprocess import serving

INVENTORY = """
teams:
  - {id: apps, name: Apps, line_groups: ["C0123456789abcdef0123456789abcdef"]}
systems:
  - {id: e-service, name: e-Service, team: apps}
monitors:
  - {id: web, system: e-service, check: {type: http, url: "http://127.0.0.1:9/"}, interval: 30s}
  - {id: api, system: e-service, check: {type: tcp, host: 127.0.0.1, port: 9}, interval: 30s}
"""
T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def _result(monitor: str, second: int, ok: bool, prober: str = "p1") -> CheckResult:
    return CheckResult(
        monitor_id=monitor, system_id="e-service", zone="default", prober_id=prober,
        started_at=T0 + timedelta(seconds=second), ok=ok, latency_ms=1.0,
        error_kind=ErrorKind.NONE if ok else ErrorKind.TIMEOUT, detail="" if ok else "timed out",
    )  # fmt: skip


# Both monitors fail (one incident, joined by the second), then web recovers: 7 results in order.
STORM = [
    _result("web", 0, False), _result("api", 0, False), _result("web", 1, False),
    _result("api", 1, False), _result("web", 2, False), _result("web", 10, True), _result("api", 11, False),
]  # fmt: skip


def _batch(batch_id: str, results: list[CheckResult]) -> ResultBatch:
    return ResultBatch(prober_id="p1", zone="default", batch_id=batch_id, results=results)


async def _publish(js: JetStreamContext, batch: ResultBatch, msg_id: str) -> None:
    # a batch holds results of one partition (its monitors' system's), as a prober sends them
    subject = s.result_batch_subject("default", s.result_partition("e-service"))
    await js.publish(subject, batch.model_dump_json().encode(), headers={"Nats-Msg-Id": msg_id})


async def _snapshot(db: AsyncDatabase[Document], js: JetStreamContext) -> dict[str, list[dict[str, Any]]]:
    """Every document the correlator owns, sorted (the journal must be empty at rest): the monitor
    states (state bucket) and its collections."""
    collections = ("incidents", "incident_timeline", "correlator_journal")
    snapshot = {c: await db[c].find({}).sort("_id", 1).to_list() for c in collections}
    snapshot["monitor_state"] = [{"_id": m, **d} for m, d in sorted((await state_docs(js)).items())]
    return snapshot


async def _apply_inventory(tmp_path: Path, nats_url: str, mongo_url: str, db: str) -> None:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    await apply(config, mongo_url, db, nats_url, dry_run=False)


async def test_a_batch_delivered_twice_counts_once(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    await _apply_inventory(tmp_path, nats_url, mongo_url, mongo_db.name)
    settings = CorrelatorSettings(
        nats_url=nats_url, mongo_url=mongo_url, mongo_db=mongo_db.name, http_port=-1
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        async with serving(build_correlator(settings)):
            await _publish(js, _batch("p1.1.1", STORM), "p1.1.1")
            await eventually(lambda: correlator_drained(js), 15, "the batch applied")
            once = await _snapshot(mongo_db, js)
            events_once = (await js.stream_info(s.INCIDENTS_STREAM)).state.messages
            # The same batch again, under another message id so the stream stores it: what the
            # correlator sees when a batch comes back after a crash or a retry.
            await _publish(js, _batch("p1.1.1", STORM), "p1.1.1-again")
            await eventually(lambda: correlator_drained(js), 15, "the batch applied again")
            assert (await js.stream_info(s.RESULTS_STREAM)).state.messages == 2, "delivered twice"
            assert await _snapshot(mongo_db, js) == once
            assert (await js.stream_info(s.INCIDENTS_STREAM)).state.messages == events_once
        [incident] = once["incidents"]
        assert incident["monitor_ids"] == ["api", "web"]
        assert incident["started_at"] == T0
        assert [e["type"] for e in once["incident_timeline"]].count("opened") == 1
        assert once["correlator_journal"] == []
    finally:
        await nc.close()


class _FailingStore(CorrelatorStore):
    """Counts the steps of a commit (a state write, a write of a message's states, a journal entry
    appended, applied, deleted); with ``fail_after`` the store becomes unreachable after that many
    (a crash mid-batch, seen from the correlator: its handler raises and the message is not
    acknowledged)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        js: JetStreamContext,
        states: KeyValue,
        fail_after: int | None = None,
    ) -> None:
        super().__init__(db, js, states)
        self.fail_after = fail_after
        self.commits = 0

    def _spend(self) -> None:
        if self.commits == self.fail_after:
            raise ConnectionError("store gone")
        self.commits += 1

    async def save_state(self, state: MonitorState) -> None:
        self._spend()
        await super().save_state(state)

    async def save_states(self, states: list[MonitorState]) -> None:
        self._spend()
        await super().save_states(states)

    async def append(self, entry: JournalEntry) -> None:
        self._spend()
        await super().append(entry)

    async def write(self, entry: JournalEntry) -> None:
        self._spend()
        await super().write(entry)

    async def done(self, entry: JournalEntry) -> None:
        self._spend()
        await super().done(entry)


async def _run_batches(
    nats_url: str,
    db: AsyncDatabase[Document],
    runs: list[tuple[int | None, list[CheckResult]]],
    messages: int = 1,
) -> int:
    """Apply each run's results as one batch (or, with ``messages`` > 1, as that many messages
    handled as one group) in a fresh Correlator (a new process: state recovered from the store),
    whose store fails after the given number of commits (None: never). Returns the commit steps of
    the last run. The state bucket is emptied first: ``db`` starts afresh."""
    settings = CorrelatorSettings(nats_url=nats_url, http_port=-1)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    states = await state_bucket(js)
    await js.purge_stream(f"KV_{s.STATE_BUCKET}")
    catalog = MonitorCatalog(js)
    await catalog.start()
    broker = new_broker(settings)
    await broker.connect()
    fixed = T0 + timedelta(seconds=12)  # the decision clock: the same in every run
    commits = 0
    try:
        for fail_after, results in runs:
            store = _FailingStore(db, js, states, fail_after)
            correlator = Correlator(broker, store, catalog, clock=lambda: fixed)
            await correlator.recover()
            size = -(-len(results) // messages)
            group = [results[i : i + size] for i in range(0, len(results), size)]
            if fail_after is None:
                assert await correlator.apply_group(group) == [None] * len(group)
            else:
                with pytest.raises(ConnectionError):
                    await correlator.apply_group(group)
            commits = store.commits
    finally:
        await broker.stop()
        await catalog.stop()
        await nc.close()
    return commits


async def test_a_batch_redelivered_after_a_crash_mid_batch_ends_as_an_undisturbed_run(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """For every point of failure inside the batch: the store fails after k commits, the process
    is replaced (state recovered from the store), the batch comes again — the documents are those
    of one undisturbed application, and no incident event was published twice."""
    await _apply_inventory(tmp_path, nats_url, mongo_url, mongo_db.name)
    client = mongo_db.client
    reference = client[f"{mongo_db.name}_ref"]
    commits = await _run_batches(nats_url, reference, [(None, STORM)])
    expected = await _snapshot_of(nats_url, reference)
    assert len(expected["incidents"]) == 1
    assert commits >= 3, "the batch's commit has several steps: there are points to fail between"
    events_once = await _stream_messages(nats_url, s.INCIDENTS_STREAM)
    for fail_after in range(commits):
        crashed = client[f"{mongo_db.name}_k{fail_after}"]
        await _run_batches(nats_url, crashed, [(fail_after, STORM), (None, STORM)])
        assert await _snapshot_of(nats_url, crashed) == expected, f"store failing after {fail_after} steps"
        await client.drop_database(crashed.name)
    await client.drop_database(reference.name)
    assert await _stream_messages(nats_url, s.INCIDENTS_STREAM) == events_once, "no event twice"


async def test_a_group_of_messages_redelivered_after_a_crash_ends_as_an_undisturbed_run(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """The same results as three messages committed as one group (what the correlator does with
    messages already waiting): one commit for the group, and for every point of failure in it,
    the group coming again ends in the documents of one undisturbed batch, no event twice."""
    await _apply_inventory(tmp_path, nats_url, mongo_url, mongo_db.name)
    client = mongo_db.client
    reference = client[f"{mongo_db.name}_ref"]
    await _run_batches(nats_url, reference, [(None, STORM)])
    expected = await _snapshot_of(nats_url, reference)
    events_once = await _stream_messages(nats_url, s.INCIDENTS_STREAM)
    grouped = client[f"{mongo_db.name}_group"]
    commits = await _run_batches(nats_url, grouped, [(None, STORM)], messages=3)
    assert await _snapshot_of(nats_url, grouped) == expected, "a group decides what one batch does"
    single = await _run_batches(nats_url, client[f"{mongo_db.name}_one"], [(None, STORM)])
    assert commits == single, "the group commits in as many steps as one batch of the same results"
    for fail_after in range(commits):
        crashed = client[f"{mongo_db.name}_k{fail_after}"]
        await _run_batches(nats_url, crashed, [(fail_after, STORM), (None, STORM)], messages=3)
        assert await _snapshot_of(nats_url, crashed) == expected, f"store failing after {fail_after} steps"
        await client.drop_database(crashed.name)
    for name in (reference.name, grouped.name, f"{mongo_db.name}_one"):
        await client.drop_database(name)
    assert await _stream_messages(nats_url, s.INCIDENTS_STREAM) == events_once, "no event twice"


async def _snapshot_of(nats_url: str, db: AsyncDatabase[Document]) -> dict[str, list[dict[str, Any]]]:
    nc = await nats.connect(nats_url)
    try:
        return await _snapshot(db, nc.jetstream())
    finally:
        await nc.close()


async def _stream_messages(nats_url: str, stream: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def test_single_results_from_older_probers_are_still_accepted_beside_batches(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    await _apply_inventory(tmp_path, nats_url, mongo_url, mongo_db.name)
    settings = CorrelatorSettings(
        nats_url=nats_url, mongo_url=mongo_url, mongo_db=mongo_db.name, http_port=-1
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        async with serving(build_correlator(settings)):
            old = _result("web", 0, False, prober="old-prober")
            await js.publish(
                s.result_subject("web"), old.model_dump_json().encode(), headers={"Nats-Msg-Id": old.msg_id}
            )
            await _publish(js, _batch("new.1.1", [_result("web", 1, False, prober="new")]), "new.1.1")
            await eventually(lambda: correlator_drained(js), 15, "both applied")
            state = await state_doc(js, "web")
            assert state is not None
            assert set(state["applied"]) == {"default/old-prober", "default/new"}
            assert state["status"] == "down", "one failure from each: the 2-of-3 window confirmed"
    finally:
        await nc.close()


async def test_the_stored_state_is_what_memory_decided_after_each_batch(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """Within one batch a monitor's essential state may change and change back (a failure, then a
    success): what is stored after the batch must agree with memory, or a restart would start
    from a state nobody decided."""
    await _apply_inventory(tmp_path, nats_url, mongo_url, mongo_db.name)
    settings = CorrelatorSettings(nats_url=nats_url, http_port=-1)
    nc = await nats.connect(nats_url)
    catalog = MonitorCatalog(nc.jetstream())
    await catalog.start()
    broker = new_broker(settings)
    await broker.connect()
    try:
        js = nc.jetstream()
        store = CorrelatorStore(mongo_db, js, await state_bucket(js))
        correlator = Correlator(broker, store, catalog, clock=lambda: T0 + timedelta(minutes=5))
        await correlator.recover()
        batches = [
            [_result("web", 0, True)],
            [_result("web", 30, False), _result("web", 31, True)],
            [_result("web", 60, False), _result("web", 61, False), _result("web", 62, True)],
            [_result("web", 90, True)],
        ]
        for results in batches:
            await correlator.apply_all(results)
            [stored] = [st for st in await store.all_states() if st.monitor_id == "web"]
            assert stored.essential() == correlator.states["web"].essential(), results
    finally:
        await broker.stop()
        await catalog.stop()
        await nc.close()
