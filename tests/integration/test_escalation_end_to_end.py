"""Escalation and the Official Account follow-up end to end: real nats-server and FerretDB, the
correlator and the notifier as processes, the fake LINE API through the real line-bot-sdk. The
incidents are opened, acknowledged and resolved by commands, as the CLI and the gateway send them,
so the notifier reads the correlator's own ``incidents`` records.

"Nothing more was sent" is asserted once the notifier's escalation loop has finished checks after
the moment a later step would have fired (its ``/metrics`` gauge), never after a fixed sleep.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually
from tests.integration.scenario import Scenario, scenario

from fao.runtime.store import Document
from fao.schemas import Command, CommandAction

GROUP = "C" + "a1" * 16
LEAD = "U" + "1" * 32
DIRECTOR = "U" + "d" * 32
CITIZEN = "U" + "4" * 32

INVENTORY = f"""
teams:
  - id: apps
    name: ทีมพัฒนาระบบงาน
    line_groups: ["{GROUP}"]
    escalation:
      steps:
        - {{after: 2s, people: [somchai]}}
        - {{after: 8s, people: [director]}}
people:
  - id: somchai
    name: สมชาย ใจดี
    teams: [apps]
    line_user_id: "{LEAD}"
  - id: director
    name: ผู้อำนวยการ
    line_user_id: "{DIRECTOR}"
systems:
  - id: e-service
    name: e-Service portal
    name_th: ระบบบริการอิเล็กทรอนิกส์
    team: apps
    severity: critical
"""


def command(action: CommandAction, **fields: str) -> Command:
    return Command(
        command_id=uuid.uuid4(), action=action, actor="noc", source="cli", at=datetime.now(UTC), **fields
    )


async def last_escalation_check(sc: Scenario) -> float:
    """``fao_notifier_escalation_last_check_timestamp_seconds`` from the notifier's /metrics."""
    port = sc.services["notifier"].port
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
    for line in text.splitlines():
        if line.startswith("fao_notifier_escalation_last_check_timestamp_seconds "):
            return float(line.split()[1])
    return 0.0


async def pushes_to(sc: Scenario, to: str, n: int, within: float) -> list[dict[str, Any]]:
    """The accepted pushes to ``to`` once there are ``n``."""

    async def enough() -> bool:
        return len(sc.line.pushes_to(to)) >= n

    await eventually(enough, within, f"{n} push(es) to {to}")
    return sc.line.pushes_to(to)


async def test_unacknowledged_incident_escalates_until_acknowledged_and_reporters_hear_of_the_fix(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """A critical incident nobody acknowledges: the lead is pushed an escalation at 2 s (the
    correlator's record says it is still open); acknowledged from the CLI, the director's step at
    8 s never comes; resolved, the citizen who reported it gets one push with the reference."""
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, INVENTORY) as sc:
        await sc.command(command("open_manual", system_id="e-service", text="ระบบล่ม"))

        async def opened() -> bool:
            return await sc.db["escalations"].find_one({"status": "active"}) is not None

        await eventually(opened, 20, "the escalation timer armed")
        timer = await sc.db["escalations"].find_one({"status": "active"})
        assert timer is not None
        incident_id = timer["_id"]
        [escalation] = await pushes_to(sc, LEAD, 1, within=20)
        assert "ยังไม่มีผู้รับทราบ" in escalation["messages"][0]["altText"]
        assert "ระบบบริการอิเล็กทรอนิกส์" in escalation["messages"][0]["altText"]

        await sc.command(command("ack", incident_id=incident_id))

        async def cancelled() -> bool:
            doc = await sc.db["escalations"].find_one({"_id": incident_id})
            return doc is not None and doc["status"] == "cancelled"

        await eventually(cancelled, 20, "the escalation cancelled by the acknowledgement")
        started: datetime = timer["started"]
        checked_after = max(started.timestamp() + 8, datetime.now(UTC).timestamp()) + 2

        async def checked_past_the_directors_step() -> bool:
            return await last_escalation_check(sc) >= checked_after

        await eventually(checked_past_the_directors_step, 30, "escalation checks after the director's step")
        await sc.settle()
        assert sc.line.pushes_to(DIRECTOR) == []
        assert len(sc.line.pushes_to(LEAD)) == 1

        await sc.db["oa_reports"].insert_one(
            {
                "_id": "FAO-7Q2K9M4X",
                "reference": "FAO-7Q2K9M4X",
                "incident_id": incident_id,
                "user_id": CITIZEN,
                "created_at": datetime.now(UTC),
            }
        )
        await sc.command(command("resolve", incident_id=incident_id))
        [told] = await pushes_to(sc, CITIZEN, 1, within=20)
        await sc.settle()
        text = sc.texts(told)
        assert "FAO-7Q2K9M4X" in text
        assert "ได้รับการแก้ไขแล้ว" in text
        assert "ระบบบริการอิเล็กทรอนิกส์" not in text
        assert len(sc.line.pushes_to(CITIZEN)) == 1
        assert len(sc.line.pushes_to(LEAD)) == 1
