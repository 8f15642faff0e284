"""Escalation and the Official Account follow-up through the notifier process: real nats-server,
real FerretDB, the fake LINE API (conftest's ``stack``), real time.

Steps use ``after`` of a few seconds (the loop checks every second). "Nothing more was sent" is
asserted only once the escalation loop has finished checks *after* the moment something would
have been sent (``fao_notifier_escalation_last_check_timestamp_seconds``), never after a fixed
sleep. The correlator is not running: each test stores the incident in ``incidents`` as it would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase
from services.notifier.tests.stack import Stack

from fao.notifier.escalation import ESCALATION_STEPS, ESCALATIONS, INCIDENTS, step_claim_id
from fao.notifier.escalation_schedule import StepRun
from fao.notifier.oa_reports import OA_REPORTS, report_claim_id
from fao.notifier.render import postback_data
from fao.runtime.inventory import PEOPLE, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import EscalationPolicy, Incident, Person, Team
from fao.testing.fake_line import FakeLineServer, message_texts

LEAD = Person(id="lead", name="สมชาย ใจดี", teams=["infra"], line_user_id="U" + "a" * 32)
DIRECTOR = Person(id="director", name="ผู้อำนวยการ", line_user_id="U" + "d" * 32)
REPORTER_1 = "U" + "1" * 32
REPORTER_2 = "U" + "2" * 32


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def last_check() -> float:
    """When the active notifier's escalation loop last finished a pass (Unix time)."""
    return REGISTRY.get_sample_value("fao_notifier_escalation_last_check_timestamp_seconds") or 0.0


async def checks_after(moment: datetime, passes: int = 2) -> None:
    """Wait until the escalation loop has finished ``passes`` more checks after ``moment``."""
    target = moment.timestamp() + passes
    await wait_until(lambda: last_check() >= target, f"escalation checks {passes} s after {moment}")


async def configure(stack: Stack, policy: dict[str, Any] | None) -> None:
    """The standard system and team ``infra`` (its group ``stack.group``), with ``policy``; people."""
    await stack.add_inventory([stack.group])
    team = Team(
        id="infra",
        name="ทีมโครงสร้างพื้นฐาน",
        line_groups=[stack.group],
        escalation=EscalationPolicy.model_validate(policy) if policy is not None else None,
    )
    await stack.db[TEAMS].replace_one({"_id": team.id}, to_doc(team, team.id), upsert=True)
    for person in (LEAD, DIRECTOR):
        await stack.db[PEOPLE].replace_one({"_id": person.id}, to_doc(person, person.id), upsert=True)


async def open_incident(stack: Stack, **changes: Any) -> Incident:
    """An open critical incident starting now, stored in ``incidents`` as the correlator does."""
    incident = Incident.model_validate(
        {
            "id": f"inc-{uuid.uuid4().hex[:20]}",
            "system_id": stack.system_id,
            "severity": "critical",
            "status": "open",
            "title": "หน้าแรก: HTTP 503",
            "cause": "HTTP 503 Service Unavailable from http://10.0.0.7/portal",
            "started_at": datetime.now(UTC),
            "alerted": True,
            **changes,
        }
    )
    await stack.db[INCIDENTS].replace_one(
        {"_id": incident.id}, {"_id": incident.id, **incident.model_dump(mode="python")}, upsert=True
    )
    return incident


def pushes_to(line: FakeLineServer, to: str) -> list[dict[str, Any]]:
    return line.pushes_to(to)


async def escalation_deliveries(db: AsyncDatabase[Document]) -> list[Document]:
    return await db["deliveries"].find({"event_type": "escalated"}).to_list()


async def test_two_notifier_replicas_fire_each_step_once_across_a_handover(stack: Stack) -> None:
    """Two notifiers (one active, one standby on the lease): the lead is told once at 1 s by the
    active one; it stops, the standby takes over with the timer and tells the director at 6 s —
    and neither ever tells the lead again."""
    await configure(
        stack, {"steps": [{"after": 1, "people": ["lead"]}, {"after": 6, "people": ["director"]}]}
    )
    settings = stack.settings(lease_ttl=1.0)
    first = await stack.start_notifier(settings)
    second = await stack.start_notifier(settings)  # standby: the lease is the first one's
    incident = await open_incident(stack)
    await stack.publish(stack.event("opened", incident))

    await wait_until(
        lambda: len(pushes_to(stack.line, LEAD.line_user_id or "")) == 1, "the lead's escalation"
    )
    await first.stop()
    stopped_at = datetime.now(UTC)
    await wait_until(
        lambda: len(pushes_to(stack.line, DIRECTOR.line_user_id or "")) == 1, "the director's escalation"
    )
    await checks_after(datetime.now(UTC))
    await stack.quiet()

    assert len(pushes_to(stack.line, LEAD.line_user_id or "")) == 1
    assert len(pushes_to(stack.line, DIRECTOR.line_user_id or "")) == 1
    assert len(stack.line.pushes_to(stack.group)) == 1  # the problem message itself
    director_claim = await stack.db[ESCALATION_STEPS].find_one(
        {"_id": step_claim_id(incident.id, StepRun(1, 0))}
    )
    assert director_claim is not None
    assert director_claim["claimed_at"] > stopped_at, "the director's step must be the standby's"
    assert len(await escalation_deliveries(stack.db)) == 2
    timer = await stack.db[ESCALATIONS].find_one({"_id": incident.id})
    assert timer is not None
    assert sorted(timer["fired"]) == ["0.0", "1.0"]
    await second.stop()


async def test_a_step_due_while_the_notifier_was_stopped_fires_once_after_restart(stack: Stack) -> None:
    """The notifier stops before the step is due and starts after it: the step fires on start,
    exactly once."""
    await configure(stack, {"steps": [{"after": 4, "people": ["lead"]}]})
    notifier = await stack.start_notifier()
    incident = await open_incident(stack)
    opened = stack.event("opened", incident)
    await stack.publish(opened)
    await stack.quiet()
    assert await stack.db[ESCALATIONS].find_one({"_id": incident.id, "status": "active"}) is not None
    await notifier.stop()
    due = opened.at + timedelta(seconds=4)
    await wait_until(lambda: datetime.now(UTC) > due, "the step's due time")
    assert pushes_to(stack.line, LEAD.line_user_id or "") == [], "fired before the notifier stopped"

    await stack.start_notifier()
    await wait_until(lambda: len(pushes_to(stack.line, LEAD.line_user_id or "")) == 1, "the escalation")
    await checks_after(datetime.now(UTC))
    await stack.quiet()
    [push] = pushes_to(stack.line, LEAD.line_user_id or "")
    message = push["messages"][0]
    assert message["type"] == "flex"
    assert stack.system_name_th in message["altText"]
    assert "ยังไม่มีผู้รับทราบ" in message["altText"]
    assert postback_data("ack", incident.id) in str(message["contents"]["footer"])
    assert len(await escalation_deliveries(stack.db)) == 1
    timer = await stack.db[ESCALATIONS].find_one({"_id": incident.id})
    assert timer is not None
    assert timer["status"] == "done"


async def test_an_acknowledgement_stops_the_escalation(stack: Stack) -> None:
    """Step 1 (lead, 1 s) is sent; the incident is acknowledged; step 2 (director, 5 s) never is,
    though the loop checked well after its time."""
    await configure(
        stack, {"steps": [{"after": 1, "people": ["lead"]}, {"after": 5, "people": ["director"]}]}
    )
    await stack.start_notifier()
    incident = await open_incident(stack)
    opened = stack.event("opened", incident)
    await stack.publish(opened)
    await wait_until(
        lambda: len(pushes_to(stack.line, LEAD.line_user_id or "")) == 1, "the lead's escalation"
    )

    acknowledged = incident.model_copy(
        update={
            "status": "acknowledged",
            "acknowledged_at": datetime.now(UTC),
            "acknowledged_by": "line:สมชาย",
        }
    )
    await stack.publish(stack.event("acknowledged", acknowledged, actor="line:สมชาย"))
    await stack.settled()
    timer = await stack.db[ESCALATIONS].find_one({"_id": incident.id})
    assert timer is not None
    assert (timer["status"], timer["why"]) == ("cancelled", "acknowledged")
    await checks_after(max(datetime.now(UTC), opened.at + timedelta(seconds=5)))
    await stack.quiet()
    assert pushes_to(stack.line, DIRECTOR.line_user_id or "") == []
    assert len(pushes_to(stack.line, LEAD.line_user_id or "")) == 1
    assert any("รับทราบโดย สมชาย" in t for t in stack.line.texts(stack.group))


async def test_resolved_incident_with_official_account_reports_pushes_once_to_each_reporter(
    stack: Stack,
) -> None:
    """Two people reported the problem to the Official Account (one of them twice): the
    ``resolved`` event pushes one short Thai message to each, with their reference numbers and the
    time, and nothing internal (no system, host, URL or error); the event delivered again pushes
    nothing more."""
    await configure(stack, None)
    await stack.start_notifier()
    incident = await open_incident(stack, kind="manual")
    reports = [
        {"_id": "r1", "incident_id": incident.id, "user_id": REPORTER_1, "reference": "OA-0001"},
        {"_id": "r2", "incident_id": incident.id, "user_id": REPORTER_2, "reference": "OA-0002"},
        {"_id": "r3", "incident_id": incident.id, "user_id": REPORTER_1, "reference": "OA-0003"},
        {"_id": "r4", "incident_id": "inc-another", "user_id": REPORTER_2, "reference": "OA-0004"},
    ]
    for report in reports:
        await stack.db[OA_REPORTS].insert_one({**report, "created_at": datetime.now(UTC)})
    resolved = stack.event("resolved", incident)
    await stack.publish(resolved)
    await stack.line.wait_for_pushes(3)
    await stack.quiet()

    [first] = pushes_to(stack.line, REPORTER_1)
    [second] = pushes_to(stack.line, REPORTER_2)
    first_text = " ".join(message_texts(first["messages"][0]))
    second_text = " ".join(message_texts(second["messages"][0]))
    assert first["messages"][0]["type"] == "text"
    assert "ได้รับการแก้ไขแล้ว" in first_text
    assert "OA-0001" in first_text
    assert "OA-0003" in first_text
    assert "OA-0002" in second_text
    assert "OA-0004" not in second_text
    assert "2569" in first_text  # when, in the Thai calendar
    for text in (first_text, second_text):
        for internal in (stack.system_name_th, stack.system_id, "10.0.0.7", "http", "503", incident.id):
            assert internal not in text
    doc = await stack.db["deliveries"].find_one({"_id": report_claim_id(resolved, REPORTER_1)})
    assert doc is not None
    assert doc["status"] == "sent"

    await stack.publish(resolved, msg_id=f"{resolved.event_id}-again")
    await stack.quiet()
    assert len(pushes_to(stack.line, REPORTER_1)) == 1
    assert len(pushes_to(stack.line, REPORTER_2)) == 1
