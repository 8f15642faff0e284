"""`fao report` as a user runs it, against real NATS and FerretDB: fiscal year to date, English,
chosen formats, Thai digits, maintenance included, progress steps and `--rebuild` from the stream."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from nats.js import JetStreamContext
from typer.testing import CliRunner

from fao.cli.main import app
from fao.reporter.monthly import produce_report, report_request
from fao.reporter.read_model import FACTS, FactStore
from fao.runtime.launch import free_port
from fao.runtime.store import connect
from fao.schemas import Incident, IncidentEvent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"
T0 = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)


def outage(system_id: str = "mail") -> IncidentEvent:
    incident = Incident.model_validate(
        {"id": f"inc-{system_id}", "system_id": system_id, "status": "resolved", "title": "ระบบไม่ตอบสนอง",
         "started_at": T0, "resolved_at": T0 + timedelta(hours=2),
         "maintenance": [{"start": T0, "end": T0 + timedelta(hours=1)}]}
    )  # fmt: skip
    return IncidentEvent(event_id=uuid4(), type="resolved", at=T0 + timedelta(hours=2), incident=incident)


async def record(mongo_url: str, mongo_db_name: str, event: IncidentEvent) -> None:
    client = connect(mongo_url)
    try:
        await FactStore(client[mongo_db_name]).record(event)
    finally:
        await client.close()


def test_fiscal_year_in_english_with_chosen_formats(
    env: None, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(EXAMPLES)]).exit_code == 0
    asyncio.run(record(mongo_url, mongo_db_name, outage()))
    result = runner.invoke(
        app,
        [
            "report",
            "fy2570",
            "--language",
            "en",
            "--format",
            "json",
            "--format",
            "xlsx",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        str(tmp_path / "fao-report-fy2570-en.json"),
        str(tmp_path / "fao-report-fy2570-en.xlsx"),
    ]
    document = json.loads((tmp_path / "fao-report-fy2570-en.json").read_text())
    assert (document["period"]["kind"], document["period"]["first_month"]) == ("fiscal_year", "2026-10")
    mail = next(r for r in document["systems"] if r["system_id"] == "mail")
    assert (mail["downtime_seconds"], mail["planned_downtime_seconds"]) == (3600, 3600)


def test_maintenance_included_and_thai_digits(
    env: None, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(EXAMPLES)]).exit_code == 0
    asyncio.run(record(mongo_url, mongo_db_name, outage()))
    args = [
        "report",
        "2026-10",
        "--include-maintenance",
        "--thai-digits",
        "--format",
        "json",
        "--format",
        "html",
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "fao-report-2026-10.json").read_text())
    assert document["maintenance_included"] is True
    assert next(r for r in document["systems"] if r["system_id"] == "mail")["downtime_seconds"] == 7200
    html = (tmp_path / "fao-report-2026-10.html").read_text()
    assert "ประจำเดือนตุลาคม พ.ศ. ๒๕๖๙" in html
    assert "นับรวมเป็นเวลาหยุดทำงานด้วย" in html


async def _insert_broken_fact(mongo_url: str, mongo_db_name: str) -> None:
    client = connect(mongo_url)
    try:
        await client[mongo_db_name][FACTS].insert_one(
            {"_id": "inc-broken", "system_id": "mail", "started_at": T0}  # no title, severity...
        )
    finally:
        await client.close()


def test_a_bad_stored_fact_is_named_on_the_report_and_the_rest_is_counted(
    env: None, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--yes", str(EXAMPLES)]).exit_code == 0
    asyncio.run(record(mongo_url, mongo_db_name, outage()))
    asyncio.run(_insert_broken_fact(mongo_url, mongo_db_name))
    args = ["report", "2026-10", "--format", "json", "--format", "html", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "fao-report-2026-10.json").read_text())
    [skipped] = document["skipped_facts"]
    assert skipped.startswith("inc-broken: ")
    assert [i["incident_id"] for i in document["incidents"]] == ["inc-mail"]
    html = (tmp_path / "fao-report-2026-10.html").read_text()
    assert "ข้อมูลเหตุการณ์ 1 รายการอ่านไม่ได้และไม่ได้นับรวม" in html


def test_bad_language_and_missing_period_are_one_line(env: None, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", "2026-10", "--language", "fr", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown language 'fr'" in result.output
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 1
    assert "give a period" in result.output
    result = runner.invoke(app, ["report", "2026-10", "--format", "docx", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown report format 'docx'" in result.output


def test_a_period_not_started_a_bad_folder_and_worst_are_one_line(env: None, tmp_path: Path) -> None:
    """Each refusal names what is wrong in one line: the period asked for (not the one before it),
    the folder that cannot be written (not "cannot reach MongoDB"), the allowed --worst values."""
    runner = CliRunner()
    result = runner.invoke(app, ["report", "2399-01", "--format", "json", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        "cannot report on 2399-01: it starts at 2399-01-01T00:00:00+07:00 (Bangkok), after now"
        in result.output
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, reason in ((blocker, "File exists"), (blocker / "sub", "Not a directory")):
        result = runner.invoke(app, ["report", "2026-10", "--format", "json", "--out", str(out)])
        assert result.exit_code == 1
        assert result.output.strip().splitlines()[-1] == f"cannot write the report to {out}: {reason}"
    result = runner.invoke(app, ["report", "2026-10", "--worst", "-1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "-1 is not in the range 0<=x<=100" in result.output
    assert "Traceback" not in result.output
    assert "validation error" not in result.output


async def test_progress_names_every_step_in_order(mongo_url: str, mongo_db_name: str, tmp_path: Path) -> None:
    """The progress bar advances once per step: reading, figures, then each format."""
    steps: list[str] = []
    request = report_request("2026-10", formats=("json", "xlsx"))
    now = datetime(2026, 11, 2, tzinfo=UTC)
    paths = await produce_report(mongo_url, mongo_db_name, request, tmp_path, now, steps.append)
    assert steps == ["facts", "figures", "json", "xlsx"] == list(request.steps())
    assert [p.name for p in paths] == ["fao-report-2026-10.json", "fao-report-2026-10.xlsx"]


async def test_rebuild_replays_the_stream_before_reporting(
    env: None, js: JetStreamContext, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    event = outage("e-service")
    await js.publish("fao.incidents.v1.resolved", event.model_dump_json().encode())
    args = ["report", "2026-10", "--rebuild", "--format", "json", "--out", str(tmp_path)]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        lines[0]
        == "rebuilt report_facts: 1 events, 1 incidents, 1 facts written, 0 unreadable events skipped"
    )
    document = json.loads(await asyncio.to_thread((tmp_path / "fao-report-2026-10.json").read_text))
    assert [i["incident_id"] for i in document["incidents"]] == ["inc-e-service"]


async def test_progress_bar_path_writes_the_same_files(
    env: None, js: JetStreamContext, tmp_path: Path
) -> None:
    """With the bar on (as on a terminal) the report and the rebuild run through rich's Progress."""
    from fao.cli.report_progress import run_report
    from fao.runtime.settings import ServiceSettings

    lines = await asyncio.to_thread(
        run_report, ServiceSettings(), "2026-10", tmp_path, formats=["json"], language="th",
        thai_digits=False, include_maintenance=False, worst=3, rebuild=True, show_progress=True,
    )  # fmt: skip
    assert lines[0].startswith("rebuilt report_facts: 0 events")
    assert lines[1:] == [str(tmp_path / "fao-report-2026-10.json")]


def test_rebuild_without_the_stream_says_so(env: None, nats_url: str) -> None:
    result = CliRunner().invoke(app, ["report", "--rebuild"])
    assert result.exit_code == 1
    assert "no stream FAO_INCIDENTS on this NATS server" in result.output
    assert "Traceback" not in result.output


def test_rebuild_with_nats_down_fails_in_seconds(
    env: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A refused NATS connection is one line within seconds (nats-py's defaults retried for about
    two minutes and logged a traceback per attempt)."""
    monkeypatch.setenv("FAO_NATS_URL", f"nats://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    result = CliRunner().invoke(app, ["report", "--rebuild"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "cannot reach MongoDB or NATS (NoServersError): nats: no servers available for connection"
    ]
    assert elapsed < 20, elapsed
    assert "Traceback" not in capfd.readouterr().err
