"""`fao doctor`: findings over a snapshot (pure, table-like) and the command on real FerretDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from fao.cli.doctor import MonitorSeen, Snapshot, diagnose
from fao.cli.main import app
from fao.runtime.store import Document
from fao.schemas import MaintenanceWindow, Monitor, Person, System, Team

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TCP = {"type": "tcp", "host": "127.0.0.1", "port": 9}


def monitor(monitor_id: str, system: str = "web", zones: tuple[str, ...] = ("dc1",)) -> Monitor:
    return Monitor.model_validate({"id": monitor_id, "system": system, "check": TCP, "zones": list(zones)})


def healthy() -> Snapshot:
    return Snapshot(
        teams=[Team(id="noc", name="NOC", line_groups=["C" + "1" * 32])],
        people=[Person(id="somchai", name="สมชาย", teams=["noc"], line_user_id="U" + "2" * 32)],
        systems=[System(id="web", name="Web", team="noc")],
        monitors=[monitor("web-home")],
        seen={"web-home": MonitorSeen({"dc1": NOW - timedelta(seconds=30)}, (True, False, True))},
    )


def subjects(snap: Snapshot) -> list[str]:
    return [f"{f.level}:{f.subject}" for f in diagnose(snap, NOW)]


def test_a_healthy_inventory_has_no_findings() -> None:
    assert diagnose(healthy(), NOW) == []


def test_each_kind_of_trouble_is_found_with_its_fix() -> None:
    snap = healthy()
    snap.systems.append(System(id="mail", name="Mail", team="noc"))
    snap.monitors += [monitor("never-ran", zones=("dr",)), monitor("always-fails")]
    snap.seen["always-fails"] = MonitorSeen({"dc1": NOW}, (False,) * 21)
    snap.teams.append(Team(id="lonely", name="Lonely"))
    snap.people.append(Person(id="nid", name="Nid"))
    snap.windows += [
        MaintenanceWindow.model_validate(
            {
                "id": "forever",
                "reason": "x",
                "systems": ["web"],
                "start": "2026-11-01 00:00",
                "end": "2027-06-01 00:00",
            }
        ),
        MaintenanceWindow.model_validate(
            {
                "id": "always",
                "reason": "x",
                "systems": ["web"],
                "weekly": {"days": ["mon", "tue", "wed", "thu"], "at": "00:00", "duration": "1d"},
            }
        ),
        MaintenanceWindow.model_validate(
            {
                "id": "patch",
                "reason": "x",
                "systems": ["web"],
                "weekly": {"days": ["sun"], "at": "02:00", "duration": "2h"},
            }
        ),
    ]
    assert subjects(snap) == [
        "warning:system mail",
        "problem:monitor always-fails",
        "problem:monitor never-ran",
        "problem:zone dr",
        "problem:team lonely",
        "warning:person nid",
        "warning:maintenance always",
        "warning:maintenance forever",
    ]
    text = "\n".join(str(f) for f in diagnose(snap, NOW))
    assert "fix: start a prober with FAO_ZONE=dr" in text
    assert "fix: try it by hand: fao check always-fails" in text
    assert "covers 57% of every week" in text


def test_a_group_the_bot_left_or_never_joined_is_found() -> None:
    snap = healthy()
    snap.teams.append(Team(id="apps", name="Apps", line_groups=["C" + "3" * 32, "C" + "4" * 32]))
    assert subjects(snap) == [], "no group recorded at all: the gateway may not run; nothing to say"
    snap.groups = {"C" + "1" * 32: True, "C" + "3" * 32: False}
    found = diagnose(snap, NOW)
    assert [(f.level, f.subject) for f in found] == [("problem", "team apps"), ("warning", "team apps")]
    assert "has left its LINE group C333" in found[0].what
    assert "never seen in its LINE group C444" in found[1].what


def test_a_zone_silent_for_long_is_found_and_a_finished_window_is_not() -> None:
    snap = healthy()
    snap.seen["web-home"] = MonitorSeen({"dc1": NOW - timedelta(hours=1)}, (True,))
    snap.windows.append(
        MaintenanceWindow.model_validate(
            {
                "id": "old",
                "reason": "x",
                "systems": ["web"],
                "start": "2026-01-01 00:00",
                "end": "2026-03-01 00:00",
            }
        )
    )
    assert subjects(snap) == ["problem:zone dc1"]


@pytest.fixture
def env(nats_url: str, mongo_url: str, mongo_db_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAO_NATS_URL", nats_url)
    monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
    monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)


def test_doctor_reads_the_applied_inventory_and_exits_1_on_problems(
    env: None, mongo_url: str, mongo_db_name: str
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(EXAMPLES)]).exit_code == 0
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "✗ monitor e-service-home: no result recorded (zones: dc1, dr)" in result.output
    client: MongoClient[Document] = MongoClient(mongo_url)
    try:
        states = client[mongo_db_name]["monitor_state"]
        for doc in client[mongo_db_name]["monitors"].find({}):
            zones = {z: {"last_at": datetime.now(UTC), "history": [True]} for z in doc["zones"]}
            states.insert_one({"_id": doc["_id"], "monitor_id": doc["_id"], "zones": zones})
    finally:
        client.close()
    again = runner.invoke(app, ["doctor"])
    assert "no result recorded" not in again.output
    assert "zone " not in again.output
