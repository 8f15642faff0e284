"""Escalation timers on a real FerretDB, driven by an injected clock (``fao.notifier.escalation``).

Each test builds ``Escalator``s over the test's database (no NATS: events are handed to ``arm`` /
``observe`` as the dispatcher does) and calls ``check()`` — one pass of the loop — at chosen
moments, so reminders minutes apart take no time. What was recorded is read back from
``deliveries``, ``escalations`` and ``escalation_steps``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.deliveries import Delivery, DeliveryStore
from fao.notifier.escalation import (
    ESCALATION_STEPS,
    ESCALATIONS,
    INCIDENTS,
    Escalator,
    step_claim_id,
)
from fao.notifier.escalation_schedule import StepRun
from fao.notifier.render import load_catalogue, postback_data
from fao.notifier.routing import RouteResolver
from fao.runtime.inventory import PEOPLE, SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import EscalationPolicy, Incident, IncidentEvent, IncidentEventType, Person, System, Team

START = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)
SYSTEM_ID = "egov-portal"
INCIDENT_ID = "inc-0123456789abcdef0123"
TEAM_GROUP = "C" + "1" * 32
EXTRA_GROUP = "C" + "2" * 32
DIRECTOR_GROUP = "C" + "3" * 32
LEAD = Person(id="lead", name="สมชาย ใจดี", role="หัวหน้าทีม", teams=["infra"], line_user_id="U" + "a" * 32)
DEPUTY = Person(id="deputy", name="สมหญิง", teams=["infra"], line_user_id="U" + "b" * 32)
NO_LINE = Person(id="no-line", name="ไม่มีไลน์", teams=["infra"], email="x@example.org")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = START + timedelta(seconds=seconds)


def outcome_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("fao_notifier_escalations_total", {"outcome": outcome}) or 0.0


@dataclass
class Env:
    db: AsyncDatabase[Document]
    clock: Clock = field(default_factory=Clock)
    recorded: list[Delivery] = field(default_factory=list)

    def escalator(self, holder: str = "test", interval: float = 1.0) -> Escalator:
        """A fresh escalator, as a new notifier process (``holder``) would make it."""
        return Escalator(
            self.db,
            routes=RouteResolver(self.db),
            deliveries=DeliveryStore(self.db),
            catalogue=load_catalogue("th"),
            recorded=self.recorded.append,
            clock=self.clock,
            holder=holder,
            interval=interval,
        )

    async def configure(self, policy: dict[str, Any] | None) -> None:
        """The owning team ``infra`` (with ``policy``), a directors' team, people and the system."""
        escalation = EscalationPolicy.model_validate(policy) if policy is not None else None
        teams = [
            Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=[TEAM_GROUP], escalation=escalation),
            Team(id="directors", name="ผู้อำนวยการ", line_groups=[DIRECTOR_GROUP]),
            Team(id="empty", name="ทีมที่ไม่มีกลุ่ม"),
        ]
        for team in teams:
            await self.db[TEAMS].replace_one({"_id": team.id}, to_doc(team, team.id), upsert=True)
        for person in (LEAD, DEPUTY, NO_LINE):
            await self.db[PEOPLE].replace_one({"_id": person.id}, to_doc(person, person.id), upsert=True)
        system = System(
            id=SYSTEM_ID, name="e-Gov Portal", name_th="พอร์ทัลบริการภาครัฐ", team="infra", severity="critical"
        )
        await self.db[SYSTEMS].replace_one({"_id": system.id}, to_doc(system, system.id), upsert=True)

    async def open_incident(self, incident_id: str = INCIDENT_ID, **changes: Any) -> Incident:
        """An open, alerted incident as the correlator stores it in ``incidents``."""
        incident = Incident.model_validate(
            {
                "id": incident_id,
                "system_id": SYSTEM_ID,
                "severity": "critical",
                "status": "open",
                "title": "หน้าแรก: HTTP 503",
                "cause": "HTTP 503 Service Unavailable",
                "started_at": START - timedelta(minutes=2),
                "alerted": True,
                **changes,
            }
        )
        await self.store_incident(incident)
        return incident

    async def store_incident(self, incident: Incident) -> None:
        doc = {"_id": incident.id, **incident.model_dump(mode="python")}
        await self.db[INCIDENTS].replace_one({"_id": incident.id}, doc, upsert=True)

    async def arm(self, escalator: Escalator, incident: Incident, at: datetime = START) -> IncidentEvent:
        """The problem message of ``incident`` was recorded at ``at`` (the dispatcher's call)."""
        event = make_event("opened", incident, at)
        await escalator.arm(event, await RouteResolver(self.db).resolve(incident.system_id))
        return event

    async def escalation_deliveries(self) -> list[Document]:
        docs = await self.db["deliveries"].find({"event_type": "escalated"}).to_list()
        return sorted(docs, key=lambda d: d["_id"])

    async def timer(self, incident_id: str = INCIDENT_ID) -> Document:
        doc = await self.db[ESCALATIONS].find_one({"_id": incident_id})
        assert doc is not None, f"no escalation document for {incident_id}"
        return doc


def make_event(event_type: IncidentEventType, incident: Incident, at: datetime) -> IncidentEvent:
    return IncidentEvent(event_id=uuid.uuid4(), type=event_type, at=at, incident=incident)


@pytest.fixture
def env(db: AsyncDatabase[Document]) -> Env:
    return Env(db)


def ids(docs: list[Document]) -> list[str]:
    return [doc["_id"] for doc in docs]


LEAD_THEN_DIRECTORS = {
    "steps": [
        {"after": "10m", "people": ["lead", "no-line", "ghost"], "line_groups": [EXTRA_GROUP]},
        {"after": "30m", "teams": ["directors", "empty", "nowhere"], "people": ["lead", "no-line"]},
    ]
}


async def test_a_due_step_records_one_escalation_delivery_per_target_with_the_problem_buttons(
    env: Env,
) -> None:
    """At ``after`` the step's people (their LINE user ids), groups and teams' groups each get one
    ``escalation`` delivery naming the system in Thai, how long nobody acknowledged and the
    severity, with the problem message's Acknowledge / Resolve postback data; people without a
    LINE user id and unknown people or teams are skipped, each logged once."""
    await env.configure(LEAD_THEN_DIRECTORS)
    incident = await env.open_incident()
    escalator = env.escalator()
    await env.arm(escalator, incident)

    env.clock.at(599)
    await escalator.check()
    assert await env.escalation_deliveries() == []

    fired_before = outcome_count("fired")
    env.clock.at(600)
    await escalator.check()
    env.clock.at(1800)
    await escalator.check()
    env.clock.at(1801)
    await escalator.check()
    assert outcome_count("fired") - fired_before == 2
    first, second = step_claim_id(INCIDENT_ID, StepRun(0, 0)), step_claim_id(INCIDENT_ID, StepRun(1, 0))
    assert ids(await env.escalation_deliveries()) == sorted(
        [
            f"{first}:line:{LEAD.line_user_id}",
            f"{first}:line:{EXTRA_GROUP}",
            f"{second}:line:{LEAD.line_user_id}",
            f"{second}:line:{DIRECTOR_GROUP}",
        ]
    )
    assert [d.target for d in env.recorded] == [
        LEAD.line_user_id,
        EXTRA_GROUP,
        LEAD.line_user_id,
        DIRECTOR_GROUP,
    ]
    delivery = await env.db["deliveries"].find_one({"_id": f"{first}:line:{LEAD.line_user_id}"})
    assert delivery is not None
    assert delivery["status"] == "pending"
    assert delivery["kind"] == "escalation"
    assert delivery["incident_id"] == INCIDENT_ID
    message = delivery["message"]
    assert "พอร์ทัลบริการภาครัฐ" in message["alt_text"]
    assert "10 นาที" in message["alt_text"]  # nobody acknowledged it for 10 minutes
    assert "วิกฤต" in message["alt_text"]  # critical
    assert postback_data("ack", INCIDENT_ID) in message["flex"]
    assert postback_data("resolve", INCIDENT_ID) in message["flex"]
    # skipped, each logged once although "no-line" is in both steps
    assert escalator.warned == {
        "team:empty:no_line_groups",
        "person:ghost:unknown",
        "person:no-line:no_line_user_id",
        "team:nowhere:unknown",
    }
    timer = await env.timer()
    assert timer["status"] == "done"  # no reminders: both steps said what they had to say
    assert sorted(timer["fired"]) == ["0.0", "1.0"]
    claim = await env.db[ESCALATION_STEPS].find_one({"_id": first})
    assert claim is not None
    assert claim["status"] == "recorded"
    assert claim["targets"] == [LEAD.line_user_id, EXTRA_GROUP]


async def test_reminders_repeat_every_n_up_to_repeat_then_the_timer_is_done(env: Env) -> None:
    """``repeat_every: 5m, repeat: 2``: the lead is told at 10 min, reminded at 15 and 20 min
    (saying which reminder), never more; checks in between record nothing."""
    await env.configure({"steps": [{"after": "10m", "people": ["lead"], "repeat_every": "5m", "repeat": 2}]})
    escalator = env.escalator()
    await env.arm(escalator, await env.open_incident())
    fired_per_check = []
    for seconds in (0, 600, 601, 899, 900, 1100, 1200, 1500, 3000):
        env.clock.at(seconds)
        before = len(await env.escalation_deliveries())
        await escalator.check()
        fired_per_check.append(len(await env.escalation_deliveries()) - before)
    assert fired_per_check == [0, 1, 0, 0, 1, 0, 1, 0, 0]
    docs = await env.escalation_deliveries()
    assert [d["escalation_n"] for d in docs] == [0, 1, 2]
    assert "แจ้งเตือนซ้ำครั้งที่ 2" in docs[2]["message"]["alt_text"]
    assert "20 นาที" in docs[2]["message"]["alt_text"]
    assert "แจ้งเตือนซ้ำ" not in docs[0]["message"]["alt_text"]
    assert (await env.timer())["status"] == "done"
    assert escalator.active == 0


async def test_two_escalators_racing_for_the_same_due_steps_fire_each_once(env: Env) -> None:
    """Two escalators (two notifier processes during a handover) check the same timers at the
    same moment: every step occurrence is claimed by exactly one of them and each target gets one
    delivery."""
    await env.configure({"steps": [{"after": 60, "people": ["lead", "deputy"], "teams": ["directors"]}]})
    first, second = env.escalator("first"), env.escalator("second")
    incidents = [await env.open_incident(f"inc-race-{i:02d}") for i in range(8)]
    for incident in incidents:
        await env.arm(first, incident)
    await second.load()
    env.clock.at(60)
    fired_before = outcome_count("fired")
    await asyncio.gather(first.check(), second.check())
    # each escalator counts only the claims it won: together, one per incident
    assert outcome_count("fired") - fired_before == len(incidents)
    docs = await env.escalation_deliveries()
    assert len(docs) == 3 * len(incidents)
    assert len({(d["incident_id"], d["target"]) for d in docs}) == len(docs)
    claims = await env.db[ESCALATION_STEPS].find({}).to_list()
    assert sorted(c["_id"] for c in claims) == sorted(step_claim_id(i.id, StepRun(0, 0)) for i in incidents)
    assert all(c["status"] == "recorded" for c in claims)
    assert {c["claimed_by"] for c in claims} <= {"first", "second"}


async def test_two_running_escalator_loops_fire_a_due_step_once(env: Env) -> None:
    """Two escalators started as a notifier starts them (each with its own loop, checking every
    50 ms) on the same timers: after both have checked several times, every target has one
    delivery and one of them counted the firing."""
    await env.configure({"steps": [{"after": 60, "people": ["lead"], "line_groups": [EXTRA_GROUP]}]})
    first, second = env.escalator("first", interval=0.05), env.escalator("second", interval=0.05)
    await env.arm(first, await env.open_incident())
    env.clock.at(61)
    fired_before = outcome_count("fired")
    await asyncio.gather(first.start(), second.start())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while min(first.checks, second.checks) < 5:
            assert loop.time() < deadline, "the loops did not check five times each within 10 s"
            await asyncio.sleep(0.01)
        assert first.healthy()
        assert second.healthy()
    finally:
        await first.stop()
        await second.stop()
    targets = sorted(d["target"] for d in await env.escalation_deliveries())
    assert targets == sorted([str(LEAD.line_user_id), EXTRA_GROUP])
    assert outcome_count("fired") - fired_before == 1


async def test_a_new_process_fires_a_step_missed_while_down_once_and_not_every_missed_reminder(
    env: Env,
) -> None:
    """The notifier stops after the first message and comes back 40 minutes later: the new
    process fires the latest reminder due (once) and the later step, then nothing more."""
    policy = {
        "steps": [
            {"after": "10m", "people": ["lead"], "repeat_every": "5m", "repeat": 10},
            {"after": "30m", "teams": ["directors"]},
        ]
    }
    await env.configure(policy)
    before_crash = env.escalator()
    await env.arm(before_crash, await env.open_incident())
    env.clock.at(600)
    await before_crash.check()
    assert len(await env.escalation_deliveries()) == 1

    env.clock.at(3000)  # 50 min: reminders 1-7 and the directors' step were due meanwhile
    restarted = env.escalator()
    await restarted.load()
    await restarted.check()
    await restarted.check()
    docs = await env.escalation_deliveries()
    assert [(d["escalation_step"], d["escalation_n"], d["target"]) for d in docs] == [
        (0, 0, LEAD.line_user_id),
        (0, 8, LEAD.line_user_id),
        (1, 0, DIRECTOR_GROUP),
    ]
    assert sorted((await env.timer())["fired"]) == ["0.0", "0.8", "1.0"]


async def test_an_acknowledgement_seen_in_incidents_cancels_instead_of_firing(env: Env) -> None:
    """Acknowledged from the CLI or LINE (the ``incidents`` collection says so) before the next
    step: the step is not sent, the timer is cancelled, and later checks send nothing."""
    await env.configure(LEAD_THEN_DIRECTORS)
    escalator = env.escalator()
    incident = await env.open_incident()
    await env.arm(escalator, incident)
    env.clock.at(600)
    await escalator.check()
    assert len(await env.escalation_deliveries()) == 2
    acknowledged = incident.model_copy(
        update={"status": "acknowledged", "acknowledged_at": START, "acknowledged_by": "cli:somchai"}
    )
    await env.store_incident(acknowledged)
    checks = escalator.checks
    for seconds in (1800, 1900, 7200):
        env.clock.at(seconds)
        await escalator.check()
    assert escalator.checks == checks + 3
    assert len(await env.escalation_deliveries()) == 2
    timer = await env.timer()
    assert (timer["status"], timer["why"]) == ("cancelled", "acknowledged")
    # a new process does not bring it back
    restarted = env.escalator()
    await restarted.load()
    await restarted.check()
    assert len(await env.escalation_deliveries()) == 2


@pytest.mark.parametrize("ender", ["acknowledged", "resolved"])
async def test_acknowledged_or_resolved_event_cancels_and_a_redelivered_opened_does_not_rearm(
    env: Env, ender: IncidentEventType
) -> None:
    """The event cancels the timer; the ``opened`` event delivered again afterwards (at least
    once delivery) finds the cancelled timer and changes nothing."""
    await env.configure(LEAD_THEN_DIRECTORS)
    escalator = env.escalator()
    incident = await env.open_incident()
    opened = await env.arm(escalator, incident)
    await escalator.observe(make_event(ender, incident.model_copy(update={"status": ender}), START))
    await escalator.arm(opened, await RouteResolver(env.db).resolve(SYSTEM_ID))
    env.clock.at(7200)
    await escalator.check()
    assert await env.escalation_deliveries() == []
    timer = await env.timer()
    assert (timer["status"], timer["why"]) == ("cancelled", ender)


async def test_an_acknowledgement_arriving_before_its_opened_event_prevents_arming(env: Env) -> None:
    """Out of order: ``acknowledged`` first leaves a cancelled timer, so the late ``opened``
    arms nothing."""
    await env.configure(LEAD_THEN_DIRECTORS)
    escalator = env.escalator()
    incident = await env.open_incident()
    await escalator.observe(
        make_event("acknowledged", incident.model_copy(update={"status": "acknowledged"}), START)
    )
    await env.arm(escalator, incident)
    env.clock.at(7200)
    await escalator.check()
    assert await env.escalation_deliveries() == []
    assert (await env.timer())["status"] == "cancelled"


ENDERS: tuple[IncidentEventType, ...] = ("acknowledged", "resolved")


async def test_an_acknowledgement_without_a_timer_or_a_policy_records_nothing(env: Env) -> None:
    """Most teams have no policy: their incidents' acknowledgements and resolutions leave no
    document in ``escalations`` and count no cancellation; a timer cancelled twice counts once."""
    await env.configure(None)
    escalator = env.escalator()
    incident = await env.open_incident()
    cancelled_before = outcome_count("cancelled")
    for ender in ENDERS:
        await escalator.observe(make_event(ender, incident.model_copy(update={"status": ender}), START))
    assert await env.db[ESCALATIONS].find_one({"_id": INCIDENT_ID}) is None

    await env.configure(LEAD_THEN_DIRECTORS)
    await env.arm(escalator, incident)
    for ender in ENDERS:
        await escalator.observe(make_event(ender, incident.model_copy(update={"status": ender}), START))
    assert outcome_count("cancelled") - cancelled_before == 1
    assert (await env.timer())["why"] == "acknowledged"


async def test_only_the_policy_severities_escalate(env: Env) -> None:
    """A minor incident under the default policy (critical, major) gets no timer at all."""
    await env.configure(LEAD_THEN_DIRECTORS)
    escalator = env.escalator()
    await env.arm(escalator, await env.open_incident(severity="minor"))
    assert await env.db[ESCALATIONS].find_one({"_id": INCIDENT_ID}) is None


async def test_a_changed_policy_applies_to_running_timers_and_a_removed_one_cancels(env: Env) -> None:
    """Steps added while the timer runs fire when their time (from the original start) comes;
    removing the team's policy cancels the timer."""
    await env.configure({"steps": [{"after": "10m", "people": ["lead"]}]})
    escalator = env.escalator()
    await env.arm(escalator, await env.open_incident())
    env.clock.at(600)
    await escalator.check()
    await env.configure(
        {"steps": [{"after": "10m", "people": ["lead"]}, {"after": "20m", "people": ["deputy"]}]}
    )
    env.clock.at(1500)
    await escalator.check()
    assert [d["target"] for d in await env.escalation_deliveries()] == [
        LEAD.line_user_id,
        DEPUTY.line_user_id,
    ]

    await env.configure(None)
    env.clock.at(7200)
    await escalator.check()
    assert len(await env.escalation_deliveries()) == 2
    timer = await env.timer()
    assert (timer["status"], timer["why"]) == ("cancelled", "no_policy")


async def test_a_claim_left_half_done_by_a_crash_is_completed_once(env: Env) -> None:
    """A process claimed a step and died before recording its deliveries: the next check records
    the claim's deliveries (to the targets the claim chose) and does not count a second firing."""
    await env.configure({"steps": [{"after": 60, "people": ["lead"]}]})
    escalator = env.escalator()
    await env.arm(escalator, await env.open_incident())
    cid = step_claim_id(INCIDENT_ID, StepRun(0, 0))
    await env.db[ESCALATION_STEPS].insert_one(
        {
            "_id": cid,
            "incident_id": INCIDENT_ID,
            "team": "infra",
            "step": 0,
            "n": 0,
            "targets": [DEPUTY.line_user_id],
            "waited_s": 61.0,
            "at": START + timedelta(seconds=61),
            "status": "claimed",
            "claimed_by": "crashed-1",
            "claimed_at": START + timedelta(seconds=61),
        }
    )
    fired_before = outcome_count("fired")
    env.clock.at(120)
    await escalator.check()
    assert [d["_id"] for d in await env.escalation_deliveries()] == [f"{cid}:line:{DEPUTY.line_user_id}"]
    assert outcome_count("fired") == fired_before
    claim = await env.db[ESCALATION_STEPS].find_one({"_id": cid})
    assert claim is not None
    assert claim["status"] == "recorded"


async def test_an_incident_missing_from_incidents_is_not_escalated_yet(env: Env) -> None:
    """Without the correlator's record there is no truth to check: nothing fires, the timer waits."""
    await env.configure({"steps": [{"after": 60, "people": ["lead"]}]})
    escalator = env.escalator()
    incident = await env.open_incident()
    await env.db[INCIDENTS].delete_one({"_id": incident.id})
    await env.arm(escalator, incident)
    env.clock.at(120)
    await escalator.check()
    assert await env.escalation_deliveries() == []
    assert (await env.timer())["status"] == "active"
    await env.store_incident(incident)
    await escalator.check()
    assert len(await env.escalation_deliveries()) == 1
