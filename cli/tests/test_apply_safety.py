"""`fao apply` is safe the way Terraform and kubectl users expect: a plan first, writes only when
confirmed, removals only with --prune (and --force for many), and nothing half-applied. On real
NATS and FerretDB."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
import yaml
from cli.tests.conftest import WriteFailure
from pymongo import MongoClient
from typer.testing import CliRunner, Result

import fao.cli.apply as apply_module
from fao.cli.drift import check_drift
from fao.cli.main import app
from fao.runtime import bus
from fao.runtime.bus import monitors_bucket
from fao.runtime.store import Document
from fao.schemas.subjects import MONITORS_BUCKET, monitor_key

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


@pytest.fixture
def stored(mongo_url: str, mongo_db_name: str) -> Iterator[MongoClient[Document]]:
    client: MongoClient[Document] = MongoClient(mongo_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(EXAMPLES, folder)
    return folder


def fao(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ids(client: MongoClient[Document], db: str, collection: str) -> list[str]:
    return sorted(doc["_id"] for doc in client[db][collection].find({}, {"_id": 1}))


async def kv_keys(nats_url: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await monitors_bucket(js)
        return await bus.kv_keys(js, MONITORS_BUCKET)
    finally:
        await nc.close()


def test_nothing_is_written_without_yes_off_a_terminal(
    env: None, config: Path, stored: MongoClient[Document], mongo_db_name: str
) -> None:
    result = fao("apply", str(config))
    assert result.exit_code == 1
    assert "monitors: 19 to add, 0 to change" in result.output
    assert "+ monitor e-service-home" in result.output
    assert "not a terminal; add --yes to apply" in result.output
    assert ids(stored, mongo_db_name, "monitors") == []


def test_an_empty_folder_removes_nothing_without_prune_and_everything_only_with_force(
    env: None, config: Path, stored: MongoClient[Document], mongo_db_name: str, nats_url: str, tmp_path: Path
) -> None:
    assert fao("apply", "--yes", str(config)).exit_code == 0
    monitors = ids(stored, mongo_db_name, "monitors")
    assert len(monitors) == 19
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text("", encoding="utf-8")

    kept = fao("apply", "--yes", str(empty))
    assert kept.exit_code == 0, kept.output
    assert "= monitor e-service-home (not in the files: kept; --prune removes it)" in kept.output
    assert "applied: 0 teams, 0 systems, 0 monitors (" in kept.output
    assert "stored object(s) not in the files kept); 0 change(s)" in kept.output
    assert ids(stored, mongo_db_name, "monitors") == monitors
    assert asyncio.run(kv_keys(nats_url)) == [monitor_key(m) for m in monitors], "the probers keep them too"

    refused = fao("apply", "--yes", "--prune", str(empty))
    assert refused.exit_code == 1
    assert "this would remove" in refused.output
    assert "19 of 19 monitors" in refused.output
    assert "add --force" in refused.output
    assert ids(stored, mongo_db_name, "monitors") == monitors

    forced = fao("apply", "--yes", "--prune", "--force", str(empty))
    assert forced.exit_code == 0, forced.output
    assert "- monitor e-service-home" in forced.output
    assert ids(stored, mongo_db_name, "monitors") == []
    assert asyncio.run(kv_keys(nats_url)) == []


def test_pruning_a_few_needs_no_force(
    env: None, config: Path, stored: MongoClient[Document], mongo_db_name: str
) -> None:
    text = (config / "monitors.yaml").read_text(encoding="utf-8")
    extra = "\n".join(
        f"  - id: extra-{n}\n    system: e-service\n    check: {{type: tcp, host: 127.0.0.1, port: 9}}"
        for n in range(10)
    )
    (config / "monitors.yaml").write_text(text.rstrip() + "\n" + extra + "\n", encoding="utf-8")
    assert fao("apply", "--yes", str(config)).exit_code == 0
    (config / "monitors.yaml").write_text(
        text.rstrip() + "\n" + extra.rsplit("\n  - ", 1)[0] + "\n", encoding="utf-8"
    )
    pruned = fao("apply", "--yes", "--prune", str(config))
    assert pruned.exit_code == 0, pruned.output
    assert "- monitor extra-9" in pruned.output
    assert "extra-9" not in ids(stored, mongo_db_name, "monitors")


def test_a_failure_half_way_is_undone(
    env: None,
    config: Path,
    stored: MongoClient[Document],
    mongo_db_name: str,
    nats_url: str,
    mongo_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fao("apply", "--yes", str(config)).exit_code == 0
    before_docs = list(stored[mongo_db_name]["monitors"].find({}))
    before_kv = asyncio.run(kv_keys(nats_url))
    monitors = config / "monitors.yaml"
    changed = monitors.read_text(encoding="utf-8").replace("quiet_period: 15s", "quiet_period: 20s")
    assert changed != monitors.read_text(encoding="utf-8")
    monitors.write_text(
        changed
        + "  - id: newcomer\n    system: e-service\n    check: {type: tcp, host: 127.0.0.1, port: 9}\n",
        encoding="utf-8",
    )
    # The KV buckets are written by then, and the first chunk of documents too: then it fails.
    failure = WriteFailure(monkeypatch)
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert "apply failed (OSError: disk full (injected)); what was written was undone" in result.output
    assert failure.calls == 1
    assert list(stored[mongo_db_name]["monitors"].find({})) == before_docs
    assert asyncio.run(kv_keys(nats_url)) == before_kv
    report = asyncio.run(check_drift(mongo_url, mongo_db_name, nats_url, None))
    assert report.clean, report.lines()


def test_a_value_nats_cannot_carry_is_refused_before_anything_is_written(
    env: None, config: Path, stored: MongoClient[Document], mongo_db_name: str, nats_url: str
) -> None:
    assert fao("apply", "--yes", str(config)).exit_code == 0
    before_kv = asyncio.run(kv_keys(nats_url))
    monitors = config / "monitors.yaml"
    monitors.write_text(
        monitors.read_text(encoding="utf-8")
        + "  - id: aaa-first\n    system: e-service\n    check: {type: tcp, host: 127.0.0.1, port: 9}\n"
        + "  - id: huge\n    system: e-service\n    check:\n      type: http\n      url: http://127.0.0.1/\n"
        + f"      keyword: {'x' * 1_100_000}\n",
        encoding="utf-8",
    )
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert "too large for the NATS server" in result.output
    assert "monitor.huge" in result.output
    assert "nothing was changed" in result.output
    assert asyncio.run(kv_keys(nats_url)) == before_kv
    assert "aaa-first" not in ids(stored, mongo_db_name, "monitors")


def test_hidden_and_foreign_files_are_named_not_read(
    env: None, config: Path, stored: MongoClient[Document], mongo_db_name: str
) -> None:
    (config / ".x.yaml").write_text("teams:\n  - id: planted\n    name: Planted\n", encoding="utf-8")
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 0, result.output
    assert f"note: {config / '.x.yaml'}: hidden file, not read" in result.output
    assert "planted" not in ids(stored, mongo_db_name, "teams")


def test_a_large_apply_is_audited_in_parts_that_together_hold_every_change(
    env: None,
    config: Path,
    stored: MongoClient[Document],
    mongo_db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An apply too large for one audit document (MongoDB's 16 MiB limit) is recorded as several
    entries, ``part`` n of ``parts``, with one time and every change once."""
    monkeypatch.setattr(apply_module, "AUDIT_ENTRY_BYTES", 4096)
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 0, result.output
    entries = list(stored[mongo_db_name]["audit"].find({}).sort("part", 1))
    assert len(entries) > 1
    assert [e["part"] for e in entries] == list(range(1, len(entries) + 1))
    assert {e["parts"] for e in entries} == {len(entries)}
    assert len({e["at"] for e in entries}) == 1
    keys = [(c["collection"], c["key"]) for e in entries for c in e["changes"]]
    assert len(keys) == len(set(keys))
    assert ("monitors", "e-service-home") in keys
    assert len(keys) == len(ids(stored, mongo_db_name, "monitors")) + len(
        ids(stored, mongo_db_name, "systems")
    ) + len(ids(stored, mongo_db_name, "teams")) + len(ids(stored, mongo_db_name, "people")) + len(
        ids(stored, mongo_db_name, "maintenance")
    )


def test_an_added_document_that_appeared_meanwhile_fails_the_apply_and_is_not_deleted_by_the_undo(
    env: None,
    config: Path,
    stored: MongoClient[Document],
    mongo_db_name: str,
    nats_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Additions are inserts: a document someone else wrote after the plan was made fails the
    apply (everything written is undone) and stays as they wrote it."""
    real_write = apply_module.write_documents

    async def racing_write(db: object, collection: str, writes: object) -> None:
        if collection == "monitors":
            stored[mongo_db_name]["monitors"].insert_one({"_id": "e-service-home", "theirs": True})
        await real_write(db, collection, writes)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module, "write_documents", racing_write)
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert "what was written was undone" in result.output
    assert list(stored[mongo_db_name]["monitors"].find({})) == [{"_id": "e-service-home", "theirs": True}]
    assert ids(stored, mongo_db_name, "systems") == []
    assert asyncio.run(kv_keys(nats_url)) == [], "the monitors bucket is put back too"


def only_teams(config: Path) -> None:
    """The folder holds one teams.yaml (the example's teams, without the escalation to people)."""
    for path in config.iterdir():
        path.unlink()
    (config / "teams.yaml").write_text(
        "teams:\n  - id: noc\n    name: NOC\n    email: [noc@example.go.th]\n"
        "  - id: apps\n    name: Apps\n    email: [apps@example.go.th]\n",
        encoding="utf-8",
    )


def no_monitors(config: Path) -> None:
    """Every file as it was without its monitors, and a monitors.yaml saying ``monitors: []``."""
    for path in config.iterdir():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data.pop("monitors", None)
        path.write_text(yaml.safe_dump(data, allow_unicode=True) if data else "", encoding="utf-8")
    (config / "monitors.yaml").write_text("monitors: []\n", encoding="utf-8")


@pytest.mark.parametrize("edit", [only_teams, no_monitors], ids=["only-teams-yaml", "monitors-empty-list"])
def test_each_destructive_folder_is_refused_without_the_flags_and_applied_with_them(
    env: None,
    config: Path,
    stored: MongoClient[Document],
    mongo_db_name: str,
    nats_url: str,
    mongo_url: str,
    edit: Callable[[Path], None],
) -> None:
    assert fao("apply", "--yes", str(config)).exit_code == 0
    monitors = ids(stored, mongo_db_name, "monitors")
    keys = asyncio.run(kv_keys(nats_url))
    assert len(monitors) == 19
    edit(config)

    kept = fao("apply", "--yes", str(config))
    assert kept.exit_code == 0, kept.output
    assert "19 kept (not in the files; --prune removes)" in kept.output
    assert ids(stored, mongo_db_name, "monitors") == monitors
    assert asyncio.run(kv_keys(nats_url)) == keys

    refused = fao("apply", "--yes", "--prune", str(config))
    assert refused.exit_code == 1
    assert "19 of 19 monitors" in refused.output
    assert "add --force" in refused.output
    assert ids(stored, mongo_db_name, "monitors") == monitors
    assert asyncio.run(kv_keys(nats_url)) == keys

    forced = fao("apply", "--yes", "--prune", "--force", str(config))
    assert forced.exit_code == 0, forced.output
    assert ids(stored, mongo_db_name, "monitors") == []
    assert asyncio.run(kv_keys(nats_url)) == []
    assert asyncio.run(check_drift(mongo_url, mongo_db_name, nats_url, config)).clean


def test_a_process_that_dies_between_the_kv_sync_and_the_mongodb_write_is_found_and_completed(
    env: None,
    config: Path,
    stored: MongoClient[Document],
    mongo_db_name: str,
    nats_url: str,
    mongo_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The buckets are written, MongoDB is not, and nothing is undone (as when the process is
    killed): `fao apply --check` exits 1 naming the split, and the next apply completes it."""
    assert fao("apply", "--yes", str(config)).exit_code == 0
    before_docs = list(stored[mongo_db_name]["monitors"].find({}))
    monitors = config / "monitors.yaml"
    monitors.write_text(
        monitors.read_text(encoding="utf-8")
        + "  - id: newcomer\n    system: e-service\n    check: {type: tcp, host: 127.0.0.1, port: 9}\n",
        encoding="utf-8",
    )

    async def dies(*args: object, **kwargs: object) -> None:
        raise OSError("killed (injected)")

    async def no_undo(*args: object) -> None:
        return None

    with monkeypatch.context() as patched:
        patched.setattr(apply_module, "write_documents", dies)
        patched.setattr(apply_module, "_undo", no_undo)
        assert fao("apply", "--yes", str(config)).exit_code == 1
    assert list(stored[mongo_db_name]["monitors"].find({})) == before_docs
    assert monitor_key("newcomer") in asyncio.run(kv_keys(nats_url))

    check = fao("apply", "--check")
    assert check.exit_code == 1
    assert "monitor newcomer: in KV only" in check.output
    assert "drift: 1 difference(s) between MongoDB and KV" in check.output

    completed = fao("apply", "--yes", str(config))
    assert completed.exit_code == 0, completed.output
    assert "+ monitor newcomer" in completed.output
    again = fao("apply", "--check", str(config))
    assert again.exit_code == 0, again.output
    assert "newcomer" in ids(stored, mongo_db_name, "monitors")


def answer_on_a_terminal(config: Path, answer: str) -> tuple[int, str]:
    """`fao apply DIR` in its own process on a pseudo-terminal, answering its prompt."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fao.cli", "apply", str(config)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
    )
    os.close(follower)
    output = b""
    answered = False
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            assert ready, f"no output for 60 s: {output!r}"
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"change(s)? [y/N]:" in output:
                os.write(leader, answer.encode() + b"\n")
                answered = True
        return process.wait(timeout=60), output.decode(errors="replace")
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_on_a_terminal_apply_asks_first_and_writes_only_on_yes(
    env: None, config: Path, stored: MongoClient[Document], mongo_db_name: str
) -> None:
    code, output = answer_on_a_terminal(config, "n")
    assert "apply 30 change(s)? [y/N]:" in output
    assert code == 1, output
    assert "nothing was changed" in output
    assert ids(stored, mongo_db_name, "monitors") == []

    code, output = answer_on_a_terminal(config, "y")
    assert code == 0, output
    assert "applied: " in output
    assert len(ids(stored, mongo_db_name, "monitors")) == 19


def test_duplicate_keys_and_dependency_cycles_are_refused_with_file_and_line(
    env: None, config: Path, stored: MongoClient[Document], mongo_db_name: str
) -> None:
    (config / "extra.yaml").write_text(
        "systems:\n  - id: a\n    name: A\n    name: A again\n    team: noc\n    depends_on: [b]\n"
        "  - id: b\n    name: B\n    team: noc\n    depends_on: [a]\n",
        encoding="utf-8",
    )
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert f"{config / 'extra.yaml'}:4: name: duplicate key (first at line 3)" in result.output
    assert "config rejected: 1 problem(s); nothing was changed" in result.output
    (config / "extra.yaml").write_text(
        "systems:\n  - id: a\n    name: A\n    team: noc\n    depends_on: [b]\n"
        "  - id: b\n    name: B\n    team: noc\n    depends_on: [a]\n",
        encoding="utf-8",
    )
    result = fao("apply", "--yes", str(config))
    assert result.exit_code == 1
    assert f"{config / 'extra.yaml'}:2: systems.depends_on: dependency cycle: a -> b -> a" in result.output
    assert "Traceback" not in result.output
    assert ids(stored, mongo_db_name, "systems") == []


def drop_monitors(config: Path, count: int) -> list[str]:
    """Remove the first ``count`` monitors of checks.yaml; return their ids."""
    path = config / "checks.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    dropped = [m["id"] for m in data["monitors"][:count]]
    data["monitors"] = data["monitors"][count:]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return dropped


def test_the_force_threshold_is_more_than_a_fifth_of_a_kind(
    env: None, tmp_path: Path, stored: MongoClient[Document], mongo_db_name: str
) -> None:
    """Of 19 monitors, pruning 3 (16 %) needs no --force, pruning 4 more of the 16 left (25 %) does."""
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    assert fao("apply", "--yes", str(config)).exit_code == 0
    few = drop_monitors(config, 3)
    pruned = fao("apply", "--yes", "--prune", str(config))
    assert pruned.exit_code == 0, pruned.output
    assert not set(few) & set(ids(stored, mongo_db_name, "monitors"))
    many = drop_monitors(config, 4)
    refused = fao("apply", "--yes", "--prune", str(config))
    assert refused.exit_code == 1
    assert "this would remove 4 of 16 monitors (more than 20%)" in refused.output
    assert set(many) <= set(ids(stored, mongo_db_name, "monitors"))
