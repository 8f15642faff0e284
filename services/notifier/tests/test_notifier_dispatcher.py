"""The dispatcher's decisions (send or not, route, retry, give up, skip, unroutable, drain) with a
scripted sender.

The stores are real (FerretDB); only the channel is a small fake that answers from a script, and
sleeping is recorded instead of waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import DELIVERIES, DeliveryStore, claim_id
from fao.notifier.dispatcher import Notifier, backoff_delay
from fao.notifier.errors import DeliveryError
from fao.notifier.line_channel import SendReceipt
from fao.notifier.outbox import Outbox
from fao.notifier.render import RenderedMessage, load_catalogue
from fao.notifier.routing import RouteResolver
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import PLATFORM_SYSTEM, Incident, IncidentEvent, System, Team

GROUP = "C" + "1" * 32
GROUP_2 = "C" + "2" * 32
GROUP_3 = "C" + "3" * 32


@dataclass
class ScriptedSender:
    """Answers each send with the next scripted outcome (a receipt, or an error to raise)."""

    script: list[SendReceipt | DeliveryError] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    messages: list[RenderedMessage] = field(default_factory=list)
    gate: asyncio.Event | None = None
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, target: str, messages: Sequence[RenderedMessage], retry_key: str) -> SendReceipt:
        self.calls.append((target, retry_key))
        self.messages.extend(messages)
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else SendReceipt(request_id="r", sent_message_ids=("1",))
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome


@dataclass
class Harness:
    notifier: Notifier
    sender: ScriptedSender
    sleeps: list[float]
    db: AsyncDatabase[Document]


async def add_inventory(db: AsyncDatabase[Document], groups: list[str]) -> None:
    team = Team(id="infra", name="Infra", line_groups=groups)
    system = System(id="egov-portal", name="e-Gov Portal", name_th="พอร์ทัลบริการภาครัฐ", team="infra")
    await db[TEAMS].insert_one(to_doc(team, team.id))
    await db[SYSTEMS].insert_one(to_doc(system, system.id))


@pytest.fixture
def harness(db: AsyncDatabase[Document]) -> Harness:
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    sender = ScriptedSender()
    notifier = Notifier(
        routes=RouteResolver(db),
        deliveries=DeliveryStore(db),
        outbox=Outbox(db),
        sender=sender,
        catalogue=load_catalogue("th"),
        max_attempts=3,
        backoff_base=0.5,
        sleep=record_sleep,
        jitter=lambda: 0.5,  # the middle of the jitter range: delays are exactly base * 2**n
    )
    return Harness(notifier, sender, sleeps, db)


def test_backoff_doubles_and_jitters_within_half_to_one_and_a_half() -> None:
    """Delay after failed try n is base * 2**(n-1), scaled into [0.5, 1.5) by the jitter draw."""
    assert [backoff_delay(n, 0.5, 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(3, 0.5, 0.0) == 1.0
    assert backoff_delay(3, 0.5, 0.999) < 3.0


async def test_transient_errors_are_retried_with_backoff_and_the_same_key(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """Two 5xx then success: three tries with one retry key, sleeps 0.5 s and 1 s, ``sent``."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.script = [DeliveryError("500", permanent=False), DeliveryError("503", permanent=False)]
    event = make_event("opened")
    await harness.notifier.handle(event)
    assert len(harness.sender.calls) == 3
    assert len({key for _, key in harness.sender.calls}) == 1
    assert harness.sleeps == [0.5, 1.0]
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, GROUP)})
    assert doc is not None
    assert (doc["status"], doc["attempts"], doc["last_error"]) == ("sent", 3, "503")


async def test_exhausted_retries_raise_so_the_event_is_redelivered_and_the_claim_stays_open(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """Still failing after max_attempts → ``handle`` raises a transient ``DeliveryError`` (process()
    naks) and the claim stays ``claimed`` for the redelivery to resume."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.script = [DeliveryError("429", permanent=False)] * 3
    event = make_event("opened")
    with pytest.raises(DeliveryError) as caught:
        await harness.notifier.handle(event)
    assert caught.value.permanent is False
    assert len(harness.sender.calls) == 3
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, GROUP)})
    assert doc is not None
    assert (doc["status"], doc["attempts"]) == ("claimed", 3)

    await harness.notifier.handle(event)  # the redelivery
    assert len({key for _, key in harness.sender.calls}) == 1
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, GROUP)})
    assert doc is not None
    assert doc["status"] == "sent"


async def test_permanent_error_is_recorded_once_and_not_retried(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """A permanent error → one try, ``failed_permanent`` with the reason, ``handle`` returns (ack);
    a redelivery does not try again."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.script = [
        DeliveryError("LINE answered 400: Failed to send messages", permanent=True, status=400)
    ]
    event = make_event("opened")
    await harness.notifier.handle(event)
    await harness.notifier.handle(event)
    assert len(harness.sender.calls) == 1
    assert harness.sleeps == []
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(event.event_id, GROUP)})
    assert doc is not None
    assert (doc["status"], doc["http_status"], doc["attempts"]) == ("failed_permanent", 400, 1)


async def test_one_failing_group_does_not_hold_back_the_others(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """Two groups, the first keeps failing: the second is still sent, and only the first is left
    for the redelivery (which then skips the second)."""
    await add_inventory(harness.db, [GROUP, GROUP_2])
    harness.sender.script = [DeliveryError("500", permanent=False)] * 3
    event = make_event("opened")
    with pytest.raises(DeliveryError):
        await harness.notifier.handle(event)
    assert [target for target, _ in harness.sender.calls] == [GROUP] * 3 + [GROUP_2]
    await harness.notifier.handle(event)
    assert [target for target, _ in harness.sender.calls][-1] == GROUP
    assert len(harness.sender.calls) == 5


@pytest.mark.parametrize(
    ("groups", "problem"), [(None, "unknown_system"), ([], "no_line_groups")], ids=["no-system", "no-groups"]
)
async def test_nowhere_to_send_is_recorded_as_unroutable(
    harness: Harness, make_event: Callable[..., IncidentEvent], groups: list[str] | None, problem: str
) -> None:
    """Unknown system or a team without groups → no send, an ``unroutable`` record, no exception."""
    if groups is not None:
        await add_inventory(harness.db, groups)
    await harness.notifier.handle(make_event("opened"))
    assert harness.sender.calls == []
    [doc] = await harness.db[DELIVERIES].find({}).to_list()
    assert (doc["status"], doc["error"]) == ("unroutable", problem)


async def test_drain_waits_for_the_send_in_flight_and_refuses_new_events(
    harness: Harness, make_event: Callable[..., IncidentEvent]
) -> None:
    """On stop: the handling in progress finishes its send (so the HTTP session may then close);
    a new event raises (nak → redelivered later) without claiming anything."""
    await add_inventory(harness.db, [GROUP])
    harness.sender.gate = asyncio.Event()
    first = make_event("opened")
    in_flight = asyncio.create_task(harness.notifier.handle(first))
    await asyncio.wait_for(harness.sender.called.wait(), timeout=5)
    drained = asyncio.create_task(harness.notifier.drain(timeout=5))
    await asyncio.sleep(0.05)
    assert not drained.done()
    with pytest.raises(DeliveryError, match="stopping"):
        await harness.notifier.handle(make_event("opened"))
    harness.sender.gate.set()
    await asyncio.wait_for(drained, timeout=5)
    await in_flight
    assert await harness.db[DELIVERIES].count_documents({}) == 1
    doc = await harness.db[DELIVERIES].find_one({"_id": claim_id(first.event_id, GROUP)})
    assert doc is not None
    assert doc["status"] == "sent"


async def test_events_that_are_not_sent_touch_neither_routes_nor_deliveries(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    """A muted ``opened``, the ``resolved`` of an incident nobody was told about and bookkeeping
    events: no send and no delivery record, not even ``unroutable`` (there is no inventory here)."""
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
        await harness.notifier.handle(event)
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
    zone = make_incident(kind="zone", system_id=PLATFORM_SYSTEM, severity="minor", zones=["chiangmai"])
    await harness.notifier.handle(make_event("opened", zone))
    assert sorted(target for target, _ in harness.sender.calls) == sorted([GROUP, GROUP_2])
    assert [m.kind for m in harness.sender.messages] == ["problem", "problem"]
    assert "ระบบเฝ้าระวัง Fao" in harness.sender.messages[0].text


async def test_platform_incident_without_a_platform_team_is_recorded_unroutable(
    harness: Harness, make_event: Callable[..., IncidentEvent], make_incident: Callable[..., Incident]
) -> None:
    await add_inventory(harness.db, [GROUP])  # a team, but not a platform team
    silent = make_incident(kind="prober_silent", system_id=PLATFORM_SYSTEM, zones=["chiangmai"])
    await harness.notifier.handle(make_event("opened", silent))
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
    acked = make_incident(status="acknowledged", acknowledged_by="สมชาย")
    await harness.notifier.handle(make_event("acknowledged", acked, actor="สมชาย"))
    [message] = harness.sender.messages
    assert (message.kind, message.bubble) == ("acknowledged", None)
    assert "รับทราบโดย สมชาย" in message.text
