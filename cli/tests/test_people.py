"""PDPA requests: `fao people export|forget` on real NATS and FerretDB."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pymongo import MongoClient
from typer.testing import CliRunner, Result

from fao.cli.main import app
from fao.runtime.store import Document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"
LINE_ID = "U" + "a" * 32
PEOPLE = f"""\
people:
  - id: somchai
    name: สมชาย ใจดี
    teams: [noc]
    line_user_id: {LINE_ID}
    email: somchai@example.go.th
  - id: nid
    name: นิด
    teams: [noc]
"""


def fao(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_export_then_forget_leaves_a_pseudonym_everywhere(
    env: None, tmp_path: Path, mongo_url: str, mongo_db_name: str
) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    (config / "people.yaml").write_text(PEOPLE, encoding="utf-8")
    assert fao("apply", "--yes", str(config)).exit_code == 0
    client: MongoClient[Document] = MongoClient(mongo_url)
    store = client[mongo_db_name]
    now = datetime.now(UTC)
    store["incidents"].insert_one(
        {"_id": "inc-1", "acknowledged_by": "line:สมชาย ใจดี", "title": "Portal down"}
    )
    store["incident_timeline"].insert_one(
        {"_id": "ev-1", "incident_id": "inc-1", "actor": "line:สมชาย ใจดี", "at": now}
    )
    store["deliveries"].insert_one(
        {"_id": "d-1", "target": LINE_ID, "message": {"text": "รับทราบโดย สมชาย ใจดี", "alt_text": "x"}}
    )
    store["incident_timeline"].insert_one(
        {"_id": "ev-2", "incident_id": "inc-1", "actor": "line:นิด", "at": now}
    )
    # an escalation step's claim: the person's LINE id as a target, their e-mail as its fallback
    store["escalation_steps"].insert_one(
        {
            "_id": "inc-1:esc0.0",
            "incident_id": "inc-1",
            "targets": [LINE_ID],
            "plans": [
                {"target": LINE_ID, "fallbacks": [{"channel": "email", "target": "somchai@example.go.th"}]}
            ],
        }
    )
    store["owner_reviews"].insert_many(
        [
            {"_id": "2026-Q4:noc", "round": "2026-Q4", "team": "noc", "status": "confirmed", "by": "somchai"},
            {"_id": "2026-Q3:noc", "round": "2026-Q3", "team": "noc", "status": "confirmed", "by": "nid"},
        ]
    )
    try:
        exported = fao("people", "export", "somchai")
        assert exported.exit_code == 0, exported.output
        data = json.loads(exported.output)
        assert data["person"]["email"] == "somchai@example.go.th"
        assert {(o["collection"], o["doc_id"], o["path"]) for o in data["occurrences"]} == {
            ("incidents", "inc-1", "acknowledged_by"),
            ("incident_timeline", "ev-1", "actor"),
            ("deliveries", "d-1", "target"),
            ("deliveries", "d-1", "message.text"),
            ("escalation_steps", "inc-1:esc0.0", "targets[0]"),
            ("escalation_steps", "inc-1:esc0.0", "plans[0].target"),
            ("escalation_steps", "inc-1:esc0.0", "plans[0].fallbacks[0].target"),
            ("owner_reviews", "2026-Q4:noc", "by"),
        }

        refused = fao("people", "forget", "somchai")
        assert refused.exit_code == 1
        assert store["people"].find_one({"_id": "somchai"}) is not None

        forgot = fao("people", "forget", "somchai", "--yes")
        assert forgot.exit_code == 0, forgot.output
        pseudonym = forgot.output.split("now ", 1)[1].split(" ", 1)[0]
        assert pseudonym.startswith("former-member-")
        assert store["people"].find_one({"_id": "somchai"}) is None
        incident = store["incidents"].find_one({"_id": "inc-1"})
        assert incident is not None
        assert incident["acknowledged_by"] == f"line:{pseudonym}"
        delivery = store["deliveries"].find_one({"_id": "d-1"})
        assert delivery is not None
        assert delivery["target"] == pseudonym
        assert delivery["message"]["text"] == f"รับทราบโดย {pseudonym}"
        claim = store["escalation_steps"].find_one({"_id": "inc-1:esc0.0"})
        assert claim is not None
        assert claim["targets"] == [pseudonym]
        assert claim["plans"] == [
            {"target": pseudonym, "fallbacks": [{"channel": "email", "target": pseudonym}]}
        ]
        other = store["incident_timeline"].find_one({"_id": "ev-2"})
        assert other is not None
        assert other["actor"] == "line:นิด", "nobody else is touched"
        answers = {doc["_id"]: doc["by"] for doc in store["owner_reviews"].find({})}
        assert answers == {"2026-Q4:noc": pseudonym, "2026-Q3:noc": "nid"}, "who answered the review"
        dumped = json.dumps(
            [d for c in ("incidents", "incident_timeline", "deliveries", "audit") for d in store[c].find({})],
            default=str,
            ensure_ascii=False,
        )
        for identifier in ("สมชาย ใจดี", LINE_ID, "somchai@example.go.th"):
            assert identifier not in dumped
        (entry,) = list(store["audit"].find({"action": "people.forget"}))
        assert entry["pseudonym"] == pseudonym

        doctor = fao("doctor").output
        assert "✗ team apps: escalation step 1 names person somchai, not in the inventory" in doctor
        assert "fix: remove somchai from the team's escalation in the config files" in doctor

        back = fao("apply", "--yes", str(config))
        assert back.exit_code == 1
        assert "people erased at their request (PDPA) are still in the files: somchai" in back.output
        assert fao("people", "export", "somchai").output.startswith("somchai was forgotten on ")
    finally:
        client.close()


def test_a_person_who_leaves_is_kept_until_the_retention_then_doctor_names_them(
    env: None, tmp_path: Path, mongo_url: str, mongo_db_name: str
) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    (config / "people.yaml").write_text(PEOPLE, encoding="utf-8")
    assert fao("apply", "--yes", str(config)).exit_code == 0
    (config / "people.yaml").write_text(PEOPLE.split("  - id: nid")[0], encoding="utf-8")
    left = fao("apply", "--yes", "--prune", "--force", str(config))
    assert left.exit_code == 0, left.output
    assert "- person nid" in left.output
    client: MongoClient[Document] = MongoClient(mongo_url)
    try:
        departed = client[mongo_db_name]["people_departed"].find_one({"_id": "nid"})
        assert departed is not None
        assert departed["name"] == "นิด"
        assert "nid" not in fao("doctor").output, "within the retention"
        late = fao("doctor", "--retention-days", "1")
        assert "person nid: left the config on" not in late.output, "left today: not yet beyond 1 day"
        client[mongo_db_name]["people_departed"].update_one(
            {"_id": "nid"}, {"$set": {"departed_at": datetime(2020, 1, 1, tzinfo=UTC)}}
        )
        due = fao("doctor", "--retention-days", "30")
        assert "! person nid: left the config on 2020-01-01, beyond the 30-day retention" in due.output
        assert "fix: erase their data: fao people forget nid --yes" in due.output
        assert fao("people", "forget", "nid", "--yes").exit_code == 0
        assert client[mongo_db_name]["people_departed"].find_one({"_id": "nid"}) is None
        assert "person nid" not in fao("doctor", "--retention-days", "30").output
    finally:
        client.close()
