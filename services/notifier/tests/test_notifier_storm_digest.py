"""Storm digests and quota awareness in the notifier's core, on real FerretDB with a scripted
sender and a clock the test moves: what is recorded as a single or a digest item, when a digest is
recorded and sent, the order per incident, restarts before and during a flush, and digest-only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import DELIVERIES, claim_id
from fao.notifier.digest import DIGEST_LANE, DIGESTS, StormPolicy
from fao.notifier.dispatcher import Notifier
from fao.notifier.errors import QuotaUnavailableError
from fao.notifier.line_channel import SendReceipt
from fao.notifier.outbox import OUTBOX, Outbox
from fao.notifier.quota import LINE_STATE, QUOTA_ID, QuotaWatch
from fao.notifier.render import RenderedMessage, load_catalogue
from fao.runtime.inventory import PEOPLE, SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import (
    EscalationPolicy,
    EscalationStep,
    Incident,
    IncidentEvent,
    IncidentEventType,
    Person,
    Severity,
    StormSettings,
    System,
    Team,
)

GROUP = "C" + "1" * 32
OPS_GROUP = "C" + "9" * 32
T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
POLICY = StormPolicy(budget=3, window=60.0, digest_only_window=900.0, max_listed=10)


@dataclass
class Sender:
    """Sends at once unless ``gate`` is set and closed; keeps what each group received."""

    delivered: list[tuple[str, RenderedMessage]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def send(self, target: str, messages: Sequence[RenderedMessage], retry_key: str) -> SendReceipt:
        if self.gate is not None:
            await self.gate.wait()
        self.delivered += [(target, message) for message in messages]
        return SendReceipt(request_id=str(uuid.uuid4()), sent_message_ids=("1",))

    def kinds(self, target: str = GROUP) -> list[str]:
        return [message.kind for to, message in self.delivered if to == target]


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeQuotaApi:
    """LINE's quota endpoints as data; ``down`` makes every read fail."""

    limit: int | None = 1000
    usage: int = 0
    members: dict[str, int] = field(default_factory=lambda: {GROUP: 7, OPS_GROUP: 2})
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise QuotaUnavailableError("quota: cannot reach LINE: ClientConnectorError")

    async def quota(self) -> int | None:
        self._check()
        return self.limit

    async def consumption(self) -> int:
        self._check()
        return self.usage

    async def member_count(self, group_id: str) -> int | None:
        self._check()
        return self.members.get(group_id)


async def eventually(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.01)


@dataclass
class Harness:
    db: AsyncDatabase[Document]
    sender: Sender = field(default_factory=Sender)
    clock: Clock = field(default_factory=Clock)
    running: list[Notifier] = field(default_factory=list)

    async def start(self, policy: StormPolicy = POLICY, quota: QuotaWatch | None = None) -> Notifier:
        notifier = Notifier(
            self.db,
            sender=self.sender,
            catalogue=load_catalogue("th"),
            clock=self.clock,
            jitter=lambda: 0.5,
            backoff_base=0.02,
            backoff_max=0.1,
            sweep_interval=60.0,
            storm=policy,
            quota=quota,
        )
        await notifier.start()
        self.running.append(notifier)
        return notifier

    def quota_watch(self, api: FakeQuotaApi, **options: float) -> QuotaWatch:
        return QuotaWatch(
            self.db, api, outbox=Outbox(self.db), catalogue=load_catalogue("th"), clock=self.clock, **options
        )

    async def stop(self, notifier: Notifier) -> None:
        await notifier.drain(timeout=5)
        self.running.remove(notifier)

    async def add_systems(self, n: int, severity: Severity = "major") -> list[str]:
        team = Team(id="infra", name="Infra", line_groups=[GROUP])
        ops = Team(id="ops", name="Ops", line_groups=[OPS_GROUP], platform=True)
        for t in (team, ops):
            await self.db[TEAMS].replace_one({"_id": t.id}, to_doc(t, t.id), upsert=True)
        ids = []
        for i in range(n):
            system = System(
                id=f"sys-{severity}-{i:03d}",
                name=f"System {i}",
                name_th=f"ระบบที่ {i}",
                team="infra",
                severity=severity,
            )
            await self.db[SYSTEMS].insert_one(to_doc(system, system.id))
            ids.append(system.id)
        return ids

    async def docs(self, query: Document) -> list[Document]:
        return await self.db[DELIVERIES].find(query).to_list()

    async def settled(self) -> None:
        async def nothing_left() -> bool:
            return not await self.docs({"status": {"$in": ["pending", "claimed"]}})

        await eventually(nothing_left, "every delivery final")


def incident(system_id: str, severity: Severity = "major", **changes: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": f"inc-{system_id}",
        "system_id": system_id,
        "monitor_ids": [f"{system_id}-home"],
        "severity": severity,
        "status": "open",
        "title": "HTTP 503",
        "cause": "HTTP 503",
        "started_at": T0,
        "zones": ["dc1"],
        "alerted": True,
        **changes,
    }
    return Incident.model_validate(fields)


def event(
    event_type: IncidentEventType, inc: Incident, at: datetime, actor: str | None = None
) -> IncidentEvent:
    if event_type == "resolved":
        inc = inc.model_copy(update={"status": "resolved", "resolved_at": at, "resolved_by": "fao:auto"})
    return IncidentEvent(event_id=uuid.uuid4(), type=event_type, at=at, incident=inc, actor=actor)


@pytest.fixture
async def harness(db: AsyncDatabase[Document]) -> AsyncIterator[Harness]:
    h = Harness(db)
    yield h
    for notifier in list(h.running):
        await h.stop(notifier)


async def test_a_storm_gives_k_singles_then_one_digest_when_the_window_ends(harness: Harness) -> None:
    """Ten problems within a minute, K = 3: three pushes at once, seven digest items (never sent
    alone); nothing more before the window ends; at its end one digest listing the seven."""
    systems = await harness.add_systems(10)
    notifier = await harness.start()
    for system_id in systems:
        await notifier.handle(event("opened", incident(system_id), harness.clock.now))
        harness.clock.advance(1)
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3
    items = await harness.docs({"status": "digested"})
    assert len(items) == 7
    [digest_id] = {doc["digest"] for doc in items}
    assert digest_id == f"{GROUP}:digest:{T0.isoformat()}"
    assert {doc["cost"] for doc in items} == {0}

    harness.clock.now = T0 + timedelta(seconds=59)
    await notifier.flush_digests()
    assert await harness.docs({"_id": digest_id}) == []

    harness.clock.now = T0 + timedelta(seconds=60)
    await notifier.flush_digests()
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3 + ["digest"]
    digest = harness.sender.delivered[-1][1]
    assert digest.alt_text.startswith("🔴 7 ระบบขัดข้อง: ")
    assert all(f"ระบบที่ {i}" in digest.text for i in range(3, 10))
    [doc] = await harness.docs({"_id": digest_id})
    assert (doc["incident_id"], doc["items"], doc["status"]) == (DIGEST_LANE, 7, "sent")
    assert sorted(doc["incidents"]) == sorted(f"inc-{s}" for s in systems[3:])
    [window] = await harness.db[DIGESTS].find({}).to_list()
    assert window["status"] == "flushed"


async def test_a_storm_that_goes_on_stays_digested_and_a_quiet_window_has_a_fresh_budget(
    harness: Harness,
) -> None:
    """A window that starts less than W after one that overflowed continues the storm: no single
    at all, one more digest. After a quiet window length, singles again."""
    systems = await harness.add_systems(6)
    notifier = await harness.start()
    for system_id in systems[:4]:
        await notifier.handle(event("opened", incident(system_id), harness.clock.now))
    harness.clock.advance(60)
    await notifier.flush_digests()
    await notifier.handle(event("opened", incident(systems[4]), harness.clock.now))
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3 + ["digest"]
    harness.clock.advance(60)
    await notifier.flush_digests()
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3 + ["digest", "digest"]
    assert harness.sender.delivered[-1][1].alt_text.startswith("🔴 1 ระบบขัดข้อง: ระบบที่ 4")
    harness.clock.advance(60)  # the continued window ended a whole window length ago
    await notifier.handle(event("opened", incident(systems[5]), harness.clock.now))
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3 + ["digest", "digest", "problem"]


async def test_a_team_with_its_own_storm_settings_gets_its_own_budget(harness: Harness) -> None:
    """The team's ``storm: {budget: 1, window: 30s}``: one message alone, the second in a digest
    30 s later; another team without settings keeps the notifier's K = 3."""
    systems = await harness.add_systems(3)
    team = Team(id="infra", name="Infra", line_groups=[GROUP], storm=StormSettings(budget=1, window=30))
    await harness.db[TEAMS].replace_one({"_id": team.id}, to_doc(team, team.id), upsert=True)
    other = Team(id="apps", name="Apps", line_groups=[OPS_GROUP])
    await harness.db[TEAMS].replace_one({"_id": other.id}, to_doc(other, other.id), upsert=True)
    apps = [System(id=f"app-{i}", name=f"App {i}", team="apps") for i in range(3)]
    await harness.db[SYSTEMS].insert_many([to_doc(a, a.id) for a in apps])
    notifier = await harness.start()
    for system_id in [*systems[:2], *(a.id for a in apps)]:
        await notifier.handle(event("opened", incident(system_id), harness.clock.now))
    await harness.settled()
    assert harness.sender.kinds(GROUP) == ["problem"]
    assert harness.sender.kinds(OPS_GROUP) == ["problem"] * 3
    harness.clock.advance(29)
    await notifier.flush_digests()
    assert harness.sender.kinds(GROUP) == ["problem"]
    harness.clock.advance(1)
    await notifier.flush_digests()
    await harness.settled()
    assert harness.sender.kinds(GROUP) == ["problem", "digest"]


async def test_recoveries_of_digested_problems_are_digested_and_never_come_first(harness: Harness) -> None:
    """A problem in a digest that ends within the same window is one line, "back to normal"; one
    that ends after its digest was recorded but while that digest is still unsent goes into the
    next digest, sent after the first; the end of a single problem is a single again."""
    systems = await harness.add_systems(6)
    harness.sender.gate = asyncio.Event()
    notifier = await harness.start()
    incidents = [incident(s) for s in systems]
    for inc in incidents:
        await notifier.handle(event("opened", inc, harness.clock.now))
    harness.clock.advance(10)
    await notifier.handle(event("resolved", incidents[3], harness.clock.now))  # same window
    harness.clock.now = T0 + timedelta(seconds=60)
    await notifier.flush_digests()  # first digest recorded, LINE held
    harness.clock.advance(5)
    await notifier.handle(event("resolved", incidents[4], harness.clock.now))
    await notifier.handle(event("resolved", incidents[0], harness.clock.now))
    items = await harness.docs({"status": "digested", "kind": "fixed"})
    assert {doc["incident_id"] for doc in items} == {incidents[3].id, incidents[4].id}
    harness.sender.gate.set()
    harness.clock.now = T0 + timedelta(seconds=200)
    await notifier.flush_digests()
    await harness.settled()
    assert harness.sender.kinds() == ["problem", "problem", "problem", "digest", "fixed", "digest"]
    first, second = [m for _, m in harness.sender.delivered if m.kind == "digest"]
    assert first.alt_text.startswith("🔴 3 ระบบขัดข้อง")
    assert "ระบบที่ 3 (รุนแรง) — กลับมาปกติแล้ว" in first.alt_text
    assert second.alt_text.startswith("✅ 1 ระบบกลับมาปกติ: ระบบที่ 4")


async def test_a_follow_up_of_an_unsent_single_stays_in_its_lane_beyond_the_budget(harness: Harness) -> None:
    """LINE holds the first problem; the budget is spent; its acknowledgement is still a single (in
    the incident's lane, after the problem), not a digest item that could arrive first."""
    systems = await harness.add_systems(4)
    harness.sender.gate = asyncio.Event()
    notifier = await harness.start()
    first = incident(systems[0])
    for system_id in systems:
        await notifier.handle(event("opened", incident(system_id), harness.clock.now))
    ack = event("acknowledged", first, harness.clock.now + timedelta(seconds=1), actor="cli:somchai")
    await notifier.handle(ack)
    [doc] = await harness.docs({"_id": claim_id(ack.event_id, GROUP)})
    assert doc["status"] in ("pending", "claimed")
    harness.sender.gate.set()
    harness.clock.advance(60)
    await notifier.flush_digests()
    await harness.settled()
    delivered = [(m.kind, m.alt_text) for _, m in harness.sender.delivered]
    kinds = [kind for kind, _ in delivered]
    assert kinds.count("acknowledged") == 1
    assert kinds.index("acknowledged") > kinds.index("problem")


async def test_a_redelivered_event_keeps_its_first_place_and_uses_no_budget(harness: Harness) -> None:
    systems = await harness.add_systems(4)
    notifier = await harness.start()
    first = event("opened", incident(systems[0]), harness.clock.now)
    for _ in range(3):
        await notifier.handle(first)
    for system_id in systems[1:]:
        await notifier.handle(event("opened", incident(system_id), harness.clock.now))
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3
    assert len(await harness.docs({"status": "digested"})) == 1


async def test_digest_items_left_by_a_stopped_notifier_are_flushed_once_by_the_next(harness: Harness) -> None:
    """Items recorded, the notifier stopped before the window's end (no flush on stop); the next
    process finds the open window, keeps its budget, and flushes one digest when it is due. A
    crash after the digest was recorded but before the window was marked flushed (simulated by
    marking it open again) makes a third process record nothing new and send nothing twice."""
    systems = await harness.add_systems(7)
    first = await harness.start()
    for system_id in systems[:5]:
        await first.handle(event("opened", incident(system_id), harness.clock.now))
    await harness.stop(first)
    assert len(await harness.docs({"status": "digested"})) == 2

    harness.clock.advance(30)
    second = await harness.start()
    await second.handle(event("opened", incident(systems[5]), harness.clock.now))
    assert len(await harness.docs({"status": "digested"})) == 3, "the budget survived the restart"
    harness.clock.advance(30)
    await second.flush_digests()
    await harness.settled()
    await harness.stop(second)
    assert harness.sender.kinds() == ["problem"] * 3 + ["digest"]
    assert harness.sender.delivered[-1][1].alt_text.startswith("🔴 3 ระบบขัดข้อง")

    await harness.db[DIGESTS].update_many({}, {"$set": {"status": "open"}})
    third = await harness.start()
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3 + ["digest"]
    assert [d["status"] for d in await harness.db[DIGESTS].find({}).to_list()] == ["flushed"]
    assert len(await harness.docs({"event_type": "digest"})) == 1
    await harness.stop(third)


async def test_a_window_opened_but_never_filled_is_closed_without_a_message(harness: Harness) -> None:
    """A crash between opening a window's digest and writing its first item leaves an empty open
    window: it is closed at its end with no delivery."""
    await harness.add_systems(1)
    await harness.db[DIGESTS].insert_one(
        {
            "_id": f"{GROUP}:digest:{T0.isoformat()}",
            "target": GROUP,
            "window_start": T0,
            "window_end": T0 + timedelta(seconds=60),
            "digest_only": False,
            "status": "open",
        }
    )
    harness.clock.advance(61)
    await harness.start()
    [window] = await harness.db[DIGESTS].find({}).to_list()
    assert (window["status"], window["items"]) == ("flushed", 0)
    assert await harness.docs({}) == []


# -- quota ------------------------------------------------------------------------------------


async def test_quota_watch_stores_figures_costs_and_forecast(harness: Harness) -> None:
    """The figures and member counts are stored in line_state; each push records its group's
    member count as its cost, added to what is used until LINE's figure is read again."""
    systems = await harness.add_systems(2)
    api = FakeQuotaApi(limit=1000, usage=20)
    watch = harness.quota_watch(api)
    notifier = await harness.start(quota=watch)
    await watch.refresh(harness.clock.now)
    doc = await harness.db[LINE_STATE].find_one({"_id": QUOTA_ID})
    assert doc is not None
    assert (doc["type"], doc["limit"], doc["usage"], doc["used"], doc["remaining"]) == (
        "limited",
        1000,
        20,
        20,
        980,
    )
    assert doc["forecast"] == 31  # 20 used in 19 Bangkok days and 10 hours of November, 30 days
    assert doc["digest_only"] is False
    group = await harness.db[LINE_STATE].find_one({"_id": f"group:{GROUP}"})
    assert group is not None
    assert (group["member_count"], group["in_group"]) == (7, True)

    for system_id in systems:
        await notifier.handle(event("opened", incident(system_id), harness.clock.now))
    await harness.settled()
    assert {d["cost"] for d in await harness.docs({"kind": "problem"})} == {7}
    assert watch.figures.used == 34
    await watch.refresh(harness.clock.now)
    doc = await harness.db[LINE_STATE].find_one({"_id": QUOTA_ID})
    assert doc is not None
    assert (doc["usage"], doc["used"]) == (20, 20), "LINE's figure replaces what was counted since"


async def test_quota_running_low_turns_digest_only_on_once_and_off_again(harness: Harness) -> None:
    """Less than 10 % left: digest-only, said once (one outbox notice, however many refreshes);
    a major system's problem becomes a digest item, a critical one's goes at once; the digest comes
    after D; a bigger limit turns it off with one "ok" notice."""
    major = await harness.add_systems(1)
    critical = await harness.add_systems(1, severity="critical")
    api = FakeQuotaApi(limit=300, usage=280)
    watch = harness.quota_watch(api, digest_only_window=900.0)
    notifier = await harness.start(quota=watch)
    await watch.refresh(harness.clock.now)
    await watch.refresh(harness.clock.now)
    assert watch.digest_only()
    notices = await harness.db[OUTBOX].find({"kind": "line_quota_low"}).to_list()
    assert len(notices) == 1
    assert notices[0]["teams"] == ["ops"]
    assert "280 จาก 300" in notices[0]["text"]

    await notifier.handle(event("opened", incident(major[0]), harness.clock.now))
    await notifier.handle(event("opened", incident(critical[0], "critical"), harness.clock.now))
    await harness.settled()
    assert harness.sender.kinds() == ["problem"]
    assert "ระบบที่ 0" in harness.sender.delivered[0][1].alt_text
    [item] = await harness.docs({"status": "digested"})
    assert item["incident_id"] == f"inc-{major[0]}"
    harness.clock.advance(899)
    await notifier.flush_digests()
    assert harness.sender.kinds() == ["problem"]
    harness.clock.advance(1)
    await notifier.flush_digests()
    await harness.settled()
    assert harness.sender.kinds() == ["problem", "digest"]
    assert "โควตา" in harness.sender.delivered[-1][1].text

    api.limit = 5000
    await watch.refresh(harness.clock.now)
    assert not watch.digest_only()
    assert len(await harness.db[OUTBOX].find({"kind": "line_quota_ok"}).to_list()) == 1
    assert len(await harness.db[OUTBOX].find({"kind": "line_quota_low"}).to_list()) == 1


async def test_a_restarted_notifier_continues_digest_only_without_a_second_notice(harness: Harness) -> None:
    await harness.add_systems(1)
    api = FakeQuotaApi(limit=300, usage=290)
    first_watch = harness.quota_watch(api)
    first = await harness.start(quota=first_watch)
    await first_watch.refresh(harness.clock.now)
    await harness.stop(first)
    second_watch = harness.quota_watch(api)
    await harness.start(quota=second_watch)
    assert second_watch.digest_only()
    await second_watch.refresh(harness.clock.now + timedelta(minutes=5))
    assert len(await harness.db[OUTBOX].find({"kind": "line_quota_low"}).to_list()) == 1


async def test_unlimited_quota_never_turns_digest_only_on(harness: Harness) -> None:
    await harness.add_systems(1)
    watch = harness.quota_watch(FakeQuotaApi(limit=None, usage=10**6))
    await harness.start(quota=watch)
    await watch.refresh(harness.clock.now)
    assert not watch.digest_only()
    doc = await harness.db[LINE_STATE].find_one({"_id": QUOTA_ID})
    assert doc is not None
    assert (doc["type"], doc["limit"], doc["remaining"]) == ("none", None, None)


async def test_line_unreachable_keeps_the_last_figures(harness: Harness) -> None:
    await harness.add_systems(1)
    api = FakeQuotaApi(limit=1000, usage=100)
    watch = harness.quota_watch(api)
    await harness.start(quota=watch)
    await watch.refresh(harness.clock.now)
    api.down = True
    await watch.refresh(harness.clock.now + timedelta(minutes=5))
    doc = await harness.db[LINE_STATE].find_one({"_id": QUOTA_ID})
    assert doc is not None
    assert (doc["limit"], doc["usage"], doc["checked_at"]) == (1000, 100, T0)
    assert "cannot reach LINE" in doc["read_error"]
    assert watch.cost_of(GROUP) == 7


async def test_exhausted_until_turns_digest_only_on(harness: Harness) -> None:
    """The LINE channel's monthly-limit mark (``exhausted_until`` ahead) is digest-only whatever
    LINE's approximate figure says."""
    await harness.add_systems(1)
    await harness.db[LINE_STATE].insert_one({"_id": QUOTA_ID, "exhausted_until": T0 + timedelta(days=10)})
    watch = harness.quota_watch(FakeQuotaApi(limit=1000, usage=10))
    await harness.start(quota=watch)
    await watch.refresh(harness.clock.now)
    assert watch.digest_only()
    doc = await harness.db[LINE_STATE].find_one({"_id": QUOTA_ID})
    assert doc is not None
    assert doc["exhausted_until"] == T0 + timedelta(days=10), "the channel's field is left alone"


LEAD_ID = "U" + "a" * 32


async def test_escalations_in_a_storm_reach_a_person_as_k_singles_and_one_digest(harness: Harness) -> None:
    """Ten unacknowledged problems of a team whose policy tells its lead after 10 minutes: the lead
    gets K escalation messages one by one and one digest listing the rest — not ten pushes."""
    systems = await harness.add_systems(10)
    lead = Person(id="lead", name="สมชาย", teams=["infra"], line_user_id=LEAD_ID)
    await harness.db[PEOPLE].insert_one(to_doc(lead, lead.id))
    policy = EscalationPolicy(steps=[EscalationStep(after=600, people=["lead"])])
    team = Team(id="infra", name="Infra", line_groups=[GROUP], escalation=policy)
    await harness.db[TEAMS].replace_one({"_id": team.id}, to_doc(team, team.id))
    notifier = await harness.start()
    for system_id in systems:
        inc = incident(system_id)
        await harness.db["incidents"].insert_one({"_id": inc.id, **inc.model_dump(mode="python")})
        await notifier.handle(event("opened", inc, harness.clock.now))
        harness.clock.advance(1)
    harness.clock.advance(61)
    await notifier.flush_digests()
    await harness.settled()
    assert harness.sender.kinds() == ["problem"] * 3 + ["digest"], "the group's storm, as before"

    harness.clock.advance(600)
    await notifier.escalations.check()
    await harness.settled()
    assert harness.sender.kinds(LEAD_ID) == ["escalation"] * 3, "K one by one, the rest wait"
    digested = await harness.docs({"target": LEAD_ID, "status": "digested"})
    assert len(digested) == 7
    harness.clock.advance(61)
    await notifier.flush_digests()
    await harness.settled()
    assert harness.sender.kinds(LEAD_ID) == ["escalation"] * 3 + ["digest"]
    [(_, digest)] = [(to, m) for to, m in harness.sender.delivered if to == LEAD_ID and m.kind == "digest"]
    assert "7" in digest.alt_text
    await notifier.escalations.check()  # nothing new is due: no step fires twice
    await harness.settled()
    assert len(harness.sender.kinds(LEAD_ID)) == 4
