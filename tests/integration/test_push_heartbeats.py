"""Push heartbeats end to end: the gateway's ``POST /push/<token>`` (fao.gateway.push, served in
process over ASGI) publishes heartbeats to real NATS; the correlator and notifier run as processes
on real NATS and FerretDB with the fake LINE API. A missed heartbeat is one "down" push; the late
heartbeat that follows is one "resolved" push."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase
from tests.integration.harness import eventually
from tests.integration.scenario import group, scenario

from fao.gateway.push import PushHeartbeats, push_router
from fao.runtime.store import Document
from fao.schemas import CheckResult, Monitor
from fao.schemas import subjects as s
from fao.schemas.checks import new_push_token

OPS = group(7)
TOKEN, DIGEST = new_push_token()
INVENTORY = f"""
teams:
  - {{id: ops, name: Ops, line_groups: ["{OPS}"]}}
systems:
  - {{id: backup, name: Backup, name_th: ระบบสำรองข้อมูล, team: ops}}
monitors:
  - id: backup-push
    system: backup
    check: {{type: push, token_sha256: "{DIGEST}", grace: 1s}}
    interval: 2s
    timeout: 1s
    confirm: {{failures: 1, of: 1}}
    quiet_period: 1s
"""


async def test_a_missed_heartbeat_is_down_and_a_late_one_recovers(
    tmp_path: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    async with scenario(tmp_path, nats_url, mongo_url, mongo_db, INVENTORY) as sc:
        docs = await sc.db["monitors"].find({}).to_list()
        monitors = [Monitor.model_validate({k: v for k, v in doc.items() if k != "_id"}) for doc in docs]

        async def publish(result: CheckResult) -> None:
            await sc.js.publish(
                s.result_subject(result.monitor_id),
                result.model_dump_json().encode(),
                headers={"Nats-Msg-Id": result.msg_id},
            )

        app = FastAPI()
        app.include_router(push_router(PushHeartbeats(lambda: monitors, publish)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as gateway:
            assert (await gateway.post(f"/push/{TOKEN}")).json() == {"monitor": "backup-push"}
            assert (await gateway.post("/push/not-a-known-token-at-all")).status_code == 404

            [down] = await sc.wait_pushes(1, 30)
            assert down["to"] == OPS
            assert "ระบบสำรองข้อมูล" in sc.texts(down)
            assert "no heartbeat for 3s (expected every 2s + 1s grace)" in sc.texts(down)

            assert (await gateway.post(f"/push/{TOKEN}")).status_code == 200
            pushes = await sc.wait_pushes(2, 30)
        assert "กลับมาใช้งานได้ตามปกติ" in sc.texts(pushes[1])

        async def resolved() -> bool:
            return bool(await sc.incidents({"status": "resolved", "system_id": "backup"}))

        await eventually(resolved, 10, "the incident resolved")
