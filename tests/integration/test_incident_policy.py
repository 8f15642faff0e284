"""One LINE message per real problem, end to end: dependencies, maintenance, zones, commands.

The test publishes check results itself (the order of checks is part of each scenario); the
correlator and the notifier run as processes on real NATS and FerretDB, LINE is the fake server.
"Still exactly N pushes" is asserted only after every published result and event was handled.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from nats.js.api import KeyValueConfig
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually
from tests.integration.scenario import Scenario, group, scenario

from fao.runtime.store import Document
from fao.schemas import Command, MaintenanceWindow
from fao.schemas import subjects as s
from fao.testing.backlog import correlator_drained

NOC, APPS, PLATFORM = group(1), group(2), group(3)
CHILDREN = int(os.environ.get("FAO_TEST_CHILDREN", "300"))

MONITOR_DEFAULTS = "interval: 2s, timeout: 1s, recheck_interval: 500ms, quiet_period: 3s"


def tree_inventory(children: int) -> str:
    lines = [
        "teams:",
        f'  - {{id: noc, name: NOC, line_groups: ["{NOC}"]}}',
        f'  - {{id: apps, name: Apps, line_groups: ["{APPS}"]}}',
        "systems:",
        "  - {id: core, name: Core switch, name_th: สวิตช์หลัก, team: noc, severity: critical}",
    ]
    lines += [
        f"  - {{id: app{i:03d}, name: App {i}, team: apps, depends_on: [core]}}" for i in range(children)
    ]
    lines.append("monitors:")
    lines.append(
        f"  - {{id: core-ping, system: core, check: {{type: tcp, host: 127.0.0.1, port: 9}}, {MONITOR_DEFAULTS}}}"
    )
    lines += [
        f"  - {{id: app{i:03d}-web, system: app{i:03d}, check: {{type: tcp, host: 127.0.0.1, port: 9}}, {MONITOR_DEFAULTS}}}"
        for i in range(children)
    ]
    return "\n".join(lines) + "\n"


def children_ids(n: int = CHILDREN) -> list[str]:
    return [f"app{i:03d}-web" for i in range(n)]


@pytest.mark.timeout(300)
async def test_parent_and_300_dependants_give_one_push_each_way_and_a_lone_survivor_its_own(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, tree_inventory(CHILDREN)) as sc:
        everything = dict.fromkeys(["core-ping", *children_ids()], True)
        await sc.round(everything)
        await sc.settle()

        # The dependants notice first (their checks run earlier in the round), twice: confirmed.
        for _ in range(2):
            await sc.round(dict.fromkeys(children_ids(), False))
        await sc.round({"core-ping": False})
        await sc.round({"core-ping": False})
        [opened] = await sc.wait_pushes(1, 60)
        assert opened["to"] == NOC
        assert str(CHILDREN) in sc.texts(opened), sc.texts(opened)
        # The outage goes on for a few more rounds; nothing more is sent.
        for _ in range(3):
            await sc.round(dict.fromkeys(["core-ping", *children_ids()], False))
        await sc.settle()
        assert len(sc.line.pushes) == 1, sc.line.texts()

        [parent] = await sc.incidents({"system_id": "core"})
        assert sorted(parent["dependants"]) == [f"app{i:03d}" for i in range(CHILDREN)]
        timeline = await sc.db["incident_timeline"].find({"parent_incident_id": parent["_id"]}).to_list()
        assert sorted(e["system_id"] for e in timeline) == [f"app{i:03d}" for i in range(CHILDREN)]
        assert {e["type"] for e in timeline} == {"suppressed"}

        # Recovery: everything but one dependant comes back.
        survivor = f"app{CHILDREN - 1:03d}-web"
        recovered = {m: m != survivor for m in ["core-ping", *children_ids()]}
        pushes: list[dict[str, object]] = []
        for _ in range(30):
            await sc.round(recovered)
            if len(sc.line.pushes) >= 3:
                break
            await asyncio.sleep(1)
        pushes = await sc.wait_pushes(3, 30)
        assert [p["to"] for p in pushes] == [NOC, NOC, APPS], sc.line.texts()
        assert f"App {CHILDREN - 1}" in sc.texts(pushes[2]), sc.texts(pushes[2])
        await sc.settle()
        assert len(sc.line.pushes) == 3
        children = await sc.incidents({"parent_incident_id": parent["_id"]})
        assert sum(1 for c in children if c["status"] == "resolved") == CHILDREN - 1
        [lone] = [c for c in children if c["status"] != "resolved"]
        assert lone["system_id"] == f"app{CHILDREN - 1:03d}"
        assert lone["alerted"] is True


FLAPPING = f"""
teams:
  - {{id: apps, name: Apps, line_groups: ["{APPS}"]}}
systems:
  - {{id: web, name: Web portal, name_th: เว็บท่า, team: apps}}
monitors:
  - id: web-home
    system: web
    check: {{type: http, url: "http://127.0.0.1:{{port}}/", expected_status: [200]}}
    interval: 2s
    timeout: 1s
    recheck_interval: 500ms
"""


@pytest.mark.timeout(420)
async def test_a_flapping_site_gives_at_most_one_unstable_and_one_stable_message(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """A real prober checks a real target that fails 3 s of every 10 s for two minutes."""
    from tests.integration.harness import Target

    target = Target()
    await target.start()
    try:
        inventory = FLAPPING.replace("{port}", str(target.port))
        async with scenario(
            tmp_path, nats_url, mongo_url, mongo_db, inventory, services=("correlator", "notifier", "prober")
        ) as sc:
            loop = asyncio.get_running_loop()
            end = loop.time() + 120
            while loop.time() < end:
                target.down = True
                await asyncio.sleep(3)
                target.down = False
                await asyncio.sleep(7)
            assert len(sc.line.pushes) <= 1, sc.line.texts()

            async def resolved() -> bool:
                return bool(await sc.incidents({"status": "resolved"}))

            await eventually(resolved, 150, "stable again")
            await sc.settle()
            texts = sc.line.texts()
            assert len(sc.line.pushes) <= 2, texts
            assert len(sc.line.pushes) >= 1, "a site down a third of the time must alert"
            [incident] = await sc.incidents()
            assert incident["kind"] == "flapping"
    finally:
        await target.stop()


SIMPLE = f"""
teams:
  - {{id: apps, name: Apps, line_groups: ["{APPS}"]}}
  - {{id: platform, name: Platform, platform: true, line_groups: ["{PLATFORM}"]}}
systems:
  - {{id: mail, name: Mail, name_th: ระบบอีเมล, team: apps}}
  - {{id: web, name: Web, team: apps}}
monitors:
  - {{id: mail-smtp, system: mail, check: {{type: tcp, host: 127.0.0.1, port: 9}}, {MONITOR_DEFAULTS}}}
  - {{id: web-home, system: web, check: {{type: tcp, host: 127.0.0.1, port: 9}}, zones: [dc1, dr], {MONITOR_DEFAULTS}}}
"""


async def put_window(sc: Scenario, window: MaintenanceWindow) -> None:
    try:
        kv = await sc.js.key_value(s.MAINTENANCE_BUCKET)
    except Exception:
        kv = await sc.js.create_key_value(KeyValueConfig(bucket=s.MAINTENANCE_BUCKET))
    await kv.put(s.maintenance_key(window.id), window.model_dump_json().encode())


async def outage(sc: Scenario, monitor: str, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await sc.publish(monitor, False)
        await asyncio.sleep(0.5)


async def test_outage_inside_maintenance_sends_nothing_and_one_outlasting_it_alerts_at_its_end(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, SIMPLE) as sc:
        now = datetime.now(UTC)
        await put_window(
            sc,
            MaintenanceWindow(
                id="patch",
                reason="แพตช์ระบบ",
                systems=["mail"],
                start=now - timedelta(minutes=1),
                end=now + timedelta(seconds=8),
            ),
        )
        await sc.publish("mail-smtp", True)
        await asyncio.sleep(0.5)  # the correlator follows the window bucket live; give it a beat
        await outage(sc, "mail-smtp", 3)
        for _ in range(8):
            await sc.publish("mail-smtp", True)
            await asyncio.sleep(0.5)

        async def resolved() -> bool:
            return bool(await sc.incidents({"status": "resolved", "system_id": "mail"}))

        await eventually(resolved, 30, "the outage inside the window resolved")
        await sc.settle()
        # mail's team only: web-home, never reported in this test, may rightly make the platform
        # team hear "probers silent" when the test runs longer than its staleness (a loaded box)
        assert sc.line.pushes_to(APPS) == [], sc.line.texts()
        [inside] = await sc.incidents({"system_id": "mail"})
        assert inside["muted"] == "maintenance"
        assert inside["maintenance"][0]["end"] is not None, "the excluded time is recorded"

        # A second outage that starts inside the window and outlasts it: one push at its end.
        window_end = now + timedelta(seconds=8)
        await outage(sc, "mail-smtp", max(1.0, (window_end - datetime.now(UTC)).total_seconds() + 3))
        await eventually(lambda: _has(sc, APPS), 20, "the outage outlasting the window pushed")
        assert datetime.now(UTC) >= window_end
        await sc.settle()
        assert len(sc.line.pushes_to(APPS)) == 1, sc.line.texts()


async def test_one_zone_failing_is_not_an_outage_both_are_one(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, SIMPLE) as sc:
        for zone in ("dc1", "dr"):
            await sc.publish("web-home", True, zone=zone)
        for _ in range(3):
            await sc.publish("web-home", False, zone="dr")
            await sc.publish("web-home", True, zone="dc1")
            await asyncio.sleep(0.3)
        [zone_push] = await sc.wait_pushes(1, 30)
        assert zone_push["to"] == PLATFORM, "a zone problem goes to the platform team"
        await sc.settle()
        assert not sc.line.pushes_to(APPS), "no outage push to the owner"

        for _ in range(3):
            await sc.publish("web-home", False, zone="dr")
            await sc.publish("web-home", False, zone="dc1")
            await asyncio.sleep(0.3)
        await eventually(lambda: _has(sc, APPS), 30, "outage pushed once both zones fail")
        await sc.settle()
        assert len(sc.line.pushes_to(APPS)) == 1


async def _has(sc: Scenario, to: str) -> bool:
    return bool(sc.line.pushes_to(to))


def command(action: str, incident_id: str | None, **kw: object) -> Command:
    spec: dict[str, object] = {
        "command_id": uuid4(),
        "action": action,
        "actor": "somchai",
        "source": "cli",
        "at": datetime.now(UTC),
        "incident_id": incident_id,
    }
    spec.update(kw)
    return Command.model_validate(spec)


async def test_commands_twice_out_of_order_and_illegal_give_the_right_timeline(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, SIMPLE) as sc:
        rejected: list[dict[str, object]] = []

        async def on_rejected(msg: object) -> None:
            rejected.append(json.loads(msg.data))  # type: ignore[attr-defined]

        await sc.nc.subscribe(s.COMMAND_OUTCOMES_SUBJECTS, cb=on_rejected)
        await sc.publish("mail-smtp", True)
        await outage(sc, "mail-smtp", 1.5)
        await sc.wait_pushes(1, 20)
        [incident] = await sc.incidents({"system_id": "mail"})
        iid = incident["_id"]

        ack = command("ack", iid)
        note = command("note", iid, text="กำลังตรวจสอบ")
        await sc.command(ack)
        await sc.command(ack)  # the same command again: applied once
        await sc.command(note)
        await sc.command(command("ack", iid))  # a second person: already acknowledged
        await sc.command(command("resolve", "inc-does-not-exist"))
        resolve = command("resolve", iid, text="restarted the service")
        await sc.command(resolve)
        await sc.command(command("ack", iid))  # after resolve: illegal

        async def all_handled() -> bool:
            return await correlator_drained(sc.js, s.COMMANDS_STREAM) and len(rejected) == 3

        await eventually(all_handled, 30, "every command handled")
        await sc.settle()
        timeline = await sc.db["incident_timeline"].find({"incident_id": iid}).sort("at", 1).to_list()
        assert [e["type"] for e in timeline] == ["opened", "acknowledged", "noted", "resolved"]
        assert timeline[2]["text"] == "กำลังตรวจสอบ"
        assert timeline[3]["actor"] == "cli:somchai"
        reasons = sorted(str(r["reason"]) for r in rejected)
        assert any("already acknowledged" in r for r in reasons), reasons
        assert any("unknown incident" in r for r in reasons), reasons
        assert any("already resolved" in r for r in reasons), reasons
        [done] = await sc.incidents({"_id": iid})
        assert done["status"] == "resolved"
        assert done["resolved_by"] == "cli:somchai"
        # opened, acknowledged (a short update), resolved by a person
        await eventually(lambda: _count(sc, 3), 20, "three pushes")
        await sc.settle()
        assert len(sc.line.pushes) == 3, sc.line.texts()
        # The monitor is still failing: silenced, no new incident until it recovers.
        await outage(sc, "mail-smtp", 1.5)
        await sc.settle()
        assert len(await sc.incidents({"system_id": "mail"})) == 1


async def _count(sc: Scenario, n: int) -> bool:
    return len(sc.line.pushes) >= n


@pytest.mark.timeout(300)
async def test_killing_the_active_correlator_mid_storm_changes_nothing(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """A standby takes over from a SIGKILLed active correlator in the middle of a storm: the same
    incidents and pushes as an undisturbed run (one per real problem)."""
    children = 40
    async with scenario(
        tmp_path,
        nats_url,
        mongo_url,
        mongo_db,
        tree_inventory(children),
        services=("correlator", "notifier"),
    ) as sc:
        await asyncio.to_thread(sc.start, "standby", "correlator")
        everything = ["core-ping", *children_ids(children)]
        await sc.round(dict.fromkeys(everything, True))
        await sc.settle()
        await sc.round(dict.fromkeys(children_ids(children), False))
        sc.services["correlator"].kill()  # mid-storm: results are waiting, nothing handles them
        await sc.round(dict.fromkeys(children_ids(children), False))
        await sc.round({"core-ping": False})
        await sc.round({"core-ping": False})
        [opened] = await sc.wait_pushes(1, 60)
        assert opened["to"] == NOC
        for _ in range(3):
            await sc.round(dict.fromkeys(everything, False))
        await sc.settle()
        assert len(sc.line.pushes) == 1, sc.line.texts()
        for _ in range(20):
            await sc.round(dict.fromkeys(everything, True))
            if len(sc.line.pushes) >= 2:
                break
            await asyncio.sleep(1)
        await sc.wait_pushes(2, 30)
        await sc.settle()
        assert [p["to"] for p in sc.line.pushes] == [NOC, NOC]
        incidents = await sc.incidents()
        assert len(incidents) == children + 1, "one per failing system, no duplicates"
        assert all(i["status"] == "resolved" for i in incidents)
