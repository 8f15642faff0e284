"""``fao line quota``: the month's figures asked from LINE (the fake LINE API) or, without an access
token, the ones the notifier's quota watch cached in ``line_state``; each team group's member count
(the cost of a push); digest-only and ``exhausted_until`` from the notifier's state."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner, Result

from fao.cli.main import app
from fao.notifier.outbox import Outbox
from fao.notifier.quota import LINE_STATE, QUOTA_ID, LineQuotaApi, QuotaWatch, forecast_month
from fao.notifier.render import load_catalogue
from fao.runtime.inventory import TEAMS, to_doc
from fao.runtime.store import Document
from fao.runtime.thai import format_thai_datetime
from fao.schemas import Team
from fao.testing.fake_line import PUSH_PATH, FakeLineServer

TOKEN = "quota-test-token"
GROUP = "C" + "1" * 32
GONE = "C" + "2" * 32  # in the config, but the bot is not in it


@pytest.fixture
async def line() -> AsyncIterator[FakeLineServer]:
    async with FakeLineServer(access_token=TOKEN, groups={GROUP: 7}, quota=300) as server:
        yield server


@pytest.fixture
async def env(
    mongo_url: str, mongo_db_name: str, mongo_db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> AsyncDatabase[Document]:
    monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
    monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)
    monkeypatch.delenv("FAO_LINE_CHANNEL_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    team = Team(id="infra", name="ทีมโครงสร้างพื้นฐาน", line_groups=[GROUP, GONE])
    await mongo_db[TEAMS].insert_one(to_doc(team, team.id))
    return mongo_db


async def invoke(args: list[str]) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, args)


async def push(line: FakeLineServer, times: int) -> None:
    """Pushes to the 7-member group, as the notifier makes them: 7 messages each."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        for _ in range(times):
            body = {"to": GROUP, "messages": [{"type": "text", "text": "ทดสอบ"}]}
            async with session.post(line.base_url + PUSH_PATH, json=body) as answer:
                assert answer.status == 200


def forecast_in(output: str) -> int:
    match = re.search(r"forecast:\s+([\d,]+) by the end of the month", output)
    assert match is not None, output
    return int(match.group(1).replace(",", ""))


async def test_line_quota_asks_line_and_shows_costs_digest_only_and_exhausted_until(
    env: AsyncDatabase[Document], line: FakeLineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await push(line, 3)
    since = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    until = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    await env[LINE_STATE].insert_one(
        {"_id": QUOTA_ID, "digest_only": True, "digest_only_since": since, "exhausted_until": until}
    )
    monkeypatch.setenv("FAO_LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("FAO_LINE_API_BASE", line.base_url)
    before = datetime.now(UTC)
    result = await invoke(["line", "quota"])
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "source:          LINE, now" in out
    assert "limit:           300 messages" in out
    assert "used:            21" in out
    assert "remaining:       279" in out
    assert forecast_month(21, before) <= forecast_in(out) <= forecast_month(21, after)
    assert f"{GROUP}  infra: 7 members, 7 messages per push" in out
    assert f"{GONE}  infra: the bot is not in this group" in out
    assert f"digest-only:     on since {format_thai_datetime(since)}" in out
    assert f"exhausted until: {format_thai_datetime(until)}" in out


async def test_line_quota_without_a_token_shows_what_the_notifier_cached(
    env: AsyncDatabase[Document], line: FakeLineServer
) -> None:
    """The notifier's quota watch (its real code, against the fake LINE) writes line_state; the
    CLI, with no token, prints those figures and says from when."""
    await push(line, 2)
    api = LineQuotaApi(base_url=line.base_url, access_token=TOKEN, timeout=5.0)
    await api.start()
    checked = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    watch = QuotaWatch(env, api, outbox=Outbox(env), catalogue=load_catalogue("th"), clock=lambda: checked)
    try:
        await watch.refresh(checked)
    finally:
        await api.stop()
    line.clear()
    before = datetime.now(UTC)
    result = await invoke(["line", "quota"])
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"source:          the notifier's figures of {format_thai_datetime(checked)}" in out
    assert "limit:           300 messages" in out
    assert "used:            14" in out
    assert "remaining:       286" in out
    assert forecast_month(14, before) <= forecast_in(out) <= forecast_month(14, after)
    assert f"{GROUP}  infra: 7 members, 7 messages per push" in out
    assert f"{GONE}  infra: the bot is not in this group" in out
    assert "digest-only:     off" in out
    assert "exhausted until" not in out
    assert line.requests == [], "no token: LINE is not asked"


async def test_line_quota_with_nothing_known_says_so(env: AsyncDatabase[Document]) -> None:
    result = await invoke(["line", "quota"])
    assert result.exit_code == 0, result.output
    assert "no figures yet" in result.output
    assert f"{GROUP}  infra: member count not known yet" in result.output
