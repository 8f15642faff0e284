"""The audit log: every inventory change with who, when, source and the fields before and after;
`fao audit [--since]` lists it. On real NATS and FerretDB."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fao.cli.audit_log import parse_since
from fao.cli.main import app
from fao.runtime.audit import HIDDEN, Change

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


@pytest.fixture
def as_somchai(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "somchai")


def fao(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_apply_and_maintenance_changes_are_listed_with_their_fields(as_somchai: None, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    assert fao("apply", "--yes", str(config)).exit_code == 0
    monitors = config / "monitors.yaml"
    monitors.write_text(
        monitors.read_text(encoding="utf-8").replace("quiet_period: 15s", "quiet_period: 20s", 1),
        encoding="utf-8",
    )
    assert fao("apply", "--yes", str(config)).exit_code == 0
    added = fao(
        "maintenance", "add", "--id", "swap", "--system", "mail", "--reason", "swap disks", "--duration", "1h"
    )
    assert added.exit_code == 0, added.output
    assert fao("maintenance", "end", "swap").exit_code == 0

    result = fao("audit")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    heads = [line for line in lines if not line.startswith(" ")]
    assert [h.split("] ", 1)[1].split(":")[0].split(" ")[0] for h in heads] == [
        "apply",
        "apply",
        "maintenance.add",
        "maintenance.end",
    ]
    assert all(" somchai [" in h for h in heads), heads
    assert f"apply {config}" in heads[1]
    assert "  ~ monitors/e-service-home" in lines
    assert "      quiet_period: 15.0 → 20.0" in lines
    assert "  + maintenance/swap" in lines
    assert any(line.startswith("      ended_at: None → ") for line in lines), lines

    recent = fao("audit", "--since", "1h", "--limit", "1")
    assert recent.output.splitlines()[0].endswith("maintenance.end: 1 change(s)")
    assert fao("audit", "--since", "2999-01-01").output.strip() == "no audit entries since 2999-01-01"
    bad = fao("audit", "--since", "yesterday-ish")
    assert bad.exit_code == 1
    assert "use e.g. 7d" in bad.output


def test_personal_fields_are_named_not_logged() -> None:
    change = Change(
        "people",
        "somchai",
        "change",
        before={"name": "สมชาย", "phone": "081"},
        after={"name": "สมชาย", "phone": "082"},
    )
    assert change.doc()["diff"] == {"phone": {"before": HIDDEN, "after": HIDDEN}}
    monitor = Change(
        "monitors",
        "web",
        "change",
        before={"interval": 30.0, "id": "web"},
        after={"interval": 45.0, "id": "web"},
    )
    assert monitor.doc()["diff"] == {"interval": {"before": 30.0, "after": 45.0}}


def test_since_accepts_durations_and_bangkok_dates() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-01", now) == datetime(2026, 10, 31, 17, 0, tzinfo=UTC)
    assert parse_since("2026-11-01T00:00:00+00:00", now) == datetime(2026, 11, 1, tzinfo=UTC)
