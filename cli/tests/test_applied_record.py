"""`fao apply` plans the monitors against its record of what it wrote (``fao.cli.applied_record``)
only while that record is true: a re-apply reads it instead of every document, a process killed
between the documents and the record, a document inserted by hand, a damaged record are each
seen, and the record always equals the collection after an apply. Real NATS and FerretDB."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cli.tests.conftest import stored_monitors
from pymongo import MongoClient
from pymongo.errors import AutoReconnect
from typer.testing import CliRunner, Result

import fao.cli.apply as apply_module
from fao.cli.applied_record import RECORD, read_record
from fao.cli.main import app
from fao.runtime.store import Document, connect

MONITORS = 12


def write_config(folder: Path, interval: str, count: int = MONITORS) -> None:
    """One team, one system and ``count`` tcp monitors every ``interval``."""
    folder.mkdir(exist_ok=True)
    lines = [
        "teams:\n  - {id: noc, name: NOC}\n",
        "systems:\n  - {id: portal, name: Portal, team: noc}\n",
        "monitors:\n",
        *(
            f"  - {{id: m{n:02d}, system: portal, interval: {interval}, check: {{type: tcp, host: 127.0.0.1, port: 9}}}}\n"
            for n in range(count)
        ),
    ]
    (folder / "inventory.yaml").write_text("".join(lines), encoding="utf-8")


def fao(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def apply_ok(*args: str) -> Result:
    result = fao("apply", "--yes", *args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The collections apply reads document by document, in order."""
    seen: list[str] = []
    real = apply_module.read_collection

    async def counted(db: object, collection: str) -> dict[str, Document]:
        seen.append(collection)
        return await real(db, collection)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module, "read_collection", counted)
    return seen


def record(mongo_url: str, db: str) -> dict[str, Document] | None:
    async def read() -> dict[str, Document] | None:
        client = connect(mongo_url)
        try:
            return await read_record(client[db], "monitors")
        finally:
            await client.close()

    return asyncio.run(read())


def test_a_reapply_reads_the_record_not_every_monitor_and_the_record_is_the_collection(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    mongo_url: str,
    reads: list[str],
) -> None:
    config = tmp_path / "config"
    write_config(config, "60s")
    apply_ok(str(config))
    assert "monitors" in reads, "no record yet: every document is read"
    assert record(mongo_url, mongo_db_name) == stored_monitors(client, mongo_db_name)

    reads.clear()
    assert "; 0 change(s)" in apply_ok(str(config)).output
    assert "monitors" not in reads
    write_config(config, "90s", count=MONITORS - 2)
    changed = apply_ok("--prune", str(config))
    assert "monitors: 0 to add, 10 to change, 2 to remove" in changed.output
    assert "monitors" not in reads
    assert record(mongo_url, mongo_db_name) == stored_monitors(client, mongo_db_name)
    assert {doc["interval"] for doc in stored_monitors(client, mongo_db_name).values()} == {90.0}

    reads.clear()
    apply_ok("--rescan", str(config))
    assert "monitors" in reads, "--rescan reads every document"


def test_a_process_killed_before_the_record_is_written_leaves_it_distrusted(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after the documents and the audit, before the record: the next apply plans against
    the documents. 60 s → 90 s keeps the collection's size, so only the mark ``writing`` (put
    before the first document is written) tells the record is stale."""
    config = tmp_path / "config"
    write_config(config, "60s")
    apply_ok(str(config))
    write_config(config, "90s")

    async def killed(*args: object) -> None:
        return None

    with monkeypatch.context() as patched:
        patched.setattr(apply_module, "write_record", killed)
        apply_ok(str(config))
    assert client[mongo_db_name][RECORD].find_one({"_id": "monitors"}) == {
        "_id": "monitors",
        "state": "writing",
    }

    write_config(config, "60s")
    back = apply_ok(str(config))
    assert "monitors: 0 to add, 12 to change" in back.output
    assert {doc["interval"] for doc in stored_monitors(client, mongo_db_name).values()} == {60.0}


def test_a_monitor_inserted_or_deleted_by_hand_is_seen_by_the_next_apply(
    env: None, tmp_path: Path, client: MongoClient[Document], mongo_db_name: str, reads: list[str]
) -> None:
    config = tmp_path / "config"
    write_config(config, "60s")
    apply_ok(str(config))
    collection = client[mongo_db_name]["monitors"]
    first = collection.find_one({"_id": "m00"})
    assert first is not None
    collection.insert_one({**first, "_id": "rogue"})
    reads.clear()
    kept = apply_ok(str(config))
    assert "monitors" in reads, "the document count changed: the record is not trusted"
    assert "= monitor rogue (not in the files: kept; --prune removes it)" in kept.output
    assert "- monitor rogue" in apply_ok("--prune", str(config)).output
    assert "rogue" not in stored_monitors(client, mongo_db_name)

    collection.delete_one({"_id": "m03"})
    assert "+ monitor m03" in apply_ok(str(config)).output
    assert "m03" in stored_monitors(client, mongo_db_name)


def test_a_damaged_record_is_not_trusted(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    mongo_url: str,
    reads: list[str],
) -> None:
    config = tmp_path / "config"
    write_config(config, "60s")
    apply_ok(str(config))
    client[mongo_db_name][RECORD].update_one({"_id": "monitors.0"}, {"$set": {"data": b"not the copy"}})
    assert record(mongo_url, mongo_db_name) is None
    reads.clear()
    assert "; 0 change(s)" in apply_ok(str(config)).output
    assert "monitors" in reads
    assert record(mongo_url, mongo_db_name) == stored_monitors(client, mongo_db_name), "written again"


def test_a_record_that_cannot_be_written_does_not_undo_the_apply(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "config"
    write_config(config, "60s")

    async def unreachable(*args: object) -> None:
        raise AutoReconnect("connection closed (injected)")

    monkeypatch.setattr(apply_module, "write_record", unreachable)
    result = apply_ok(str(config))
    assert "note: apply's record of the monitors was not written" in result.output
    assert len(stored_monitors(client, mongo_db_name)) == MONITORS
    assert client[mongo_db_name][RECORD].find_one({"_id": "monitors"}) == {
        "_id": "monitors",
        "state": "writing",
    }
