"""`fao apply --check`: drift between the config files, MongoDB and the KV buckets, found on real
NATS and FerretDB after tampering with one place by hand, and repaired by `fao apply DIR`."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import nats
import pytest
from typer.testing import CliRunner, Result

from fao.cli.main import app
from fao.runtime.bus import maintenance_bucket, monitors_bucket
from fao.runtime.launch import free_port
from fao.runtime.store import connect
from fao.schemas import Monitor
from fao.schemas.subjects import maintenance_key, monitor_key

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


def fao(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def applied(directory: Path = EXAMPLES) -> None:
    result = fao("apply", "--yes", "--prune", "--force", str(directory))
    assert result.exit_code == 0, result.output


def assert_no_drift(*args: str) -> None:
    result = fao("apply", "--check", *args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("no drift"), result.output


def drift_lines(*args: str) -> list[str]:
    """The difference lines of a check that must find drift (the summary line left out)."""
    result = fao("apply", "--check", *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("drift: "), result.output
    assert "to repair" in lines[-1]
    return lines[:-1]


async def kv_edit(
    nats_url: str, *, put: dict[str, bytes] | None = None, delete: tuple[str, ...] = ()
) -> None:
    """Write the monitors bucket straight, as someone with bus access could."""
    nc = await nats.connect(nats_url)
    try:
        kv = await monitors_bucket(nc.jetstream())
        for key, value in (put or {}).items():
            await kv.put(key, value)
        for key in delete:
            await kv.delete(key)
    finally:
        await nc.close()


async def kv_monitor(nats_url: str, monitor_id: str) -> Monitor:
    nc = await nats.connect(nats_url)
    try:
        kv = await monitors_bucket(nc.jetstream())
        return Monitor.model_validate_json((await kv.get(monitor_key(monitor_id))).value or b"")
    finally:
        await nc.close()


def test_applied_config_has_no_drift_and_a_changed_kv_value_is_named(env: None, nats_url: str) -> None:
    applied()
    assert_no_drift()
    assert_no_drift(str(EXAMPLES))

    original = asyncio.run(kv_monitor(nats_url, "e-service-home"))
    changed = original.model_copy(update={"interval": original.interval * 10})
    asyncio.run(kv_edit(nats_url, put={monitor_key("e-service-home"): changed.model_dump_json().encode()}))
    result = fao("apply", "--check")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "monitor e-service-home: KV differs from MongoDB (interval)",
        "drift: 1 difference(s) between MongoDB and KV; run `fao apply <dir>` to repair"
        " (KV and MongoDB are rewritten from the config)",
    ]
    with_config = drift_lines(str(EXAMPLES))
    assert with_config == ["monitor e-service-home: KV differs from MongoDB (interval)"]

    applied()
    assert_no_drift()
    assert asyncio.run(kv_monitor(nats_url, "e-service-home")) == original


def test_deleted_and_kv_only_keys_are_found_and_reapply_repairs(env: None, nats_url: str) -> None:
    applied()
    rogue = asyncio.run(kv_monitor(nats_url, "e-service-home")).model_copy(update={"id": "rogue"})
    asyncio.run(
        kv_edit(
            nats_url,
            put={
                monitor_key("rogue"): rogue.model_dump_json().encode(),  # probed, yet applied by nobody
                monitor_key("garbled"): b"{not json",
                "stray": b"x",
            },
            delete=(monitor_key("core-gateway-tcp"),),
        )
    )
    assert drift_lines() == [
        "monitor core-gateway-tcp: in MongoDB, missing from KV",
        "monitor garbled: in KV only",
        "monitor rogue: in KV only",
        "fao-monitors key stray: not a monitor key (nothing reads it)",
    ]

    applied()
    assert_no_drift()


def test_maintenance_windows_of_both_sources_are_compared(env: None, nats_url: str) -> None:
    applied()
    added = fao(
        "maintenance", "add", "--system", "mail", "--reason", "เปลี่ยนดิสก์", "--duration", "2h", "--id", "disk"
    )
    assert added.exit_code == 0, added.output
    assert_no_drift(str(EXAMPLES))  # a window made with `fao maintenance add` is not config drift

    async def drop_windows() -> None:
        nc = await nats.connect(nats_url)
        try:
            kv = await maintenance_bucket(nc.jetstream())
            await kv.delete(maintenance_key("disk"))
            await kv.delete(maintenance_key("mail-weekly-patch"))
        finally:
            await nc.close()

    asyncio.run(drop_windows())
    assert drift_lines() == [
        "maintenance disk: in MongoDB, missing from KV",
        "maintenance mail-weekly-patch: in MongoDB, missing from KV",
    ]
    applied()
    assert_no_drift(str(EXAMPLES))


def test_config_folder_is_compared_with_mongodb(
    env: None, tmp_path: Path, mongo_url: str, mongo_db_name: str
) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    applied(config)
    text = (config / "monitors.yaml").read_text()
    head, _, _ = text.partition("  - id: core-gateway-tcp")
    (config / "monitors.yaml").write_text(head.replace("interval: 5s", "interval: 7s"))
    assert_no_drift()  # MongoDB and KV still agree with each other: the edit is not applied yet
    assert drift_lines(str(config)) == [
        "monitor core-gateway-tcp: in MongoDB, not in the config",
        "monitor e-service-home: MongoDB differs from the config (interval)",
    ]

    async def edit_mongo() -> None:
        client = connect(mongo_url)
        try:
            await client[mongo_db_name]["systems"].update_one({"_id": "mail"}, {"$set": {"name": "x"}})
            await client[mongo_db_name]["monitors"].update_one(
                {"_id": "mail-webmail"}, {"$set": {"timeout": 1.5}}
            )
        finally:
            await client.close()

    asyncio.run(edit_mongo())
    assert drift_lines(str(config)) == [
        "system mail: MongoDB differs from the config (name)",
        "monitor core-gateway-tcp: in MongoDB, not in the config",
        "monitor e-service-home: MongoDB differs from the config (interval)",
        "monitor mail-webmail: KV differs from MongoDB (timeout)",
        "monitor mail-webmail: MongoDB differs from the config (timeout)",
        "monitor mail-webmail: MongoDB differs from what fao apply wrote (edited by hand?)",
    ]
    # The edit kept the collection's count and size: apply's record cannot tell, --rescan reads it.
    assert f"run `fao apply --rescan {config}` to repair" in fao("apply", "--check", str(config)).output

    repaired = fao("apply", "--yes", "--prune", "--rescan", str(config))
    assert repaired.exit_code == 0, repaired.output
    assert "~ monitor mail-webmail" in repaired.output
    assert_no_drift(str(config))


def test_bad_config_folder_is_rejected_before_comparing(env: None, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    (config / "teams.yaml").write_text("teams:\n  - id: Bad Id\n    name: x\n", encoding="utf-8")
    result = fao("apply", "--check", str(config))
    assert result.exit_code == 1
    assert f"{config / 'teams.yaml'}:2: teams[0].id" in result.output
    assert "nothing was compared" in result.output


def test_unreachable_servers_are_one_red_line(
    nats_url: str, mongo_url: str, mongo_db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAO_MONGO_DB", mongo_db_name)
    monkeypatch.setenv("FAO_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FAO_MONGO_URL", mongo_url)
    no_nats = fao("apply", "--check", str(EXAMPLES))
    monkeypatch.setenv("FAO_NATS_URL", nats_url)
    monkeypatch.setenv("FAO_MONGO_URL", f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300")
    no_mongo = fao("apply", "--check")
    for result, server in ((no_nats, "NATS"), (no_mongo, "MongoDB")):
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, result.output
        assert lines[0].startswith(f"cannot reach {server}"), result.output


def test_apply_without_a_folder_or_with_both_flags_is_refused(env: None) -> None:
    assert "give the config folder" in fao("apply").output
    both = fao("apply", "--check", "--dry-run", str(EXAMPLES))
    assert both.exit_code == 1
    assert "leave out --dry-run" in both.output
