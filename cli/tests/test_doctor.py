"""`fao doctor`: findings over a snapshot (pure, table-like) and the command on real FerretDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from pymongo import MongoClient
from typer.testing import CliRunner

from fao.cli.doctor import MonitorSeen, Snapshot, diagnose
from fao.cli.main import app
from fao.runtime.bus import state_bucket
from fao.runtime.owner_review import REVIEWS, ROUNDS, ReviewAnswer, ReviewRound
from fao.runtime.reachability import Broken
from fao.runtime.states import encode
from fao.runtime.store import Document
from fao.schemas import MaintenanceWindow, Monitor, Person, System, Team
from fao.schemas.subjects import state_key

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


def test_systems_of_a_team_nothing_reaches_are_named_as_without_a_reachable_owner() -> None:
    snap = healthy()
    left, kept = "C" + "3" * 32, "C" + "4" * 32
    snap.teams += [
        Team(id="apps", name="Apps", line_groups=[left]),
        Team(id="mail", name="Mail", line_groups=[left], email=["mail@example.go.th"]),
        Team(id="ops", name="Ops", line_groups=[left, kept]),
        Team(id="silent", name="Silent"),
    ]
    for team, count in (("apps", 2), ("mail", 1), ("ops", 1), ("silent", 12)):
        for n in range(count):
            snap.systems.append(System(id=f"{team}-{n:02}", name=team, team=team))
            snap.monitors.append(monitor(f"{team}-{n:02}-home", system=f"{team}-{n:02}"))
            snap.seen[f"{team}-{n:02}-home"] = MonitorSeen({"dc1": NOW}, (True,))
    snap.groups = {"C" + "1" * 32: True, left: False, kept: True}
    found = {(f.subject, f.what) for f in diagnose(snap, NOW)}
    assert (
        "team apps",
        "none of its LINE groups, e-mail addresses or webhooks works; systems without a reachable owner:"
        " apps-00, apps-01",
    ) in found
    assert (
        "team silent",
        "no LINE group, e-mail or webhook: its alerts go nowhere; systems without a reachable owner:"
        " silent-00, silent-01, silent-02, silent-03, silent-04, silent-05, silent-06, silent-07,"
        " silent-08, silent-09 and 2 more",
    ) in found
    unowned = {subject for subject, what in found if "without a reachable owner" in what}
    assert unowned == {"team apps", "team silent"}, "mail has e-mail, ops a group the bot is in"


def test_an_escalation_step_naming_someone_no_longer_stored_is_found() -> None:
    snap = healthy()
    escalation = {
        "steps": [{"after": "10m", "people": ["somchai", "gone"]}, {"after": "1h", "teams": ["exec"]}]
    }
    snap.teams[0] = Team.model_validate({**snap.teams[0].model_dump(), "escalation": escalation})
    found = [(f.subject, f.what.split(",")[0]) for f in diagnose(snap, NOW)]
    assert found == [
        ("team noc", "escalation step 1 names person gone"),
        ("team noc", "escalation step 2 names team exec"),
    ]
    snap.teams.append(Team(id="exec", name="Exec", email=["exec@example.go.th"]))
    snap.people.append(Person(id="gone", name="Gone", line_user_id="U" + "5" * 32))
    assert diagnose(snap, NOW) == []


def test_targets_the_notifier_marked_broken_are_found_and_count_as_not_working() -> None:
    snap = healthy()
    group = "C" + "1" * 32
    snap.teams[0] = Team(
        id="noc",
        name="NOC",
        line_groups=[group],
        email=["noc@example.go.th"],
        webhooks=[{"url": "https://itsm.example.go.th/hook"}],
    )
    since = NOW - timedelta(days=2)
    snap.broken = {
        f"line:{group}": Broken(since, "LINE 400: Failed to send messages"),
        "email:noc@example.go.th": Broken(since, "550 mailbox unavailable"),
    }
    found = diagnose(snap, NOW)
    assert [f.what.split(" (")[0] for f in found] == [
        f"its LINE group {group} refused for good on 2026-11-27",
        "its e-mail address noc@example.go.th refused for good on 2026-11-27",
    ], "the webhook still works: the system has an owner"
    assert found[0].fix.startswith("check the group id (fao line groups)")
    assert "550 mailbox unavailable" in found[1].what
    snap.broken["webhook:https://itsm.example.go.th/hook"] = Broken(since, "HTTP 410")
    last = diagnose(snap, NOW)[-1]
    assert (
        last.what
        == "none of its LINE groups, e-mail addresses or webhooks works; systems without a reachable owner: web"
    )


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


def test_teams_that_have_not_confirmed_the_latest_owner_review_are_found() -> None:
    """Round 2026-Q4 asked noc, apps and infra: noc confirmed, apps never answered, infra asked
    for changes; a team with a group the round did not ask, and a team without a group, are not
    judged."""
    snap = healthy()
    snap.teams += [
        Team(id="apps", name="Apps", line_groups=["C" + "3" * 32]),
        Team(id="infra", name="Infra", line_groups=["C" + "4" * 32]),
        Team(id="new", name="New since the round", line_groups=["C" + "5" * 32]),
    ]
    sent = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)
    asked = datetime(2026, 10, 2, 17, 30, tzinfo=UTC)  # 3 October in Bangkok
    snap.review = ReviewRound(
        "2026-Q4",
        sent,
        ("apps", "infra", "noc", "gone"),
        {
            "noc": ReviewAnswer("noc", "confirmed", "somchai", sent),
            "infra": ReviewAnswer("infra", "needs_changes", "somchai", asked),
        },
    )
    found = diagnose(snap, NOW)
    assert [(f.level, f.subject) for f in found] == [("warning", "team apps"), ("problem", "team infra")]
    assert found[0].what == "has not confirmed its systems and members (round 2026-Q4, sent 2026-10-01)"
    assert "press ยืนยัน" in found[0].fix
    assert (
        found[1].what
        == "สมชาย (somchai) asked for changes to its systems and members on 2026-10-03 (round 2026-Q4)"
    )
    assert "fao apply" in found[1].fix
    snap.review.answers["apps"] = ReviewAnswer("apps", "confirmed", "x", sent)
    snap.review.answers["infra"] = ReviewAnswer("infra", "confirmed", "somchai", asked)
    assert diagnose(snap, NOW) == [], "every team asked has confirmed"


async def _record_states(nats_url: str, monitors: list[Document]) -> None:
    nc = await nats.connect(nats_url)
    try:
        kv = await state_bucket(nc.jetstream())
        for doc in monitors:
            zones = {z: {"last_at": datetime.now(UTC), "history": [True]} for z in doc["zones"]}
            await kv.put(
                state_key(doc["_id"]), encode({"_id": doc["_id"], "monitor_id": doc["_id"], "zones": zones})
            )
    finally:
        await nc.close()


def test_doctor_reads_the_applied_inventory_and_exits_1_on_problems(
    env: None, nats_url: str, mongo_url: str, mongo_db_name: str
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(EXAMPLES)]).exit_code == 0
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "✗ monitor e-service-home: no result recorded (zones: dc1, dr)" in result.output
    client: MongoClient[Document] = MongoClient(mongo_url)
    try:
        monitors = list(client[mongo_db_name]["monitors"].find({}))
    finally:
        client.close()
    asyncio.run(_record_states(nats_url, monitors))  # as the correlator stores them
    again = runner.invoke(app, ["doctor"])
    assert "no result recorded" not in again.output
    assert "zone " not in again.output
    group = "C0123456789abcdef0123456789abcdef"  # noc's, in examples/config/teams.yaml
    client = MongoClient(mongo_url)
    try:
        client[mongo_db_name]["broken_targets"].insert_one(
            {"_id": f"line:{group}", "channel": "line", "target": group, "since": NOW, "error": "LINE 400"}
        )  # as the notifier marks it
    finally:
        client.close()
    marked = runner.invoke(app, ["doctor"])
    assert f"✗ team noc: its LINE group {group} refused for good on 2026-11-29 (LINE 400)" in marked.output


def test_doctor_reads_the_latest_review_round_and_the_answers(
    env: None, mongo_url: str, mongo_db_name: str
) -> None:
    """As the notifier (round claims) and the gateway (answers) store them: only the latest
    round counts; the team that confirmed it is not listed, the one that did not is."""
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(EXAMPLES)]).exit_code == 0
    client: MongoClient[Document] = MongoClient(mongo_url)
    try:
        db = client[mongo_db_name]
        teams = {doc["_id"]: doc["line_groups"] for doc in db["teams"].find({}) if doc.get("line_groups")}
        assert len(teams) >= 2, teams
        confirmed, unconfirmed = sorted(teams)[:2]
        for round_id, at in (
            ("2026-Q3", datetime(2026, 7, 1, 3, tzinfo=UTC)),
            ("2026-Q4", datetime(2026, 10, 1, 3, tzinfo=UTC)),
        ):
            db[ROUNDS].insert_one(
                {"_id": round_id, "round": round_id, "due_at": at, "claimed_at": at, "teams": teams,
                 "status": "recorded"}
            )  # fmt: skip
        for round_id in ("2026-Q3", "2026-Q4"):
            db[REVIEWS].insert_one(
                {"_id": f"{round_id}:{confirmed}", "round": round_id, "team": confirmed, "status": "confirmed",
                 "by": "somchai", "at": datetime(2026, 10, 2, tzinfo=UTC)}
            )  # fmt: skip
        db[REVIEWS].insert_one(
            {"_id": f"2026-Q3:{unconfirmed}", "round": "2026-Q3", "team": unconfirmed, "status": "confirmed",
             "by": "somchai", "at": datetime(2026, 7, 2, tzinfo=UTC)}
        )  # fmt: skip
    finally:
        client.close()
    result = runner.invoke(app, ["doctor"])
    assert (
        f"! team {unconfirmed}: has not confirmed its systems and members (round 2026-Q4, sent 2026-10-01)"
        in result.output
    ), result.output
    assert f"team {confirmed}: has not confirmed" not in result.output
