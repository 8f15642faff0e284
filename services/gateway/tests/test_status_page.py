"""The public status page shows public systems in plain words and leaks nothing internal: no
monitor's host, URL, address or id, no incident title, cause or error detail, no team, no
system that is not public."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from services.gateway.tests.webstack import (
    CAUSE,
    INTERNAL_HOST,
    INTERNAL_IP,
    NOW,
    WebStack,
    inventory,
    web_stack,
)

from fao.gateway.status_page import bar_class
from fao.gateway.views import daily_availability
from fao.runtime.store import Document
from fao.schemas import Incident


@pytest.fixture
async def web(nats_url: str, mongo_db: AsyncDatabase[Document]) -> AsyncIterator[WebStack]:
    async with web_stack(nats_url, mongo_db) as stack:
        yield stack


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def internal_words() -> set[str]:
    """Everything about the monitors a citizen must never see: hosts, URLs, addresses, ids."""
    teams, systems, monitors, _ = inventory()
    words: set[str] = {CAUSE, INTERNAL_HOST, INTERNAL_IP, "ECONNREFUSED"}
    for monitor in monitors:
        words.add(monitor.id)
        check = monitor.check.model_dump(mode="json")
        for key in ("url", "host"):
            if isinstance(check.get(key), str):
                words.add(check[key])
                if key == "url":
                    words.add(urlsplit(check[key]).hostname or "")
        for text in _strings(check):
            try:
                words.add(str(ipaddress.ip_address(text)))
            except ValueError:
                continue
    words |= {team.name for team in teams} | {team.id for team in teams}
    words |= {s.name for s in systems if not s.public} | {s.name_th or "" for s in systems if not s.public}
    return {w for w in words if w}


async def test_the_status_page_leaks_nothing_internal(web: WebStack) -> None:
    await web.db["incidents"].update_one(
        {"_id": "inc-00000000000000000001"}, {"$set": {"title": f"GET https://{INTERNAL_HOST}/health 503"}}
    )
    page = await web.client.get("/status")
    assert page.status_code == 200
    assert "Set-Cookie" not in page.headers, "no session needed, none given"
    text = page.text
    words = internal_words()
    assert INTERNAL_HOST in words
    assert "10.9.8.7" in words
    leaked = sorted(w for w in words if w in text)
    assert leaked == [], f"internal details on the public page: {leaked}"
    # what it does show: the public names, their state, the incidents in plain Thai
    assert "บริการยื่นคำขอออนไลน์" in text
    assert "อีเมล" in text
    assert "บริการขัดข้อง เจ้าหน้าที่กำลังตรวจสอบ" in text
    assert "กลับมาให้บริการตามปกติแล้ว" in text
    assert text.count('class="bar ') == 2 * 90


async def test_the_status_page_needs_no_sign_in_and_speaks_english_on_request(web: WebStack) -> None:
    web.client.cookies.set("fao_lang", "en")
    page = await web.client.get("/status")
    assert page.status_code == 200
    assert "Service status" in page.text
    assert "Service disruption; staff are investigating" in page.text


def test_availability_per_day_counts_outages_but_not_maintenance() -> None:
    day = datetime(2026, 11, 1, tzinfo=UTC)
    now = day + timedelta(days=2, hours=12)

    def outage(start: datetime, end: datetime | None, **extra: Any) -> Incident:
        return Incident.model_validate(
            {"id": f"i-{start:%d%H}", "system_id": "s", "status": "resolved" if end else "open", "title": "x",
             "started_at": start, "resolved_at": end, **extra}
        )  # fmt: skip

    incidents = [
        outage(day + timedelta(hours=6), day + timedelta(hours=12)),  # a quarter of day 1
        outage(
            day + timedelta(days=1), day + timedelta(days=1, hours=12),
            maintenance=[{"start": day + timedelta(days=1), "end": day + timedelta(days=1, hours=6)}],
        ),  # half of day 2, half of that in maintenance
        outage(day + timedelta(days=2, hours=6), None),  # today, still open: 6 of 12 hours so far
        outage(day, day + timedelta(days=3), kind="zone"),  # not an outage for the public
    ]  # fmt: skip
    days = daily_availability(incidents, 3, now, day + timedelta(days=2))
    assert days == [pytest.approx(0.75), pytest.approx(0.75), pytest.approx(0.5)]
    assert [bar_class(d) for d in (1.0, 0.995, 0.5, None)] == ["ok", "minor", "major", "none"]


async def test_a_public_system_down_behind_its_parent_is_an_outage_for_the_public(web: WebStack) -> None:
    """Everything behind a failed core switch is suppressed under the switch's incident (one alert,
    to the switch's team), yet citizens could not use the public systems behind it: the page shows
    their outage, in its bars and recent incidents, as the monthly report counts it; the parent, not
    public, stays off the page, and an incident inside a maintenance window is still no outage."""
    day_ago = NOW - timedelta(days=1)
    parent = Incident.model_validate(
        {"id": "inc-00000000000000000010", "system_id": "intranet", "status": "resolved", "title": "core",
         "started_at": day_ago, "resolved_at": day_ago + timedelta(hours=2), "alerted": True,
         "dependants": ["mail"]}
    )  # fmt: skip
    child = Incident.model_validate(
        {"id": "inc-00000000000000000011", "system_id": "mail", "status": "resolved", "title": "mail",
         "started_at": day_ago, "resolved_at": day_ago + timedelta(hours=2), "muted": "dependency",
         "parent_incident_id": parent.id}
    )  # fmt: skip
    planned = Incident.model_validate(
        {"id": "inc-00000000000000000012", "system_id": "mail", "status": "resolved", "title": "mail",
         "started_at": NOW - timedelta(days=5), "resolved_at": NOW - timedelta(days=5) + timedelta(hours=6),
         "muted": "maintenance",
         "maintenance": [{"start": NOW - timedelta(days=5), "end": NOW - timedelta(days=5) + timedelta(hours=6)}]}
    )  # fmt: skip
    for item in (parent, child, planned):
        await web.db["incidents"].insert_one({"_id": item.id, **item.model_dump(mode="python")})
    page = await web.client.get("/status")
    assert page.status_code == 200
    mail_row = page.text.split("<b>อีเมล</b>", 1)[1].split('<div class="public-system">', 1)[0]
    bars = re.findall(r'class="bar (\w+)"', mail_row)
    assert len(bars) == 90
    assert bars.count("major") == 1, "the day the mail was down behind the core switch"
    incidents = page.text.split('<ul class="incidents">', 1)[1]
    assert incidents.count("<b>อีเมล</b>") == 2, "its outage and the maintenance, both in plain Thai"
    assert "อินทราเน็ต" not in page.text


async def test_with_no_public_system_the_page_does_not_claim_all_is_well(
    nats_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    """examples/config has no `public: true` system: the headline said "ทุกบริการทำงานปกติ" (all
    services normal) over "no service publishes its status yet"."""
    async with web_stack(nats_url, mongo_db, seeded=False) as stack:
        page = (await stack.client.get("/status")).text
    headline = re.search(r"<h1>(.*?)</h1>", page)
    assert headline is not None
    assert headline.group(1) == "ยังไม่มีบริการที่เปิดเผยสถานะ"
    assert "ทุกบริการทำงานปกติ" not in page
