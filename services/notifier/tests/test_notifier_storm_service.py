"""Storm digests and the LINE quota end to end: a notifier process (in this event loop) on real
nats-server and FerretDB, pushing to the fake LINE API server.

Push counts are asserted only after the evidence that everything was processed: every event
acknowledged by the durable consumer (``settled``), the digest delivered, and no delivery left
to send (``quiet``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from services.notifier.tests.stack import Stack

from fao.notifier.outbox import OUTBOX
from fao.notifier.quota import LINE_STATE, QUOTA_ID, forecast_month
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import Incident, Severity, System, Team
from fao.testing.fake_line import FakeLineServer, message_texts

STORM = 50


async def add_systems(
    stack: Stack, n: int, severity: Severity = "major", prefix: str = "svc"
) -> list[System]:
    team = Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=[stack.group])
    ops = Team(id="ops", name="ทีมดูแลระบบ Fao", line_groups=["C" + "9" * 32], platform=True)
    for t in (team, ops):
        await stack.db[TEAMS].replace_one({"_id": t.id}, to_doc(t, t.id), upsert=True)
    systems = [
        System(
            id=f"{prefix}-{i:03d}",
            name=f"Service {i}",
            name_th=f"ระบบบริการที่ {i}",
            team="infra",
            severity=severity,
        )
        for i in range(n)
    ]
    await stack.db[SYSTEMS].insert_many([to_doc(s, s.id) for s in systems])
    return systems


def incident_of(stack: Stack, system: System) -> Incident:
    return stack.event("opened").incident.model_copy(
        update={"id": f"inc-{system.id}", "system_id": system.id, "severity": system.severity}
    )


async def eventually(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def alt_texts(line: FakeLineServer) -> list[str]:
    return [str(body["messages"][0]["altText"]) for body in line.pushes]


async def test_fifty_incidents_in_a_storm_are_three_pushes_and_one_digest_and_so_are_their_recoveries(
    stack: Stack,
) -> None:
    """50 incidents for one team within seconds, K = 3: exactly 4 pushes — the first 3 alone, then
    one digest "47 ระบบขัดข้อง" naming 10 systems "และอีก 37 ระบบ"; their 50 recoveries, right
    after (the storm goes on: less than a window after the one that overflowed): exactly 1 more,
    one digest "50 ระบบกลับมาปกติ"."""
    systems = await add_systems(stack, STORM)
    await stack.start_notifier(stack.settings(storm_budget=3, storm_window=6.0))
    incidents = [incident_of(stack, system) for system in systems]
    started = time.monotonic()
    for inc in incidents:
        await stack.publish(stack.event("opened", inc))
    await stack.settled()
    assert time.monotonic() - started < 6.0, "the storm must fit in one window for this test to count"
    digested = await stack.db["deliveries"].count_documents({"status": "digested"})
    assert digested == STORM - 3
    await stack.line.wait_for_pushes(4, timeout=15)
    await stack.quiet()
    assert len(stack.line.pushes) == 4, alt_texts(stack.line)
    digest = alt_texts(stack.line)[3]
    assert digest.startswith("🔴 47 ระบบขัดข้อง: ระบบบริการที่ 3 (รุนแรง), ")
    assert digest.endswith("และอีก 37 ระบบ")
    message = stack.line.pushes[3]["messages"][0]
    assert "footer" not in message["contents"], "a digest has no buttons"
    assert all(f"ระบบบริการที่ {i}" in t for i, t in zip(range(3), alt_texts(stack.line), strict=False))

    [storm_window] = await stack.db["digests"].find({}).to_list()
    started = time.monotonic()
    for inc in incidents:
        await stack.publish(stack.event("resolved", inc))
    await stack.settled()
    assert time.monotonic() - started < 6.0, "the recoveries must fit in one window for this test to count"
    [first_fixed] = (
        await stack.db["deliveries"].find({"kind": "fixed"}).sort("created_at", 1).limit(1).to_list()
    )
    gap = (first_fixed["created_at"] - storm_window["window_end"]).total_seconds()
    assert gap < 6.0, f"the recoveries began {gap:.1f} s after the storm's window: not a continued storm"
    await stack.line.wait_for_pushes(5, timeout=15)
    await stack.quiet()
    assert len(stack.line.pushes) == 5, alt_texts(stack.line)
    recovered = alt_texts(stack.line)[4]
    assert recovered.startswith("✅ 50 ระบบกลับมาปกติ: ")
    assert recovered.endswith("และอีก 40 ระบบ")
    assert await stack.db["deliveries"].count_documents({"event_type": "digest"}) == 2


async def test_digest_items_recorded_before_a_stop_are_sent_as_one_digest_after_the_restart(
    stack: Stack,
) -> None:
    """Items recorded, the notifier stopped before the window ended (nothing flushed), started
    again: one digest holding them, once."""
    systems = await add_systems(stack, 6)
    settings = stack.settings(storm_budget=3, storm_window=4.0)
    first = await stack.start_notifier(settings)
    for system in systems:
        await stack.publish(stack.event("opened", incident_of(stack, system)))
    await stack.settled()
    await stack.line.wait_for_pushes(3)
    await first.stop()
    assert await stack.db["digests"].count_documents({"status": "open"}) == 1
    assert await stack.db["deliveries"].count_documents({"event_type": "digest"}) == 0

    await stack.start_notifier(settings)
    await stack.line.wait_for_pushes(4, timeout=15)
    await stack.quiet()
    assert len(stack.line.pushes) == 4
    assert alt_texts(stack.line)[3].startswith("🔴 3 ระบบขัดข้อง")
    assert await stack.db["digests"].count_documents({"status": "flushed"}) == 1


async def test_quota_costs_forecast_and_digest_only_with_one_notice(stack: Stack) -> None:
    """A group of 7 members on a 40-message month: every push records cost 7, line_state holds
    LINE's figures and the forecast; with 21 used (less than half left, the test's threshold) the
    teams go digest-only, said once to the platform team; then a major system's problem waits for
    the digest while a critical one goes at once."""
    stack.line.set_quota(40)
    majors = await add_systems(stack, 4)
    [critical] = await add_systems(stack, 1, severity="critical", prefix="core")
    await stack.start_notifier(
        stack.settings(
            storm_budget=10,
            storm_window=0.5,
            quota_refresh_interval=0.3,
            quota_refresh_after_send=0.0,
            quota_low_remaining=0.5,
            digest_only_window=1.5,
        )
    )

    async def quota_doc() -> Document:
        return await stack.db[LINE_STATE].find_one({"_id": QUOTA_ID}) or {}

    async def counted() -> bool:
        return (await quota_doc()).get("limit") == 40

    await eventually(counted, "the quota read from LINE")
    for system in majors[:3]:
        await stack.publish(stack.event("opened", incident_of(stack, system)))
    await stack.line.wait_for_pushes(3)
    await stack.quiet()
    costs = [d.get("cost") async for d in stack.db["deliveries"].find({})]
    assert costs == [7, 7, 7]

    async def digest_only() -> bool:
        doc = await quota_doc()
        return bool(doc.get("digest_only")) and doc.get("usage") == 21

    await eventually(digest_only, "digest-only once LINE counts 21 of 40 used")
    doc = await quota_doc()
    assert (doc["used"], doc["limit"], doc["remaining"]) == (21, 40, 19)
    assert doc["forecast"] == forecast_month(doc["used"], doc["updated_at"])
    group = await stack.db[LINE_STATE].find_one({"_id": f"group:{stack.group}"})
    assert group is not None
    assert group["member_count"] == 7

    # The singles' window over, the next message opens a digest-only (D) window.
    window_end: datetime = max([d["window_end"] async for d in stack.db["deliveries"].find({})])

    async def window_over() -> bool:
        return datetime.now(UTC) >= window_end

    await eventually(window_over, "the singles' storm window over")
    await stack.publish(stack.event("opened", incident_of(stack, majors[3])))
    await stack.publish(stack.event("opened", incident_of(stack, critical)))
    await stack.settled()
    await stack.line.wait_for_pushes(5, timeout=10)
    await stack.quiet()
    assert len(stack.line.pushes) == 5
    assert "ระบบบริการที่ 0" in alt_texts(stack.line)[3], "the critical system's problem at once"
    digest = stack.line.pushes[4]["messages"][0]
    assert alt_texts(stack.line)[4].startswith("🔴 1 ระบบขัดข้อง: ระบบบริการที่ 3")
    assert any("โควตา" in text for text in message_texts(digest))
    notices = await stack.db[OUTBOX].find({"kind": "line_quota_low"}).to_list()
    assert len(notices) == 1
    assert notices[0]["teams"] == ["ops"]
    assert stack.line.usage == 35
