"""The first end-to-end path: a failing check → one incident → one LINE message → one report line.

Everything is real except LINE: nats-server, FerretDB, the four services as processes, an HTTP
target on 127.0.0.1, and the fake LINE API with the real line-bot-sdk talking to it.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.integration.harness import GROUP, OTHER_GROUP, SYSTEM_TH, Fao, eventually, wait_pushes

from fao.reporter.monthly import write_report
from fao.runtime.thai import Month
from fao.testing.fake_line import message_texts


async def incidents(fao: Fao) -> list[dict[str, Any]]:
    return await fao.db["incidents"].find({}).to_list()


async def monitor_status(fao: Fao) -> str | None:
    doc = await fao.monitor_state("e-service-home")
    return None if doc is None else str(doc["status"])


async def wait_up(fao: Fao) -> None:
    async def is_up() -> bool:
        return await monitor_status(fao) == "up"

    await eventually(is_up, 20, "monitor up", fao)


async def test_outage_gives_one_alert_one_resolution_and_a_report_line(
    fao: Fao, tmp_path: Path, mongo_url: str
) -> None:
    await wait_up(fao)
    fao.target.down = True
    went_down = time.monotonic()
    pushes = await wait_pushes(fao, 1, 20)
    assert pushes[0]["to"] == GROUP
    assert any(SYSTEM_TH in text for text in fao.line.texts(GROUP)), fao.line.texts(GROUP)
    await asyncio.sleep(3)  # the outage goes on: more failing results, still one alert
    assert len(fao.line.pushes) == 1

    fao.target.down = False
    came_up = time.monotonic()
    pushes = await wait_pushes(fao, 2, 20)
    assert [p["to"] for p in pushes] == [GROUP, GROUP]
    resolved_texts = [t for m in pushes[1]["messages"] for t in message_texts(m)]
    assert any(SYSTEM_TH in t for t in resolved_texts)
    assert not fao.line.pushes_to(OTHER_GROUP), "the other team's group gets nothing"

    docs = await incidents(fao)
    assert len(docs) == 1
    incident = docs[0]
    assert incident["status"] == "resolved"
    measured = (incident["resolved_at"] - incident["started_at"]).total_seconds()
    assert abs(measured - (came_up - went_down)) < 2.5, (measured, came_up - went_down)

    async def fact_resolved() -> bool:
        doc = await fao.db["report_facts"].find_one({"_id": incident["_id"]})
        return doc is not None and doc["status"] == "resolved"

    await eventually(fact_resolved, 10, "reporter read model has the resolved incident", fao)
    month = Month.containing(datetime.now(UTC))
    out = await write_report(mongo_url, fao.db.name, str(month), tmp_path / "reports", datetime.now(UTC))
    report = json.loads(next(p for p in out if p.suffix == ".json").read_text())
    assert len(report["incidents"]) == 1
    line = report["incidents"][0]
    assert line["incident_id"] == incident["_id"]
    assert abs(line["duration_seconds"] - measured) <= 1
    row = next(r for r in report["systems"] if r["system_id"] == "e-service")
    assert row["incident_count"] == 1
    assert abs(row["downtime_seconds"] - measured) <= 1
    html = next(p for p in out if p.suffix == ".html").read_text()
    assert SYSTEM_TH in html
    assert str(month.be_year) in html


async def test_crashes_mid_outage_and_a_line_500_give_no_duplicates(fao: Fao) -> None:
    await wait_up(fao)
    fao.line.fail_next(500, count=1)
    fao.target.down = True

    async def opened() -> bool:
        return len(await incidents(fao)) == 1

    await eventually(opened, 20, "incident opened", fao)
    # Crash both right after the incident is written: the notifier may or may not have sent yet.
    fao.services["correlator"].kill()
    fao.services["notifier"].kill()
    await asyncio.sleep(1.5)  # failing results pile up while they are down
    await asyncio.to_thread(fao.services["correlator"].start)
    await asyncio.to_thread(fao.services["notifier"].start)
    await wait_pushes(fao, 1, 20)
    await asyncio.sleep(3)
    assert len(fao.line.pushes) == 1, fao.line.texts()
    assert len(await incidents(fao)) == 1

    fao.target.down = False
    await wait_pushes(fao, 2, 20)
    await asyncio.sleep(2)
    assert len(fao.line.pushes) == 2
    docs = await incidents(fao)
    assert len(docs) == 1
    assert docs[0]["status"] == "resolved"

    push_requests = [r for r in fao.line.requests if r.path == "/v2/bot/message/push"]
    assert push_requests[0].status == 500, "the first attempt met the injected 500"
    opened_key = push_requests[0].headers["x-line-retry-key"]
    accepted = [r for r in push_requests if r.status == 200]
    assert accepted[0].headers["x-line-retry-key"] == opened_key, "the retry reused the same key"
    assert accepted[1].headers["x-line-retry-key"] != opened_key
