"""A storm of N incidents to one team: how many LINE pushes, and how long (numbers only).

Starts nats-server and FerretDB in a temporary directory and a fake LINE API server, serves the
notifier in this process (``fao.notifier.app.build``, the real line-bot-sdk pointed at the fake),
puts N systems of one team (one LINE group of 7 members) in the inventory and publishes, as the
correlator does, one ``opened`` event per system, then one ``resolved`` event per system. For each
phase it prints, once every event is acknowledged by the notifier's consumer, every digest window
flushed and every delivery final: the pushes LINE accepted, the seconds from the first publish to
the phase's first and last push, the digest items recorded, and the messages the pushes cost.

The storm window is ``--window`` seconds (default 10; the service's default is 60) with a budget
of ``--budget`` (default 3) messages one by one per window, so each phase ends at least one window
after its first event. Bounded by ``--timeout`` (default 600 s) per phase.

    python bench/notifier_storm.py [--sizes 50,500] [--window 10] [--budget 3] [--timeout 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pymongo.asynchronous.database import AsyncDatabase

from fao.notifier.app import build
from fao.notifier.settings import NotifierSettings
from fao.runtime.bus import ensure_streams
from fao.runtime.inventory import SYSTEMS, TEAMS, to_doc
from fao.runtime.launch import start_ferretdb, start_nats
from fao.runtime.service import serve
from fao.runtime.store import Document, connect
from fao.schemas import Incident, IncidentEvent, IncidentEventType, System, Team
from fao.schemas import subjects as s
from fao.testing.fake_line import FakeLineServer

TOKEN = "bench-token"
GROUP = "C" + "b" * 32
MEMBERS = 7
POLL = 0.05


async def inventory(db: AsyncDatabase[Document], n: int) -> list[System]:
    team = Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[GROUP])
    await db[TEAMS].insert_one(to_doc(team, team.id))
    systems = [
        System(id=f"svc-{i:04d}", name=f"Service {i}", name_th=f"ระบบบริการที่ {i}", team=team.id)
        for i in range(n)
    ]
    for chunk in range(0, n, 50):
        await db[SYSTEMS].insert_many([to_doc(x, x.id) for x in systems[chunk : chunk + 50]])
    return systems


def event(event_type: IncidentEventType, system: System, at: datetime) -> IncidentEvent:
    incident = Incident.model_validate(
        {
            "id": f"inc-{system.id}",
            "system_id": system.id,
            "monitor_ids": [f"{system.id}-web"],
            "severity": system.severity,
            "status": "resolved" if event_type == "resolved" else "open",
            "title": "HTTP 503",
            "cause": "HTTP 503 Service Unavailable",
            "started_at": at,
            "resolved_at": at if event_type == "resolved" else None,
            "resolved_by": "fao:auto" if event_type == "resolved" else None,
            "zones": ["dc1"],
            "alerted": True,
        }
    )
    return IncidentEvent(event_id=uuid.uuid4(), type=event_type, at=at, incident=incident)


async def done(js: JetStreamContext, db: AsyncDatabase[Document], published: int) -> bool:
    info = await js.consumer_info(s.INCIDENTS_STREAM, s.NOTIFIER_CONSUMER)
    if info.num_pending or info.num_ack_pending or (info.delivered.stream_seq or 0) < published:
        return False
    if await db["digests"].count_documents({"status": "open"}):
        return False
    return not await db["deliveries"].count_documents({"status": {"$in": ["pending", "claimed"]}})


async def phase(
    name: str,
    event_type: IncidentEventType,
    systems: list[System],
    js: JetStreamContext,
    db: AsyncDatabase[Document],
    line: FakeLineServer,
    published: int,
    timeout: float,  # noqa: ASYNC109  # a bound on the phase, printed when missed
) -> int:
    pushes_before, usage_before = len(line.pushes), line.usage
    items_before = await db["deliveries"].count_documents({"status": "digested"})
    started = time.monotonic()
    at = datetime.now(UTC)
    for system in systems:
        e = event(event_type, system, at)
        await js.publish(
            s.incident_subject(e.type), e.model_dump_json().encode(), headers={"Nats-Msg-Id": str(e.event_id)}
        )
    published += len(systems)
    publish_s = time.monotonic() - started
    while not await done(js, db, published):
        if time.monotonic() - started > timeout:
            print(f"{name}: not done within {timeout:g} s", flush=True)
            break
        await asyncio.sleep(POLL)
    accepted = [r for r in line.requests if r.status == 200 and r.path.endswith("/push")][pushes_before:]
    first = (accepted[0].at.timestamp() - at.timestamp()) if accepted else float("nan")
    last = (accepted[-1].at.timestamp() - at.timestamp()) if accepted else float("nan")
    items = await db["deliveries"].count_documents({"status": "digested"}) - items_before
    print(
        f"{name}: {len(systems)} events published in {publish_s:.2f} s; {len(line.pushes) - pushes_before}"
        f" LINE pushes (first after {first:.2f} s, last after {last:.2f} s); {items} digest items;"
        f" {line.usage - usage_before} messages of quota used ({MEMBERS} members)",
        flush=True,
    )
    return published


async def run(sizes: list[int], window: float, budget: int, timeout: float) -> None:  # noqa: ASYNC109
    with tempfile.TemporaryDirectory(prefix="fao-bench-storm-") as tmp:
        nats_server = start_nats(Path(tmp) / "nats")
        mongo = start_ferretdb(Path(tmp) / "ferretdb")
        try:
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            client = connect(mongo.url)
            try:
                for n in sizes:
                    if n != sizes[0]:  # a fresh stream (and consumer) per storm
                        await js.delete_stream(s.INCIDENTS_STREAM)
                    await ensure_streams(js)
                    db_name = f"storm_{n}"
                    db = client[db_name]
                    systems = await inventory(db, n)
                    async with FakeLineServer(access_token=TOKEN, groups={GROUP: MEMBERS}) as line:
                        settings = NotifierSettings(
                            nats_url=nats_server.url, mongo_url=mongo.url, mongo_db=db_name, http_port=-1,
                            log_level="warning", line_channel_access_token=TOKEN, line_api_base=line.base_url,
                            storm_budget=budget, storm_window=window,
                            review_enabled=False,  # the owner review's push is no storm message
                        )  # fmt: skip
                        stop = asyncio.Event()
                        task = asyncio.create_task(serve(build(settings), stop))
                        while True:  # the notifier is up once its durable consumer exists
                            with contextlib.suppress(NotFoundError):
                                await js.consumer_info(s.INCIDENTS_STREAM, s.NOTIFIER_CONSUMER)
                                break
                            await asyncio.sleep(POLL)
                        print(f"N = {n}, storm window {window:g} s, budget {budget}", flush=True)
                        published = await phase("storm", "opened", systems, js, db, line, 0, timeout)
                        await phase("recovery", "resolved", systems, js, db, line, published, timeout)
                        stop.set()
                        await task
            finally:
                await client.close()
                await nc.close()
        finally:
            mongo.stop()
            nats_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="50,500", help="incidents per storm, comma separated")
    parser.add_argument("--window", type=float, default=10.0, help="storm window, seconds")
    parser.add_argument("--budget", type=int, default=3, help="messages one by one per window")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase at most")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    asyncio.run(run(sizes, args.window, args.budget, args.timeout))


if __name__ == "__main__":
    main()
