"""The notifier's core with a scripted sender: what is recorded, sent, retried, superseded, given up,
resumed, and what the watch says about it.

The stores are real (FerretDB); only the channel is a small fake that answers from a script (per
group), and the clock is one the test moves where time matters (the failing period).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import DELIVERIES, DeliveryStore, claim_id, retry_key
from fao.notifier.dispatcher import Notifier
from fao.notifier.errors import DeliveryError
from fao.notifier.line_channel import SendReceipt
from fao.notifier.outbox import OUTBOX
from fao.notifier.render import RenderedMessage, load_catalogue, render_event
from fao.notifier.watch import FAILING_STATE_ID, NOTIFIER_STATE
from fao.notifier.workers import backoff_delay
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import PLATFORM_SYSTEM, Incident, IncidentEvent, System, Team

GROUP = "C" + "1" * 32
GROUP_2 = "C" + "2" * 32
GROUP_3 = "C" + "3" * 32
PLATFORM_GROUP = "C" + "9" * 32
SYSTEM_ID = "egov-portal"
TRANSIENT = DeliveryError("LINE answered 500: Internal server error", permanent=False, status=500)


@dataclass
class ScriptedSender:
    """Answers each send to a group with the group's next scripted outcome (a receipt, or an error
    to raise); a group in ``down`` fails every time; ``gate`` holds every send until set."""

    script: dict[str, list[SendReceipt | DeliveryError]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, RenderedMessage]] = field(default_factory=list)
    delivered: list[tuple[str, RenderedMessage]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, target: str, messages: Sequence[RenderedMessage], retry_key: str) -> SendReceipt:
        [message] = messages
        self.calls.append((target, retry_key, message))
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        if target in self.down:
            raise TRANSIENT
        queue = self.script.get(target) or []
        outcome = queue.pop(0) if queue else SendReceipt(request_id="r", sent_message_ids=("1",))
        if isinstance(outcome, DeliveryError):
            raise outcome
        self.delivered.append((target, message))
        return outcome

    def keys(self, target: str) -> list[str]:
        return [key for to, key, _ in self.calls if to == target]

    def kinds(self, target: str) -> list[str]:
        """The kinds of the messages the group received, in order."""
        return [message.kind for to, message in self.delivered if to == target]


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    db: AsyncDatabase[Document]
    sender: ScriptedSender
    clock: Clock
    running: list[Notifier] = field(default_factory=list)

    async def start(self, *, outbox_only: bool = False, **options: float) -> Notifier:
        values: dict[str, Any] = {
            "backoff_base": 0.02,
            "backoff_max": 0.1,
            "failing_after": 300.0,
            "sweep_interval": 60.0,
        }
        values.update(options)
        notifier = Notifier(
            self.db,
            sender=None if outbox_only else self.sender,
            catalogue=load_catalogue("th"),
            clock=self.clock,
            jitter=lambda: 0.5,
            **values,
        )
        await notifier.start()
        self.running.append(notifier)
        return notifier

    async def status(self, event: IncidentEvent, target: str = GROUP) -> str | None:
        doc = await self.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, target)})
        return None if doc is None else str(doc["status"])

    async def settled(self) -> None:
        """Every recorded delivery is final."""

        async def nothing_left() -> bool:
            return await self.db[DELIVERIES].count_documents({"status": {"$in": ["pending", "claimed"]}}) == 0

        await eventually(nothing_left, "every delivery final")


async def eventually(
    predicate: Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.01)


async def add_inventory(
    db: AsyncDatabase[Document], groups: list[str], *, system_id: str = SYSTEM_ID
) -> None:
    team = Team(id=f"team-{system_id}", name="Infra", line_groups=groups)
    system = System(id=system_id, name="e-Gov Portal", name_th="พอร์ทัลบริการภาครัฐ", team=team.id)
    await db[TEAMS].insert_one(to_doc(team, team.id))
    await db[SYSTEMS].insert_one(to_doc(system, system.id))


async def add_platform_team(db: AsyncDatabase[Document]) -> None:
    ops = Team(id="ops", name="Ops", line_groups=[PLATFORM_GROUP], platform=True)
    await db[TEAMS].insert_one(to_doc(ops, ops.id))


@pytest.fixture
async def harness(db: AsyncDatabase[Document]) -> AsyncIterator[Harness]:
    h = Harness(db, ScriptedSender(), Clock())
    yield h
    for notifier in h.running:
        await notifier.drain(timeout=5)


def test_backoff_doubles_jitters_within_half_to_one_and_a_half_and_is_capped() -> None:
    """Delay after failed try n is base * 2**(n-1), scaled into [0.5, 1.5) by the jitter draw, at
    most the cap (a day-long outage is retried every ``line_backoff_max``, not ever more rarely)."""
    assert [backoff_delay(n, 0.5, 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(3, 0.5, 0.0) == 1.0
    assert backoff_delay(3, 0.5, 0.999) < 3.0
    assert backoff_delay(40, 0.5, 0.5, cap=60.0) == 60.0
    assert backoff_delay(10_000, 0.5, 0.5, cap=60.0) == 60.0


async def test_handling_records_the_delivery_and_returns_before_line_answers(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """The event handler only records (so the event is acknowledged at once); the group's worker
    claims the delivery before it pushes, and finishes it when LINE answers."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.gate = asyncio.Event()
    notifier = await harness.start()
    event = make_event("opened")
    await asyncio.wait_for(notifier.handle(event), timeout=5)
    await asyncio.wait_for(harness.sender.called.wait(), timeout=5)
    assert await harness.status(event) == "claimed"
    assert notifier.figures().undelivered == 1
    harness.sender.gate.set()
    await harness.settled()
    assert await harness.status(event) == "sent"
    assert harness.sender.keys(GROUP) == [retry_key(claim_id(event.event_id, GROUP))]
    assert notifier.figures().undelivered == 0


async def test_transient_errors_are_retried_with_the_same_key_until_sent(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """Two 5xx then success: three tries with one retry key, the errors counted, then ``sent``."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.script[GROUP] = [TRANSIENT, DeliveryError("503", permanent=False)]
    notifier = await harness.start()
    event = make_event("opened")
    await notifier.handle(event)
    await harness.settled()
    assert harness.sender.keys(GROUP) == [retry_key(claim_id(event.event_id, GROUP))] * 3
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, GROUP)})
    assert doc is not None
    assert (doc["status"], doc["attempts"], doc["last_error"]) == ("sent", 3, "503")


async def test_permanent_error_is_recorded_once_and_not_retried(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """A permanent error → one try, ``failed_permanent`` with the reason; a redelivered event
    does not try again."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.script[GROUP] = [
        DeliveryError("LINE answered 400: Failed to send messages", permanent=True, status=400)
    ]
    notifier = await harness.start()
    event = make_event("opened")
    await notifier.handle(event)
    await harness.settled()
    await notifier.handle(event)
    await harness.settled()
    assert len(harness.sender.calls) == 1
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, GROUP)})
    assert doc is not None
    assert (doc["status"], doc["http_status"], doc["attempts"]) == ("failed_permanent", 400, 1)


async def test_a_failing_group_holds_back_neither_another_group_nor_the_next_events(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    """Team A's group keeps failing: team B's group gets both of its messages at once, and the
    handler keeps recording (returning) while A's retries go on."""
    await add_inventory(harness.db, [GROUP])
    await add_inventory(harness.db, [GROUP_2], system_id="mail")
    harness.sender.down.add(GROUP)
    notifier = await harness.start()
    await notifier.handle(make_event("opened"))
    await eventually(lambda: _true(len(harness.sender.keys(GROUP)) >= 2), "A retried")
    b = make_incident("inc-b", system_id="mail")
    await asyncio.wait_for(notifier.handle(make_event("opened", b)), timeout=2)
    await asyncio.wait_for(notifier.handle(make_event("resolved", b)), timeout=2)
    await eventually(lambda: _true(harness.sender.kinds(GROUP_2) == ["problem", "fixed"]), "B told")
    assert harness.sender.kinds(GROUP) == []
    assert notifier.figures().failing_groups == (GROUP,)
    harness.sender.down.clear()
    await harness.settled()
    assert harness.sender.kinds(GROUP) == ["problem"]


async def _true(value: bool) -> bool:
    return value


async def test_an_incident_message_waits_until_the_earlier_one_is_sent(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """The problem message keeps failing while the incident is acknowledged and resolved: nothing
    later is tried before it, then the group gets problem first; the acknowledgement (never
    tried, made moot by the resolution) is superseded and "fixed" comes last."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.down.add(GROUP)
    notifier = await harness.start()
    opened = make_event("opened")
    await notifier.handle(opened)
    await eventually(lambda: _true(len(harness.sender.calls) >= 2), "the problem retried")
    acked = make_event("acknowledged", actor="สมชาย")
    resolved = make_event("resolved")
    await notifier.handle(acked)
    await notifier.handle(resolved)
    await eventually(lambda: _true(len(harness.sender.calls) >= 5), "more retries")
    assert {message.kind for _, _, message in harness.sender.calls} == {"problem"}
    harness.sender.down.clear()
    await harness.settled()
    assert harness.sender.kinds(GROUP) == ["problem", "fixed"]
    assert [await harness.status(e) for e in (opened, acked, resolved)] == ["sent", "superseded", "sent"]
    problem_key = retry_key(claim_id(opened.event_id, GROUP))
    fixed_key = retry_key(claim_id(resolved.event_id, GROUP))
    keys = harness.sender.keys(GROUP)
    assert set(keys[:-1]) == {problem_key}
    assert keys[-1] == fixed_key


async def test_a_problem_recorded_after_its_fixed_message_went_out_is_never_sent(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """The ``resolved`` event arrives first (its ``opened`` was redelivered late): "fixed" goes out,
    and the late problem is superseded, so the group's last word is not "down"."""
    await add_inventory(harness.db, [GROUP])
    notifier = await harness.start()
    opened, resolved = make_event("opened"), make_event("resolved")
    await notifier.handle(resolved)
    await harness.settled()
    await notifier.handle(opened)
    await harness.settled()
    assert harness.sender.kinds(GROUP) == ["fixed"]
    assert await harness.status(opened) == "superseded"


async def test_start_resumes_what_a_crashed_notifier_left_in_order_with_the_same_keys(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    """Records left by a crash: a problem claimed mid-send (maybe at LINE already) with its fixed
    message waiting, and, of another incident, a problem and its fixed message never tried. The
    next notifier's start-up sweep sends the first lane in order with the recorded keys, and the
    second as the fixed message alone."""
    await add_inventory(harness.db, [GROUP])
    store, cat = DeliveryStore(harness.db), load_catalogue("th")
    system = System(id=SYSTEM_ID, name="e-Gov Portal", team="x")
    now = harness.clock()
    lanes = []
    for incident in (make_incident("inc-1"), make_incident("inc-2")):
        opened, resolved = make_event("opened", incident), make_event("resolved", incident)
        problem, _ = await store.record(opened, GROUP, render_event(opened, system, cat), now)
        await store.record(resolved, GROUP, render_event(resolved, system, cat), now)
        lanes.append((opened, resolved, problem))
    await store.claim(lanes[0][2], now)

    notifier = await harness.start()
    await harness.settled()
    assert notifier.figures().undelivered == 0
    (opened_1, resolved_1, _), (opened_2, resolved_2, _) = lanes
    keys = harness.sender.keys(GROUP)
    sent = [retry_key(claim_id(e.event_id, GROUP)) for e in (opened_1, resolved_1, resolved_2)]
    assert sorted(keys) == sorted(sent)  # each once, with its recorded key
    assert keys.index(sent[0]) < keys.index(sent[1])  # the first lane in order
    assert sorted(m.alt_text for _, m in harness.sender.delivered) == sorted(
        render_event(e, system, cat).alt_text for e in (opened_1, resolved_1, resolved_2)
    )
    assert await harness.status(opened_2) == "superseded"


async def test_a_delivery_failing_past_the_give_up_time_is_given_up(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """LINE forgets a retry key after 24 h: a delivery still failing ``give_up_after`` seconds
    after its first try is made ``failed_permanent`` instead of being tried again."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.down.add(GROUP)
    notifier = await harness.start(give_up_after=3600.0)
    event = make_event("opened")
    await notifier.handle(event)
    await eventually(lambda: _true(len(harness.sender.calls) >= 2), "retried")
    harness.clock.now += timedelta(hours=1, seconds=1)
    await harness.settled()
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, GROUP)})
    assert doc is not None
    assert doc["status"] == "failed_permanent"
    assert doc["error"].startswith("gave up after")


async def test_failing_longer_than_the_threshold_gives_one_notice_per_period_even_across_a_restart(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """A group failing ``failing_after`` seconds → one ``delivery_failing`` notice in the outbox for
    the platform team; a restarted notifier continues the period (no second notice); the first
    message through ends it with one ``delivery_recovered`` notice."""
    await add_inventory(harness.db, [GROUP])
    await add_platform_team(harness.db)
    harness.sender.down.add(GROUP)
    first = await harness.start(failing_after=300.0)
    await first.handle(make_event("opened"))
    await eventually(lambda: _true(first.figures().failing_groups == (GROUP,)), "failing")
    began = harness.clock.now
    harness.clock.now += timedelta(seconds=299)
    await first.watch.tick(harness.clock())
    assert await harness.db[OUTBOX].count_documents({}) == 0
    harness.clock.now += timedelta(seconds=2)
    figures = await first.watch.tick(harness.clock())
    assert figures.oldest_undelivered_s >= 301
    for _ in range(3):
        await first.watch.tick(harness.clock())
    [notice] = await harness.db[OUTBOX].find({}).to_list()
    assert notice["kind"] == "delivery_failing"
    assert (notice["teams"], notice["groups"], notice["failing_groups"]) == (
        ["ops"],
        [PLATFORM_GROUP],
        [GROUP],
    )
    assert notice["undelivered"] == 1
    assert notice["since"] == began.replace(microsecond=0)
    assert "ส่งข้อความเข้า LINE ไม่สำเร็จ" in notice["text"]
    assert await harness.db[NOTIFIER_STATE].find_one({"_id": FAILING_STATE_ID}) is not None

    await first.drain(timeout=5)
    second = await harness.start(failing_after=300.0)
    await eventually(lambda: _true(second.figures().failing_groups == (GROUP,)), "still failing")
    harness.clock.now += timedelta(seconds=400)
    await second.watch.tick(harness.clock())
    assert await harness.db[OUTBOX].count_documents({}) == 1

    harness.sender.down.clear()
    await harness.settled()
    await second.watch.tick(harness.clock())
    await second.watch.tick(harness.clock())
    notices = await harness.db[OUTBOX].find({}).sort("created_at", 1).to_list()
    assert [n["kind"] for n in notices] == ["delivery_failing", "delivery_recovered"]
    assert await harness.db[NOTIFIER_STATE].count_documents({}) == 0
    assert second.figures().period_since is None


async def test_drain_lets_the_send_in_flight_finish_and_refuses_new_events(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """On stop: the try in progress finishes (so the HTTP session may then close); a new event
    raises (nak → redelivered later) without recording anything; the notifier reads unhealthy."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.gate = asyncio.Event()
    notifier = await harness.start()
    assert notifier.healthy()
    first = make_event("opened")
    await notifier.handle(first)
    await asyncio.wait_for(harness.sender.called.wait(), timeout=5)
    drained = asyncio.create_task(notifier.drain(timeout=5))
    await asyncio.sleep(0.05)
    assert not drained.done()
    with pytest.raises(DeliveryError, match="stopping"):
        await notifier.handle(make_event("opened"))
    harness.sender.gate.set()
    await asyncio.wait_for(drained, timeout=5)
    assert await harness.db[DELIVERIES].count_documents({}) == 1
    assert await harness.status(first) == "sent"
    assert not notifier.healthy()


async def test_without_a_sender_messages_go_to_the_outbox_once(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """No LINE token → one outbox document per group, deliveries ``outbox``, and a redelivered
    event adds nothing."""
    await add_inventory(harness.db, [GROUP, GROUP_2])
    notifier = await harness.start(outbox_only=True)
    event = make_event("opened")
    await notifier.handle(event)
    await notifier.handle(event)
    await harness.settled()
    docs = await harness.db[OUTBOX].find({}).to_list()
    assert sorted(d["target"] for d in docs) == sorted([GROUP, GROUP_2])
    assert [await harness.status(event, g) for g in (GROUP, GROUP_2)] == ["outbox", "outbox"]


@pytest.mark.parametrize(
    ("groups", "problem"), [(None, "unknown_system"), ([], "no_line_groups")], ids=["no-system", "no-groups"]
)
async def test_nowhere_to_send_is_recorded_as_unroutable(
    harness: Harness, make_event: Callable[..., IncidentEvent], groups: list[str] | None, problem: str
) -> None:
    """Unknown system or a team without groups → no send, an ``unroutable`` record, no exception."""
    if groups is not None:
        await add_inventory(harness.db, groups)
    notifier = await harness.start()
    await notifier.handle(make_event("opened"))
    assert harness.sender.calls == []
    [doc] = await harness.db[DELIVERIES].find({}).to_list()
    assert (doc["status"], doc["error"]) == ("unroutable", problem)
    assert notifier.figures().undelivered == 0


async def test_events_that_are_not_sent_touch_neither_routes_nor_deliveries(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    """A muted ``opened``, the ``resolved`` of an incident nobody was told about and bookkeeping
    events: no send and no delivery record, not even ``unroutable`` (there is no inventory here)."""
    notifier = await harness.start()
    muted = make_incident(muted="maintenance", alerted=False)
    for event in (
        make_event("opened", muted),
        make_event("resolved", muted),
        make_event("acknowledged", muted),
        make_event("noted"),
        make_event("suppressed", make_incident(muted="dependency", alerted=False)),
        make_event("flapping"),
        make_event("reopened"),
    ):
        await notifier.handle(event)
    assert harness.sender.calls == []
    assert await harness.db[DELIVERIES].count_documents({}) == 0


async def test_platform_incident_goes_to_every_platform_team(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    """A zone problem (system ``fao-platform``) → one send to each platform team's group; the
    owning team of ordinary systems gets nothing."""
    await add_inventory(harness.db, [GROUP_3])
    await harness.db[TEAMS].insert_one(
        to_doc(Team(id="ops", name="Ops", line_groups=[GROUP], platform=True), "ops")
    )
    await harness.db[TEAMS].insert_one(
        to_doc(Team(id="noc", name="NOC", line_groups=[GROUP_2], platform=True), "noc")
    )
    notifier = await harness.start()
    zone = make_incident(kind="zone", system_id=PLATFORM_SYSTEM, severity="minor", zones=["chiangmai"])
    await notifier.handle(make_event("opened", zone))
    await harness.settled()
    assert sorted(target for target, _ in harness.sender.delivered) == sorted([GROUP, GROUP_2])
    assert [m.kind for _, m in harness.sender.delivered] == ["problem", "problem"]
    assert "ระบบเฝ้าระวัง Fao" in harness.sender.delivered[0][1].text


async def test_platform_incident_without_a_platform_team_is_recorded_unroutable(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    await add_inventory(harness.db, [GROUP])  # a team, but not a platform team
    notifier = await harness.start()
    silent = make_incident(kind="prober_silent", system_id=PLATFORM_SYSTEM, zones=["chiangmai"])
    await notifier.handle(make_event("opened", silent))
    assert harness.sender.calls == []
    [doc] = await harness.db[DELIVERIES].find({}).to_list()
    assert (doc["status"], doc["error"], doc["system_id"]) == (
        "unroutable",
        "no_platform_team",
        PLATFORM_SYSTEM,
    )


async def test_acknowledged_is_sent_as_a_text_message(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    await add_inventory(harness.db, [GROUP])
    notifier = await harness.start()
    acked = make_incident(status="acknowledged", acknowledged_by="สมชาย")
    await notifier.handle(make_event("acknowledged", acked, actor="สมชาย"))
    await harness.settled()
    [(_, message)] = harness.sender.delivered
    assert (message.kind, message.bubble) == ("acknowledged", None)
    assert "รับทราบโดย สมชาย" in message.text
