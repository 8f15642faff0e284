"""The `fao` command as a user runs it: exit codes and messages, against real NATS and FerretDB."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from fao.cli.demo_target import DemoTarget
from fao.cli.main import app
from fao.runtime.launch import free_port
from fao.runtime.store import Document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


def test_apply_prints_diff_then_nothing_on_reapply(env: None) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["apply", "--yes", str(EXAMPLES)])
    assert first.exit_code == 0, first.output
    assert "+ monitor e-service-home" in first.output
    assert (
        "applied: 4 teams, 2 people, 4 systems, 19 monitors, 1 maintenance window(s); 30 change(s)"
        in first.output
    )
    again = runner.invoke(app, ["apply", "--yes", str(EXAMPLES)])
    assert again.exit_code == 0
    assert "0 change(s)" in again.output


def test_apply_bad_file_exits_1_with_file_line_and_no_traceback(env: None, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    (config / "teams.yaml").write_text("teams:\n  - id: Bad Id\n    name: x\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["apply", "--yes", str(config)])
    assert result.exit_code == 1
    assert f"{config / 'teams.yaml'}:2: teams[0].id: String should match pattern" in result.output
    assert "nothing was changed" in result.output
    assert "Traceback" not in result.output


def test_apply_dry_run_writes_nothing(env: None) -> None:
    runner = CliRunner()
    dry = runner.invoke(app, ["apply", "--dry-run", str(EXAMPLES)])
    assert dry.exit_code == 0
    assert "would apply" in dry.output
    real = runner.invoke(app, ["apply", "--yes", str(EXAMPLES)])
    assert "30 change(s)" in real.output, "the dry run changed nothing"


def test_unreachable_database_is_one_clear_line(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    closed = free_port()
    monkeypatch.setenv("FAO_NATS_URL", nats_url)
    monkeypatch.setenv("FAO_MONGO_URL", f"mongodb://127.0.0.1:{closed}/?serverSelectionTimeoutMS=300")
    for args in (["apply", "--yes", str(EXAMPLES)], ["report", "2026-10", "--out", str(tmp_path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, args
        assert "cannot reach" in result.output
        assert "Traceback" not in result.output
        # what failed, not pymongo's timeouts and topology dump (was ≈700 characters on one line)
        assert f"Connect call failed ('127.0.0.1', {closed})" in result.output, result.output
        assert "Topology" not in result.output, result.output
        assert len(result.output.strip()) < 200, result.output


def test_an_unreachable_nats_is_one_line_without_a_traceback(
    env: None, monkeypatch: pytest.MonkeyPatch, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    """As processes, stderr included (nats-py logs each failed connect with its traceback unless
    told not to): no hang, no traceback; commands that need NATS exit 1 and change nothing."""
    assert CliRunner().invoke(app, ["apply", "--yes", str(EXAMPLES)]).exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text("", encoding="utf-8")
    monkeypatch.setenv("FAO_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    for args in (
        ["doctor"],
        ["apply", "--yes", "--prune", "--force", str(empty)],
        ["incidents", "ack", "inc-1"],
        ["people", "forget", "malee", "--yes"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "fao.cli", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert "Traceback" not in done.stdout + done.stderr, (args, done.stderr)
        if args[0] == "people":  # erased in MongoDB; only the count of bus events is unknown
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        else:
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert "cannot reach" in done.stderr, (args, done.stderr)
    client: MongoClient[Document] = MongoClient(mongo_url)
    try:
        assert client[mongo_db_name]["monitors"].count_documents({}) == 19, "apply --prune wrote nothing"
    finally:
        client.close()


def test_report_rejects_a_bad_month_clearly(env: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "2026-13", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "month must be 01-12" in result.output
    assert "Traceback" not in result.output


def test_report_writes_html_and_json_for_an_empty_month(env: None, tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["apply", "--yes", str(EXAMPLES)])
    result = runner.invoke(app, ["report", "2026-10", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "fao-report-2026-10.json").read_text())
    assert {row["system_id"] for row in data["systems"]} == {
        "core-network",
        "e-service",
        "mail",
        "shared-services",
    }
    assert all(row["incident_count"] == 0 for row in data["systems"])
    assert "ตุลาคม" in (tmp_path / "fao-report-2026-10.html").read_text()


def test_demo_target_is_down_for_the_end_of_each_period() -> None:
    demo = DemoTarget("127.0.0.1", 0, period=120, outage=40, started=1000.0)
    assert not demo.is_down(1000.0)
    assert not demo.is_down(1079.9)
    assert demo.is_down(1080.0)
    assert demo.is_down(1119.9)
    assert not demo.is_down(1120.0)


def test_incidents_lists_open_ones_with_thai_names(env: None, mongo_db_name: str, mongo_url: str) -> None:
    import asyncio
    from datetime import UTC, datetime

    from fao.runtime.store import connect
    from fao.schemas import Incident

    runner = CliRunner()
    runner.invoke(app, ["apply", "--yes", str(EXAMPLES)])
    assert "no open incidents" in runner.invoke(app, ["incidents"]).output

    async def insert() -> None:
        client = connect(mongo_url)
        for i, status in enumerate(("open", "resolved")):
            inc = Incident(
                id=f"inc-{i}", system_id="e-service", status=status, title="หน้าแรก: HTTP 503",
                started_at=datetime(2026, 11, 25, 1, i, tzinfo=UTC),
                resolved_at=datetime(2026, 11, 25, 2, 0, tzinfo=UTC) if status == "resolved" else None,
            )  # fmt: skip
            await client[mongo_db_name]["incidents"].insert_one({"_id": inc.id, **inc.model_dump()})
        await client.close()

    asyncio.run(insert())
    open_only = runner.invoke(app, ["incidents"])
    assert open_only.exit_code == 0
    assert "inc-0" in open_only.output
    assert "inc-1" not in open_only.output
    assert "ระบบบริการอิเล็กทรอนิกส์ (e-Service)" in open_only.output
    assert "25 พ.ย. 2569 08:00 น." in open_only.output
    everything = runner.invoke(app, ["incidents", "--all"]).output.splitlines()
    assert [line.split()[0] for line in everything] == ["inc-1", "inc-0"], "newest first"
    assert "นาน 59 นาที" in everything[0]


def test_check_runs_one_monitor_now_and_exits_by_outcome(tmp_path: Path) -> None:
    """`fao check` probes from this machine: 0 and UP for a listening port, 1 and DOWN otherwise."""
    import socket

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    open_port, closed_port = listening.getsockname()[1], free_port()
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    text = (config / "monitors.yaml").read_text()
    (config / "monitors.yaml").write_text(text.replace("port: 18080", f"port: {open_port}"))
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["check", "core-gateway-tcp", "--config", str(config)])
        assert up.exit_code == 0, up.output
        assert "core-gateway-tcp [tcp] UP in" in up.output
    finally:
        listening.close()
    (config / "monitors.yaml").write_text(text.replace("port: 18080", f"port: {closed_port}"))
    down = runner.invoke(app, ["check", "core-gateway-tcp", "--config", str(config)])
    assert down.exit_code == 1
    assert "DOWN (connection_refused)" in down.output
    unknown = runner.invoke(app, ["check", "nope", "--config", str(config)])
    assert unknown.exit_code == 1
    assert "no monitor 'nope'" in unknown.output
    assert "core-gateway-tcp" in unknown.output
