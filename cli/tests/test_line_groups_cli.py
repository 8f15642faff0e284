"""``fao line groups``: the groups the bot is in (for the teams' line_groups), and a warning for each
team whose configured group the bot left or never joined; MongoDB down → one line, exit 1."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner, Result

from fao.cli.main import app
from fao.runtime.inventory import TEAMS, to_doc
from fao.runtime.launch import free_port
from fao.runtime.store import Document
from fao.schemas import Team

IN = "C" + "1" * 32
LEFT = "C" + "2" * 32
NEVER = "C" + "3" * 32
UNCONFIGURED = "R" + "4" * 32
JOINED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


@pytest.fixture
def env(mongo_url: str, mongo_db_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
    monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)


async def invoke(args: list[str]) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, args)


def _group(chat: str, *, in_group: bool, name: str | None = None, members: int | None = None) -> Document:
    return {
        "_id": chat,
        "kind": "group" if chat.startswith("C") else "room",
        "in_group": in_group,
        "name": name,
        "member_count": members,
        "joined_at": JOINED,
        "left_at": None if in_group else datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        "membership_at": JOINED,
    }


@pytest.mark.usefixtures("env")
async def test_groups_are_listed_with_names_and_left_or_missing_groups_are_warnings(
    mongo_db: AsyncDatabase[Document],
) -> None:
    teams = [
        Team(id="apps", name="ทีมพัฒนาระบบงาน", line_groups=[IN]),
        Team(id="noc", name="NOC", line_groups=[LEFT, NEVER, "U" + "5" * 32]),
    ]
    for team in teams:
        await mongo_db[TEAMS].insert_one(to_doc(team, team.id))
    await mongo_db["line_groups"].insert_many(
        [
            _group(IN, in_group=True, name="แจ้งเตือนทีมพัฒนา", members=7),
            _group(LEFT, in_group=False, name="NOC เก่า"),
            _group(UNCONFIGURED, in_group=True),
        ]
    )
    result = await invoke(["line", "groups"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(IN)
    assert '"แจ้งเตือนทีมพัฒนา"' in lines[0]
    assert "7 members" in lines[0]
    assert "team: apps" in lines[0]
    assert lines[1].startswith(UNCONFIGURED)
    assert "(name unknown)" in lines[1]
    assert "no team" in lines[1]
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, "a person's U… target is not a group"
    assert LEFT in warnings[0]
    assert "left" in warnings[0]
    assert "team noc (NOC)" in warnings[0]
    assert NEVER in warnings[1]
    assert "never joined" in warnings[1]

    everything = await invoke(["line", "groups", "--all"])
    assert len(everything.stdout.splitlines()) == 3
    assert any(line.startswith(LEFT) and "LEFT" in line for line in everything.stdout.splitlines())


@pytest.mark.usefixtures("env", "mongo_db")
async def test_no_group_recorded_says_so() -> None:
    result = await invoke(["line", "groups"])
    assert result.exit_code == 0
    assert result.stdout.startswith("the bot is in no LINE group yet")
    assert result.stderr == ""


async def test_an_unreachable_database_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("FAO_MONGO_URL", f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=300")
    result = await invoke(["line", "groups"])
    assert result.exit_code == 1
    assert "cannot reach MongoDB" in result.stderr
    assert "Traceback" not in result.output
