"""`fao apply` changing many documents of one kind deletes them at once and inserts them again, or
for the monitors writes the collection anew and swaps it in (FerretDB scans a collection for every
replace): the result is what the files say, and a failure half way through the inserts or after
the swap is undone to exactly what was stored before. Real NATS and FerretDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.tests.conftest import WriteFailure, stored_monitors
from pymongo import MongoClient
from typer.testing import CliRunner, Result

import fao.cli.apply as apply_module
from fao.cli.main import app
from fao.runtime import audit
from fao.runtime.store import Document

MONITORS = 40


def write_config(folder: Path, interval: str, skip: int = 0, extra: bool = False) -> None:
    """One team, MONITORS systems (named after ``interval``) of one tcp monitor each (the first
    ``skip`` left out), every interval ``interval``; ``extra`` adds one more."""
    folder.mkdir(exist_ok=True)
    numbers = [*range(skip, MONITORS), *([MONITORS] if extra else [])]
    lines = [
        'teams:\n  - {id: noc, name: NOC, line_groups: ["C0123456789abcdef0123456789abcdef"]}\n',
        "systems:\n",
        *(f"  - {{id: s{n:02d}, name: Portal every {interval}, team: noc}}\n" for n in numbers),
        "monitors:\n",
    ]
    lines += [
        f"  - {{id: m{n:02d}, system: s{n:02d}, interval: {interval}, check: {{type: tcp, host: 127.0.0.1, port: 9}}}}\n"
        for n in numbers
    ]
    (folder / "inventory.yaml").write_text("".join(lines), encoding="utf-8")


def fao(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def applied(tmp_path: Path) -> Path:
    """The config of MONITORS monitors at 60 s, applied; its folder."""
    config = tmp_path / "config"
    write_config(config, "60s")
    assert fao("apply", "--yes", str(config)).exit_code == 0
    return config


def test_many_changes_are_written_in_bulk_and_match_the_files(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = applied(tmp_path)
    deletes: list[tuple[str, int]] = []
    real_delete = apply_module.delete_documents

    async def counted(db: object, collection: str, keys: list[str]) -> None:
        deletes.append((collection, len(keys)))
        await real_delete(db, collection, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module, "delete_documents", counted)
    write_config(config, "90s", skip=2, extra=True)  # 38 changed, 2 removed, 1 added (of each kind)
    result = fao("apply", "--yes", "--prune", str(config))
    assert result.exit_code == 0, result.output
    assert deletes == [("systems", 40)], "one delete of every changed and removed system"
    docs = stored_monitors(client, mongo_db_name)
    assert sorted(docs) == [f"m{n:02d}" for n in range(2, MONITORS + 1)]
    assert {doc["interval"] for doc in docs.values()} == {90.0}
    assert (
        set(client[mongo_db_name].list_collection_names()) & {"monitors_next", "monitors_previous"} == set()
    )
    again = fao("apply", "--yes", "--prune", str(config))
    assert again.exit_code == 0
    assert "; 0 change(s)" in again.output, "what was written is what the files say"


def test_a_failure_after_the_bulk_delete_is_undone(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = applied(tmp_path)
    before = stored_monitors(client, mongo_db_name)
    failure = WriteFailure(monkeypatch)
    write_config(config, "90s")  # all 40 changed: deleted at once, then inserted 50 at a time
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert "what was written was undone" in result.output
    assert failure.calls == 1
    assert stored_monitors(client, mongo_db_name) == before


def test_a_failure_after_the_monitors_are_swapped_is_undone(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The new monitors collection has taken the old one's place when the audit entry fails: the
    old one is put back whole and nothing of the swap is left."""
    config = applied(tmp_path)
    before = stored_monitors(client, mongo_db_name)

    async def audit_fails(*args: object) -> None:
        assert stored_monitors(client, mongo_db_name) != before, "swapped by now"
        raise OSError("disk full (injected)")

    monkeypatch.setattr(audit, "record", audit_fails)
    write_config(config, "90s")
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert "what was written was undone" in result.output
    assert stored_monitors(client, mongo_db_name) == before
    assert (
        set(client[mongo_db_name].list_collection_names()) & {"monitors_next", "monitors_previous"} == set()
    )


def test_a_failure_while_the_new_monitors_are_written_is_undone(
    env: None,
    tmp_path: Path,
    client: MongoClient[Document],
    mongo_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = applied(tmp_path)
    before = stored_monitors(client, mongo_db_name)
    real_write = apply_module.write_documents
    written: list[str] = []

    async def fails_on_the_new_monitors(db: object, collection: str, writes: object) -> None:
        written.append(collection)
        await real_write(db, collection, writes)  # type: ignore[arg-type]
        if collection == "monitors_next":
            raise OSError("disk full (injected)")

    monkeypatch.setattr(apply_module, "write_documents", fails_on_the_new_monitors)
    write_config(config, "90s")
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert "what was written was undone" in result.output
    assert written[-1] == "monitors_next"
    assert stored_monitors(client, mongo_db_name) == before
    assert (
        set(client[mongo_db_name].list_collection_names()) & {"monitors_next", "monitors_previous"} == set()
    )


def test_an_apply_stopped_between_the_two_renames_is_named_not_planned_as_all_new(
    env: None, tmp_path: Path, client: MongoClient[Document], mongo_db_name: str
) -> None:
    """Killed after ``monitors`` became ``monitors_previous`` and before ``monitors_next`` became
    ``monitors``: planning against the missing collection would add every monitor (and lose those
    kept without --prune); apply refuses, saying how to put it back."""
    config = applied(tmp_path)
    before = stored_monitors(client, mongo_db_name)
    client[mongo_db_name]["monitors"].rename("monitors_previous")
    refused = fao("apply", "--yes", str(config))
    assert refused.exit_code == 1
    assert "db.monitors_previous.renameCollection('monitors')" in refused.output
    assert "monitors" not in client[mongo_db_name].list_collection_names()
    client[mongo_db_name]["monitors_previous"].rename("monitors")
    again = fao("apply", "--yes", str(config))
    assert again.exit_code == 0, again.output
    assert "; 0 change(s)" in again.output
    assert stored_monitors(client, mongo_db_name) == before
