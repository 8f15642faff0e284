"""The gateway tests' stack: the webhook app in-process (httpx ``ASGITransport``) over real NATS
and FerretDB (``fao.testing.plugin``), the fake LINE API, and the test inventory and people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase

from fao.gateway.app import WEBHOOK_PATH
from fao.gateway.commands import StreamCommands
from fao.gateway.incidents import IncidentActions
from fao.gateway.line_api import SdkLine
from fao.gateway.rejections import RejectionWatch
from fao.gateway.replies import load_replies
from fao.gateway.reports import Reports
from fao.gateway.store import GatewayStore
from fao.gateway.webhook import WebhookHandler
from fao.runtime.inventory import PEOPLE, SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document
from fao.schemas import Command, Incident, Person, System, Team
from fao.schemas import subjects as s
from fao.testing.fake_line import FakeLineServer, sign_webhook, webhook_body

SECRET = "test-channel-secret"
TOKEN = "test-channel-token"
GROUP = "C" + "a1" * 16
PLATFORM_GROUP = "C" + "b2" * 16
MEMBER = "U" + "1" * 32  # สมชาย, team apps
PLATFORM_MEMBER = "U" + "2" * 32  # วิภา, team platform
STRANGER = "U" + "3" * 32  # in no team's people
CITIZEN = "U" + "4" * 32
SYSTEM_TH = "ระบบบริการอิเล็กทรอนิกส์"
INCIDENT = "inc-0123456789abcdef0123"
STARTED = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def incident_doc(incident_id: str = INCIDENT, **changes: Any) -> Document:
    incident = Incident.model_validate(
        {
            "id": incident_id,
            "system_id": "e-service",
            "monitor_ids": ["e-service-home"],
            "severity": "critical",
            "status": "open",
            "title": "หน้าแรก: connection refused to 10.20.30.40:443",
            "cause": "connection refused",
            "started_at": STARTED,
            "alerted": True,
            **changes,
        }
    )
    return {"_id": incident.id, **incident.model_dump(mode="python")}


async def add_inventory(db: AsyncDatabase[Document]) -> None:
    teams = [
        Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[GROUP]),
        Team(id="platform", name="ทีมระบบ", line_groups=[PLATFORM_GROUP], platform=True),
    ]
    systems = [System(id="e-service", name="e-Service", name_th=SYSTEM_TH, team="apps")]
    people = [
        Person(id="somchai", name="สมชาย", teams=["apps"], line_user_id=MEMBER),
        Person(id="wipa", name="วิภา", teams=["platform"], line_user_id=PLATFORM_MEMBER),
    ]
    for collection, models in ((TEAMS, teams), (SYSTEMS, systems), (PEOPLE, people)):
        for model in models:
            await db[collection].replace_one({"_id": model.id}, to_doc(model, model.id), upsert=True)


@dataclass
class GatewayStack:
    mongo_url: str
    db: AsyncDatabase[Document]
    js: JetStreamContext
    line: FakeLineServer
    client: httpx.AsyncClient
    handler: WebhookHandler
    reports: Reports

    async def post(self, events: list[dict[str, Any]], *, signature: str | None = None) -> httpx.Response:
        """POST a webhook as LINE does (signed with ``SECRET`` unless ``signature`` is given; ""
        sends no signature)."""
        body = webhook_body(events)
        return await self.post_raw(body, signature=signature)

    async def post_raw(self, body: bytes, *, signature: str | None = None) -> httpx.Response:
        sig = sign_webhook(body, SECRET) if signature is None else signature
        headers = {"Content-Type": "application/json"} | ({"X-Line-Signature": sig} if sig else {})
        return await self.client.post(WEBHOOK_PATH, content=body, headers=headers)

    async def commands(self) -> list[Command]:
        """Every command in ``FAO_COMMANDS`` (the stream holds only what the gateway published)."""
        info = await self.js.stream_info(s.COMMANDS_STREAM)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
            msg = await self.js.get_msg(s.COMMANDS_STREAM, seq)
            assert msg.data is not None
            out.append(Command.model_validate_json(msg.data))
        return out

    async def command_count(self) -> int:
        return int((await self.js.stream_info(s.COMMANDS_STREAM)).state.messages)

    async def events_recorded(self) -> int:
        return await self.db["line_webhook_events"].count_documents({})

    def reply_texts(self) -> list[str]:
        return [m["text"] for body in self.line.replies for m in body["messages"]]

    async def housekeeping(self, after: timedelta = timedelta(0)) -> None:
        await self.reports.housekeeping(datetime.now(UTC) + after)


def make_handler(
    db: AsyncDatabase[Document], js: JetStreamContext, line: SdkLine, watch: RejectionWatch | None = None
) -> tuple[WebhookHandler, Reports]:
    store = GatewayStore(db)
    commands = StreamCommands(js)
    replies = load_replies()
    reports = Reports(
        store, commands, line, replies,
        limit=3, window=timedelta(minutes=10), pending_timeout=timedelta(minutes=10),
    )  # fmt: skip
    return WebhookHandler(
        store, line, IncidentActions(store, commands, line, replies, watch), reports
    ), reports
