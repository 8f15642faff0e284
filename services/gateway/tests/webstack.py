"""The web face's test stack: the gateway's whole app (webhook, API, dashboard, status page)
in-process over real NATS and FerretDB, with a token and a user for each role and an inventory
whose monitors point at internal-looking hosts (so a leak on the status page would show).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final

import httpx
import nats
from argon2 import PasswordHasher
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from pymongo.asynchronous.database import AsyncDatabase

from fao.gateway.access import USERS, Role, create_token
from fao.gateway.app import create_app
from fao.gateway.commands import StreamCommands
from fao.gateway.guard import WebContext
from fao.gateway.outcomes import CommandOutcomes
from fao.gateway.results_feed import RecentResults
from fao.gateway.screenshots import ScreenshotStore
from fao.gateway.sessions import LoginLimiter, Signer
from fao.gateway.settings import GatewaySettings
from fao.runtime.bus import ensure_bus, maintenance_bucket, state_bucket
from fao.runtime.inventory import MONITORS, PEOPLE, SYSTEMS, TEAMS, to_doc
from fao.runtime.states import StateCatalog, encode
from fao.runtime.store import Document
from fao.schemas import Incident, MaintenanceWindow, Monitor, Person, System, Team
from fao.schemas.subjects import maintenance_key, state_key

ROLES: Final[tuple[Role, ...]] = ("viewer", "operator", "admin")
PASSWORD: Final = "correct horse battery"
NOW: Final = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
INTERNAL_HOST: Final = "eservice-db01.internal.example.go.th"
INTERNAL_IP: Final = "10.20.30.40"
INCIDENT_ID: Final = "inc-00000000000000000001"
OLD_INCIDENT_ID: Final = "inc-00000000000000000002"
HIDDEN_INCIDENT_ID: Final = "inc-00000000000000000003"
CAUSE: Final = f"connect ECONNREFUSED {INTERNAL_IP}:8443 (TLS handshake to {INTERNAL_HOST})"


@cache
def password_hash() -> str:
    """``PASSWORD`` hashed once per test session (argon2 takes a good part of a second here);
    ``fao.gateway.access.create_user`` itself is tested by the CLI's tests."""
    return PasswordHasher().hash(PASSWORD)


def inventory() -> tuple[list[Team], list[System], list[Monitor], list[Person]]:
    teams = [Team(id="apps", name="ทีมพัฒนาระบบงาน"), Team(id="platform", name="ทีมระบบ", platform=True)]
    systems = [
        System(
            id="e-service", name="e-Service portal", name_th="ระบบบริการอิเล็กทรอนิกส์", team="apps",
            public=True, public_name_th="บริการยื่นคำขอออนไลน์",
        ),
        System(id="intranet", name="Intranet", name_th="อินทราเน็ต", team="platform"),
        System(id="mail", name="Mail", name_th="อีเมล", team="platform", public=True),
    ]  # fmt: skip
    monitors = [
        Monitor.model_validate(
            {"id": "e-service-home", "system": "e-service", "name": "หน้าแรก",
             "check": {"type": "http", "url": f"https://{INTERNAL_HOST}:8443/health"}}
        ),
        Monitor.model_validate(
            {"id": "e-service-db", "system": "e-service", "check": {"type": "tcp", "host": INTERNAL_IP, "port": 5432}}
        ),
        Monitor.model_validate(
            {"id": "intranet-home", "system": "intranet", "check": {"type": "http", "url": "http://intranet.local/"}}
        ),
        Monitor.model_validate(
            {"id": "mail-smtp", "system": "mail", "check": {"type": "tcp", "host": "10.9.8.7", "port": 25}}
        ),
    ]  # fmt: skip
    people = [
        Person(id="somchai", name="สมชาย", teams=["apps"], line_user_id="U" + "1" * 32, email="somchai@example.go.th",
               phone="+66 2 123 4567"),
    ]  # fmt: skip
    return teams, systems, monitors, people


def incident(incident_id: str, **changes: Any) -> Incident:
    return Incident.model_validate(
        {
            "id": incident_id, "system_id": "e-service", "monitor_ids": ["e-service-home", "e-service-db"],
            "severity": "critical", "status": "open", "title": f"หน้าแรก: {CAUSE}", "cause": CAUSE,
            "started_at": NOW - timedelta(minutes=30), "alerted": True, **changes,
        }
    )  # fmt: skip


async def seed(db: AsyncDatabase[Document]) -> None:
    teams, systems, monitors, people = inventory()
    for collection, models in ((TEAMS, teams), (SYSTEMS, systems), (MONITORS, monitors), (PEOPLE, people)):
        for model in models:
            await db[collection].replace_one({"_id": model.id}, to_doc(model, model.id), upsert=True)
    incidents = [
        incident(INCIDENT_ID),
        incident(
            OLD_INCIDENT_ID, status="resolved", started_at=NOW - timedelta(days=3),
            resolved_at=NOW - timedelta(days=3) + timedelta(hours=2), resolved_by="somchai",
        ),
        incident(HIDDEN_INCIDENT_ID, system_id="intranet", monitor_ids=["intranet-home"]),
    ]  # fmt: skip
    for item in incidents:
        await db["incidents"].insert_one({"_id": item.id, **item.model_dump(mode="python")})
    await db["incident_timeline"].insert_one(
        {"_id": "ev-1", "incident_id": INCIDENT_ID, "parent_incident_id": None, "system_id": "e-service",
         "at": NOW - timedelta(minutes=30), "type": "opened", "actor": "fao", "text": ""}
    )  # fmt: skip
    await db["deliveries"].insert_one(
        {"_id": "ev-1:line:C" + "a" * 32, "incident_id": INCIDENT_ID, "channel": "line", "target": "C" + "a" * 32,
         "status": "outbox", "attempts": 1, "created_at": NOW - timedelta(minutes=29), "kind": "problem"}
    )  # fmt: skip


@dataclass
class WebStack:
    app: FastAPI
    db: AsyncDatabase[Document]
    ctx: WebContext
    tokens: dict[str, str]
    client: httpx.AsyncClient
    nats_url: str
    js: JetStreamContext
    nc: NatsClient

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def sign_in(
        self, client: httpx.AsyncClient, username: str, password: str = PASSWORD
    ) -> httpx.Response:
        page = await client.get("/login")
        return await client.post(
            "/login",
            data={"username": username, "password": password, "csrf": csrf_of(page.text), "next": "/"},
        )

    async def audit(self) -> list[Document]:
        return await self.db["audit"].find({}).sort("at", 1).to_list()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has a form with a CSRF token"
    return match.group(1)


def web_settings(**changes: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "web_cookie_secure": False, "web_command_wait": 1.0, "login_limit": 3, "login_window": 600.0,
        "web_embedded": True, **changes,
    }  # fmt: skip
    return GatewaySettings(**values)


@asynccontextmanager
async def web_stack(
    nats_url: str,
    db: AsyncDatabase[Document],
    settings: GatewaySettings | None = None,
    *,
    seeded: bool = True,
) -> AsyncIterator[WebStack]:
    settings = settings or web_settings()
    if seeded:
        await seed(db)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_bus(js)
    states = await state_bucket(js)
    await states.put(
        state_key("e-service-home"),
        encode({
            "_id": "e-service-home", "schema_version": 2, "monitor_id": "e-service-home", "system_id": "e-service",
            "status": "down", "cause": CAUSE,
            "zones": {"default": {"status": "down", "cause": CAUSE, "last_at": NOW,
                                  "window": [{"ok": False, "at": NOW, "detail": CAUSE}]}},
        }),
    )  # fmt: skip
    followed = StateCatalog(js)
    await followed.start()
    outcomes = CommandOutcomes(db, StreamCommands(js))
    await outcomes.start(nc)
    results = RecentResults()
    await results.start(nc)

    async def publish(window: MaintenanceWindow) -> None:
        kv = await maintenance_bucket(js)
        await kv.put(maintenance_key(window.id), window.model_dump_json().encode())

    ctx = WebContext(
        db=db, settings=settings, signer=Signer(b"test-signing-secret"),
        limiter=LoginLimiter(db, settings.login_limit, timedelta(seconds=settings.login_window)),
        outcomes=outcomes, results=results, publish_maintenance=publish, states=followed.states,
        read_screenshot=ScreenshotStore(js).read,
    )  # fmt: skip
    tokens: dict[str, str] = {}
    for role in ROLES:
        tokens[role] = (
            await create_token(db, name=f"{role} token", owner=f"{role}-bot", role=role, now=NOW)
        ).token
        await db[USERS].insert_one(
            {"_id": role, "password": password_hash(), "role": role, "epoch": secrets.token_hex(8),
             "created_at": NOW, "updated_at": NOW}
        )  # fmt: skip
    app = create_app(lambda: None, None, 64 * 1024, lambda: ctx)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield WebStack(app, db, ctx, tokens, client, nats_url, js, nc)
    finally:
        await outcomes.stop()
        await results.stop()
        await followed.stop()
        await nc.close()
