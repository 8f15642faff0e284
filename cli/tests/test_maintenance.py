"""``fao maintenance add|list|end`` and maintenance in ``fao apply``, against real NATS and FerretDB."""

from __future__ import annotations

import asyncio
import getpass
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner

from fao.cli.apply import apply
from fao.cli.main import app
from fao.cli.maintenance import add_window, build_window, end_window, format_line
from fao.runtime.bus import kv_keys, maintenance_bucket
from fao.runtime.inventory import MaintenanceCatalog
from fao.runtime.launch import free_port, start_nats
from fao.runtime.store import Document, connect
from fao.schemas import MaintenanceWindow
from fao.schemas.maintenance import BANGKOK
from fao.schemas.subjects import MAINTENANCE_BUCKET, maintenance_key

ADDED = re.compile(r"^added (mw-(\d{8})-[0-9a-f]{4}): ", re.MULTILINE)
INVENTORY = {
    "teams.yaml": """\
teams:
  - {id: noc, name: NOC}
  - {id: apps, name: Apps}
""",
    "systems.yaml": """\
systems:
  - {id: core-network, name: Core network, team: noc}
  - {id: e-service, name: e-Service, team: apps, depends_on: [core-network]}
""",
    "monitors.yaml": """monitors:
  - {id: e-service-db, system: e-service, check: {type: tcp, host: 127.0.0.1, port: 5432}, tags: [db],
     enabled: false}
""",
}


async def _kv_windows(nats_url: str) -> dict[str, MaintenanceWindow]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        kv = await maintenance_bucket(js)
        keys = await kv_keys(js, MAINTENANCE_BUCKET)
        return {k: MaintenanceWindow.model_validate_json((await kv.get(k)).value or b"") for k in keys}
    finally:
        await nc.close()


def kv_windows(nats_url: str) -> dict[str, MaintenanceWindow]:
    return asyncio.run(_kv_windows(nats_url))


async def _find(mongo_url: str, db_name: str, collection: str) -> list[Document]:
    client = connect(mongo_url)
    try:
        return await client[db_name][collection].find({}).to_list()
    finally:
        await client.close()


def find(mongo_url: str, db_name: str, collection: str) -> list[Document]:
    return asyncio.run(_find(mongo_url, db_name, collection))


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    folder = tmp_path / "inventory"
    folder.mkdir()
    for name, text in INVENTORY.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_add_list_end_round_trip(
    env: None, inventory: Path, nats_url: str, mongo_url: str, mongo_db_name: str
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(inventory)]).exit_code == 0
    before = datetime.now(BANGKOK)
    added = runner.invoke(
        app,
        ["maintenance", "add", "--system", "e-service", "--tag", "db", "--reason", "ย้ายฐานข้อมูล",
         "--duration", "2h"],
    )  # fmt: skip
    after = datetime.now(BANGKOK)
    assert added.exit_code == 0, added.output
    match = ADDED.search(added.output)
    assert match is not None, added.output
    window_id = match.group(1)
    assert match.group(2) in {f"{before:%Y%m%d}", f"{after:%Y%m%d}"}, "the start date, in Bangkok"

    [doc] = find(mongo_url, mongo_db_name, "maintenance")
    assert doc["_id"] == window_id
    assert doc["source"] == "cli"
    assert doc["created_by"] == getpass.getuser()
    assert doc["systems"] == ["e-service"]
    assert doc["tags"] == ["db"]
    in_kv = kv_windows(nats_url)[maintenance_key(window_id)]
    assert in_kv.reason == "ย้ายฐานข้อมูล"
    assert in_kv.end is not None
    assert in_kv.start is not None
    assert in_kv.end - in_kv.start == timedelta(hours=2)
    [audit] = [a for a in find(mongo_url, mongo_db_name, "audit") if a["action"] == "maintenance.add"]
    assert audit["actor"] == getpass.getuser()
    assert audit["window"]["id"] == window_id

    listed = runner.invoke(app, ["maintenance", "list"])
    assert listed.exit_code == 0
    [line] = listed.output.splitlines()
    assert line.startswith(f"{window_id}  กำลังปิดปรับปรุง")
    assert "ระบบ: e-service" in line
    assert "แท็ก: db" in line
    assert "ย้ายฐานข้อมูล" in line
    assert " น. – " in line, "Thai Bangkok times"

    ended = runner.invoke(app, ["maintenance", "end", window_id])
    assert ended.exit_code == 0, ended.output
    assert f"ended {window_id} at" in ended.output
    [doc] = find(mongo_url, mongo_db_name, "maintenance")
    assert doc["ended_at"] is not None
    assert doc["source"] == "cli"
    assert kv_windows(nats_url)[maintenance_key(window_id)].ended_at is not None
    actions = [a["action"] for a in find(mongo_url, mongo_db_name, "audit")]
    assert actions.count("maintenance.end") == 1

    assert runner.invoke(app, ["maintenance", "list"]).output == "no active or upcoming maintenance windows\n"
    everything = runner.invoke(app, ["maintenance", "list", "--all"]).output
    assert everything.startswith(f"{window_id}  สิ้นสุดแล้ว")
    assert "จบก่อนกำหนด" in everything

    again = runner.invoke(app, ["maintenance", "end", window_id])
    assert again.exit_code == 0
    assert f"{window_id} is already over: it was ended at" in again.output
    assert [a["action"] for a in find(mongo_url, mongo_db_name, "audit")].count("maintenance.end") == 1


def test_upcoming_window_with_given_id_is_listed_and_can_be_cancelled(
    env: None, nats_url: str, mongo_url: str, mongo_db_name: str
) -> None:
    runner = CliRunner()
    start = (datetime.now(UTC) + timedelta(days=2)).astimezone(UTC)
    start_text = f"{start:%Y-%m-%dT%H:%M}Z"
    added = runner.invoke(
        app,
        ["maintenance", "add", "--id", "core-swap", "--team", "noc", "--reason", "Swap core switch",
         "--start", start_text, "--duration", "90m"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.output.startswith("added core-swap: ")
    listed = runner.invoke(app, ["maintenance", "list"]).output
    assert listed.startswith("core-swap  รอเริ่ม")
    assert "ทีม: noc" in listed

    cancelled = runner.invoke(app, ["maintenance", "end", "core-swap"])
    assert cancelled.exit_code == 0
    assert "cancelled core-swap: it had not started" in cancelled.output
    assert runner.invoke(app, ["maintenance", "list"]).output == "no active or upcoming maintenance windows\n"
    window = kv_windows(nats_url)[maintenance_key("core-swap")]
    assert window.ended_at is not None
    assert window.start is not None
    assert window.ended_at < window.start


def test_list_lines_of_weekly_and_one_off_windows() -> None:
    weekly = MaintenanceWindow.model_validate(
        {"id": "mail-patch", "reason": "แพตช์", "systems": ["mail"],
         "weekly": {"days": ["sun", "wed"], "at": "02:00", "duration": "2h"}}
    )  # fmt: skip
    during = format_line(weekly, "config", datetime(2026, 12, 6, 2, 30, tzinfo=BANGKOK))
    assert during == (
        "mail-patch  กำลังปิดปรับปรุง ทุกสัปดาห์ พ. อา. 02:00 น. นาน 2 ชม. (ครั้งนี้ถึง 6 ธ.ค. 2569 04:00 น.)"
        "  ระบบ: mail  — แพตช์  (config)"
    )
    after = format_line(weekly, "config", datetime(2026, 12, 6, 4, 0, tzinfo=BANGKOK))
    assert "รอเริ่ม" in after
    assert "(ครั้งถัดไป 9 ธ.ค. 2569 02:00 น.)" in after
    one_off = MaintenanceWindow.model_validate(
        {"id": "x", "reason": "r", "teams": ["apps"], "start": "2026-12-01 22:00",
         "end": "2026-12-02 02:00", "created_by": "somchai"}
    )  # fmt: skip
    assert format_line(one_off, "cli", datetime(2026, 12, 1, 12, tzinfo=BANGKOK)) == (
        "x  รอเริ่ม          1 ธ.ค. 2569 22:00 น. – 2 ธ.ค. 2569 02:00 น.  ทีม: apps  — r  (cli, somchai)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--system", "e-service", "--reason", "x", "--start", "2030-01-02 10:00", "--end", "2030-01-02 09:00"],
         "must be after start"),
        (["--reason", "x", "--duration", "1h"], "name at least one system, team or tag"),
        (["--system", "nope", "--reason", "x", "--duration", "1h"], "unknown system 'nope' (known: core-network, e-service)"),
        (["--team", "dba", "--reason", "x", "--duration", "1h"], "unknown team 'dba' (known: apps, noc)"),
        (["--tag", "dbs", "--reason", "x", "--duration", "1h"], "no monitor has the tag 'dbs' (tags in use: db)"),
        (["--system", "e-service", "--reason", "x", "--start", "tomorrow", "--duration", "1h"],
         "bad time 'tomorrow': use YYYY-MM-DD HH:MM"),
        (["--system", "e-service", "--reason", "x", "--duration", "2 hours"], "invalid duration '2 hours'"),
        (["--system", "e-service", "--reason", "x", "--duration", "0s"], "it must be longer than zero"),
        (["--system", "e-service", "--reason", "x", "--duration", "99999999999999h"],
         "a window lasts at most a hundred years"),
        (["--system", "e-service", "--reason", "x", "--end", "9999-12-31 23:59"],
         "the end must be within a hundred years of now"),
        (["--system", "e-service", "--reason", "x", "--start", "0001-01-01 00:00", "--duration", "1h"],
         "the start must be within a hundred years of now"),
        (["--system", "e-service", "--reason", "x", "--end", "2030-01-02 10:00", "--duration", "1h"],
         "give an end or a duration, not both"),
        (["--system", "e-service", "--reason", "x"], "give an end or a duration"),
        (["--system", "e-service", "--duration", "1h"], "give a reason"),
        (["--system", "e-service", "--reason", "x", "--start", "2020-01-01 10:00", "--duration", "1h"],
         "the window would already be over"),
        (["--system", "e-service", "--reason", "x", "--duration", "1h", "--id", "Bad Id"],
         "id: String should match pattern"),
    ],
)  # fmt: skip
def test_bad_input_is_one_red_line_and_exit_1(
    env: None, inventory: Path, mongo_url: str, mongo_db_name: str, args: list[str], message: str
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(inventory)]).exit_code == 0
    result = runner.invoke(app, ["maintenance", "add", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    assert find(mongo_url, mongo_db_name, "maintenance") == []


def test_unknown_id_and_duplicate_id(env: None) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["maintenance", "end", "nope"])
    assert unknown.exit_code == 1
    assert "no maintenance window 'nope'" in unknown.output
    add = ["maintenance", "add", "--id", "dup", "--system", "anything", "--reason", "x", "--duration", "1h"]
    first = runner.invoke(app, add)
    assert first.exit_code == 0, "with no inventory in MongoDB, systems are not checked"
    second = runner.invoke(app, add)
    assert second.exit_code == 1
    assert "a maintenance window 'dup' already exists" in second.output


def test_unreachable_servers_are_one_clear_line(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAO_NATS_URL", nats_url)
    monkeypatch.setenv("FAO_MONGO_URL", f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300")
    for args in (
        ["maintenance", "list"],
        ["maintenance", "end", "x"],
        ["maintenance", "add", "--system", "a", "--reason", "x", "--duration", "1h"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, args
        assert "cannot reach" in result.output
        assert "Traceback" not in result.output


CONFIG_WINDOWS = """\
maintenance:
  - id: nightly-core
    reason: Nightly core backup
    systems: [core-network]
    weekly: {days: [mon, tue, wed, thu, fri, sat, sun], at: "00:00", duration: 1d}
  - id: portal-move
    reason: Portal moves to the new cluster
    teams: [apps]
    start: 2030-01-02 22:00
    end: 2030-01-03 02:00
"""


async def test_apply_keeps_cli_windows_and_prunes_vanished_config_windows(
    inventory: Path, nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    config = inventory
    (config / "maintenance.yaml").write_text(CONFIG_WINDOWS, encoding="utf-8")
    first = await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    assert {"+ maintenance nightly-core", "+ maintenance portal-move"} <= {str(c) for c in first.changes}
    docs = {d["_id"]: d async for d in mongo_db["maintenance"].find({})}
    assert {k: d["source"] for k, d in docs.items()} == {"nightly-core": "config", "portal-move": "config"}
    assert set(await _kv_windows(nats_url)) == {
        maintenance_key("nightly-core"),
        maintenance_key("portal-move"),
    }

    now = datetime.now(UTC)
    cli_window = build_window(
        window_id=None, reason="Disk swap", systems=["e-service"], teams=[], tags=[],
        start=now, end=now + timedelta(hours=1), created_by="somchai",
    )  # fmt: skip
    cli_window = await add_window(
        mongo_url, mongo_db.name, nats_url, cli_window, generated_id=True, actor="somchai", now=now
    )
    ended = await end_window(mongo_url, mongo_db.name, nats_url, "nightly-core", actor="somchai", now=now)
    assert ended.changed

    again = await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    assert again.changes == [], "a CLI window and an ended config window are no change to the config"
    nightly = await mongo_db["maintenance"].find_one({"_id": "nightly-core"})
    assert nightly is not None
    assert nightly["ended_at"] is not None, "apply keeps the ended_at that `fao maintenance end` set"
    kv = await _kv_windows(nats_url)
    assert set(kv) == {maintenance_key(i) for i in ("nightly-core", "portal-move", cli_window.id)}
    assert kv[maintenance_key("nightly-core")].ended_at is not None

    rescheduled = CONFIG_WINDOWS.split("  - id: portal-move")[0].replace('at: "00:00"', 'at: "01:00"')
    (config / "maintenance.yaml").write_text(rescheduled, encoding="utf-8")
    kept = await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    assert {str(c) for c in kept.changes} == {"~ maintenance nightly-core"}, "removed only with prune"
    assert await mongo_db["maintenance"].find_one({"_id": "portal-move"}) is not None
    changed = await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False, prune=True, force=True)
    assert {str(c) for c in changed.changes} == {"- maintenance portal-move"}
    docs = {d["_id"]: d async for d in mongo_db["maintenance"].find({})}
    assert set(docs) == {"nightly-core", cli_window.id}
    assert docs["nightly-core"]["ended_at"] is None, "a new schedule starts afresh"
    assert docs[cli_window.id]["source"] == "cli"
    kv = await _kv_windows(nats_url)
    assert set(kv) == {maintenance_key("nightly-core"), maintenance_key(cli_window.id)}

    nc = await nats.connect(nats_url)  # a lost KV entry of a CLI window is restored by the next apply
    try:
        await (await maintenance_bucket(nc.jetstream())).delete(maintenance_key(cli_window.id))
    finally:
        await nc.close()
    await apply(config, mongo_url, mongo_db.name, nats_url, dry_run=False)
    assert maintenance_key(cli_window.id) in await _kv_windows(nats_url)


async def test_the_live_catalog_sees_windows_added_and_ended(
    nats_url: str, mongo_url: str, mongo_db: AsyncDatabase[Document]
) -> None:
    nc = await nats.connect(nats_url)
    catalog = MaintenanceCatalog(nc.jetstream())
    try:
        await catalog.start()
        now = datetime.now(UTC)
        window = build_window(
            window_id="live", reason="Live", systems=["core"], teams=[], tags=[],
            start=now, end=now + timedelta(hours=1), created_by="somchai",
        )  # fmt: skip
        await add_window(mongo_url, mongo_db.name, nats_url, window, generated_id=False, actor="a", now=now)
        deadline = asyncio.get_running_loop().time() + 5
        while "live" not in catalog.windows:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        await end_window(
            mongo_url, mongo_db.name, nats_url, "live", actor="a", now=now + timedelta(minutes=1)
        )
        while catalog.windows["live"].ended_at is None:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
    finally:
        await catalog.stop()
        await nc.close()


def test_with_nats_stopped_add_and_end_change_nothing_and_say_so_in_one_line(
    mongo_url: str, mongo_db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As processes against a nats-server that is stopped: exit 1, one line on stderr, no
    traceback; started again, its bucket holds only what was there before, and MongoDB (windows
    and audit) too."""
    port = free_port()
    server = start_nats(tmp_path / "nats", port)
    try:
        monkeypatch.setenv("FAO_NATS_URL", server.url)
        monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
        monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)
        add = ["maintenance", "add", "--system", "e-service", "--reason", "x", "--duration", "1h"]
        first = CliRunner().invoke(app, [*add, "--id", "before"])
        assert first.exit_code == 0, first.output
        server.stop()
        for args in ([*add, "--id", "during"], add, ["maintenance", "end", "before"]):
            done = subprocess.run(
                [sys.executable, "-m", "fao.cli", *args],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert done.stdout == ""
            [line] = done.stderr.strip().splitlines()
            assert line.startswith("cannot reach NATS"), line
            assert line.endswith("nothing was changed"), line
        server = start_nats(tmp_path / "nats", port)
        assert set(kv_windows(server.url)) == {maintenance_key("before")}
        assert kv_windows(server.url)[maintenance_key("before")].ended_at is None
    finally:
        server.stop()
    [doc] = find(mongo_url, mongo_db_name, "maintenance")
    assert doc["_id"] == "before"
    assert doc.get("ended_at") is None
    audit = find(mongo_url, mongo_db_name, "audit")
    assert [(a["action"], a["window_id"]) for a in audit] == [("maintenance.add", "before")]
