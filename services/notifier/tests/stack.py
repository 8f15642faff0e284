"""The notifier tests' stack (``conftest.stack`` makes one per test): real servers, the fake LINE
API, notifier processes started in-process with ``serve``, and waits for the consumer to settle.
An importable module, so tests annotate with ``Stack`` itself rather than a copy of its shape."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.app import build
from fao.notifier.settings import NotifierSettings
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.service import serve
from fao.runtime.store import Document
from fao.schemas import Incident, IncidentEvent, IncidentEventType, System, Team
from fao.schemas import subjects as s
from fao.testing.fake_line import FakeLineServer

TOKEN = "test-channel-token"
GROUP = "C" + "1" * 32
GROUP_2 = "C" + "2" * 32
UNKNOWN_GROUP = "C" + "f" * 32  # not a group the fake LINE server knows: pushes get 400
SYSTEM_ID = "egov-portal"
SYSTEM_NAME_TH = "พอร์ทัลบริการภาครัฐ"
STARTED_AT = datetime(2026, 10, 5, 7, 3, tzinfo=UTC)


def make_incident(incident_id: str = "inc-0123456789abcdef0123", **changes: Any) -> Incident:
    """An outage the owning team was told about (``alerted``), as the correlator publishes an
    incident that opened outside maintenance and without a failing parent."""
    fields: dict[str, Any] = {
        "id": incident_id,
        "system_id": SYSTEM_ID,
        "monitor_ids": ["egov-portal-home"],
        "severity": "critical",
        "status": "open",
        "title": "หน้าแรก: HTTP 503",
        "cause": "HTTP 503 Service Unavailable",
        "started_at": STARTED_AT,
        "zones": ["bangkok"],
        "alerted": True,
        **changes,
    }
    return Incident.model_validate(fields)


def make_event(
    event_type: IncidentEventType = "opened",
    incident: Incident | None = None,
    *,
    actor: str | None = None,
    text: str = "",
) -> IncidentEvent:
    incident = incident or make_incident()
    if event_type == "resolved" and incident.resolved_at is None:
        resolved_at = incident.started_at + timedelta(hours=1, minutes=12)
        incident = incident.model_copy(
            update={"status": "resolved", "resolved_at": resolved_at, "resolved_by": "fao:auto"}
        )
        at = resolved_at
    elif event_type == "resolved":
        at = incident.resolved_at or incident.started_at
    else:
        at = incident.started_at
    return IncidentEvent(
        event_id=uuid.uuid4(), type=event_type, at=at, incident=incident, actor=actor, text=text
    )


@dataclass
class RunningNotifier:
    """A notifier served in this event loop until ``stop``."""

    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, timeout=30)


@dataclass
class Stack:
    """Real NATS + FerretDB + fake LINE, and helpers to drive a notifier through them."""

    group: ClassVar[str] = GROUP
    group_2: ClassVar[str] = GROUP_2
    unknown_group: ClassVar[str] = UNKNOWN_GROUP
    system_id: ClassVar[str] = SYSTEM_ID
    system_name_th: ClassVar[str] = SYSTEM_NAME_TH

    nats_url: str
    mongo_url: str
    db_name: str
    db: AsyncDatabase[Document]
    line: FakeLineServer
    nc: NatsClient
    js: JetStreamContext
    running: list[RunningNotifier] = field(default_factory=list)

    def settings(self, **changes: Any) -> NotifierSettings:
        values: dict[str, Any] = {
            "nats_url": self.nats_url,
            "mongo_url": self.mongo_url,
            "mongo_db": self.db_name,
            "http_port": -1,
            "log_level": "info",
            "line_channel_access_token": TOKEN,
            "line_api_base": self.line.base_url,
            "line_backoff_base": 0.05,
            "line_backoff_max": 0.5,
            "line_timeout": 5.0,
            # The quarterly owner review is due at any time of a quarter: off unless a test is about it.
            "review_enabled": False,
            **changes,
        }
        return NotifierSettings(**values)

    async def start_notifier(self, settings: NotifierSettings | None = None) -> RunningNotifier:
        """Serve a notifier and wait until its durable consumer exists."""
        stop = asyncio.Event()
        task = asyncio.create_task(serve(build(settings or self.settings()), stop))
        running = RunningNotifier(stop, task)
        self.running.append(running)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            if task.done():
                task.result()  # raises the start-up error
                raise AssertionError("notifier stopped during start-up")
            with contextlib.suppress(NotFoundError):
                await self.js.consumer_info(s.INCIDENTS_STREAM, s.NOTIFIER_CONSUMER)
                return running
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the notifier's durable consumer did not appear within 20 s")
            await asyncio.sleep(0.02)

    async def add_inventory(
        self,
        groups: list[str],
        *,
        system_id: str = SYSTEM_ID,
        name_th: str | None = SYSTEM_NAME_TH,
        platform: bool = False,
    ) -> System:
        team = Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=groups, platform=platform)
        system = System(id=system_id, name="e-Gov Portal", name_th=name_th, team=team.id)
        await self.db[TEAMS].replace_one({"_id": team.id}, to_doc(team, team.id), upsert=True)
        await self.db[SYSTEMS].replace_one({"_id": system.id}, to_doc(system, system.id), upsert=True)
        return system

    @staticmethod
    def event(
        event_type: IncidentEventType = "opened",
        incident: Incident | None = None,
        *,
        actor: str | None = None,
        text: str = "",
    ) -> IncidentEvent:
        return make_event(event_type, incident, actor=actor, text=text)

    async def publish(self, event: IncidentEvent, msg_id: str | None = None) -> None:
        """Publish as the correlator does (``Nats-Msg-Id`` = event id unless ``msg_id`` is given)."""
        ack = await self.js.publish(
            s.incident_subject(event.type),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": msg_id or str(event.event_id)},
        )
        assert ack.duplicate is not True, "the stream dropped this publish as a duplicate"

    async def settled(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109  # a deadline, not a cancel scope
        """Wait until every published event was delivered and acknowledged."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        info = None
        while loop.time() < deadline:
            with contextlib.suppress(NotFoundError):
                info = await self.js.consumer_info(s.INCIDENTS_STREAM, s.NOTIFIER_CONSUMER)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return
            await asyncio.sleep(0.02)
        raise AssertionError(f"events not acknowledged within {timeout}s: {info}")

    async def quiet(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109  # a deadline, not a cancel scope
        """Wait until every event is acknowledged and every delivery it recorded is final."""
        await self.settled(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        left: list[Document] = []
        while loop.time() < deadline:
            left = await self.db["deliveries"].find({"status": {"$in": ["pending", "claimed"]}}).to_list()
            if not left:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"deliveries not final within {timeout}s: {left}")

    async def delivery(self, claim: str) -> Document:
        doc = await self.db["deliveries"].find_one({"_id": claim})
        assert doc is not None, f"no delivery {claim}"
        return doc

    async def wait_delivery_attempts(self, claim: str, attempts: int, timeout: float = 15.0) -> Document:  # noqa: ASYNC109
        """Wait until the delivery counts at least ``attempts`` tries."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        doc: Document | None = None
        while loop.time() < deadline:
            doc = await self.db["deliveries"].find_one({"_id": claim})
            if doc is not None and doc.get("attempts", 0) >= attempts:
                return doc
            await asyncio.sleep(0.02)
        raise AssertionError(f"delivery {claim} not tried {attempts} times within {timeout}s: {doc}")

    async def wait_delivery(self, claim: str, status: str, timeout: float = 15.0) -> Document:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        doc: Document | None = None
        while loop.time() < deadline:
            doc = await self.db["deliveries"].find_one({"_id": claim})
            if doc is not None and doc["status"] == status:
                return doc
            await asyncio.sleep(0.02)
        raise AssertionError(f"delivery {claim} did not reach {status!r} within {timeout}s: {doc}")
