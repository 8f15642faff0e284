"""`fao export`: the applied inventory back as YAML; apply → export → apply changes nothing. On
real NATS and FerretDB."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner, Result

from fao.cli.main import app
from fao.schemas.loader import load_inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


def fao(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def round_trip(source: Path, tmp_path: Path) -> Path:
    applied = fao("apply", "--yes", str(source))
    assert applied.exit_code == 0, applied.output
    out = tmp_path / "exported"
    exported = fao("export", str(out))
    assert exported.exit_code == 0, exported.output
    again = fao("apply", "--yes", "--prune", str(out))
    assert again.exit_code == 0, again.output
    assert again.output.rstrip().endswith("; 0 change(s)"), again.output
    return out


def test_example_config_round_trips_and_the_output_is_stable(env: None, tmp_path: Path) -> None:
    out = round_trip(EXAMPLES, tmp_path)
    original, exported = load_inventory(EXAMPLES), load_inventory(out)
    for kind in ("teams", "people", "systems", "monitors", "maintenance"):
        by_id = sorted(getattr(original, kind), key=lambda item: item.id)
        assert getattr(exported, kind) == by_id, kind
    text = (out / "monitors.yaml").read_text(encoding="utf-8")
    assert "type: http" in text
    assert "schema_version" not in text
    assert "หน้าแรก e-Service" in text, "Thai stays text, not escapes"
    second = tmp_path / "second"
    assert fao("export", str(second)).exit_code == 0
    for path in out.iterdir():
        assert (second / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_thousand_systems_round_trip(env: None, tmp_path: Path) -> None:
    source = tmp_path / "generated"
    source.mkdir()
    teams = "teams:\n" + "".join(f"  - id: team-{t}\n    name: ทีม {t}\n" for t in range(20))
    systems = "systems:\n" + "".join(
        f"  - id: sys-{n}\n    name: System {n}\n    name_th: ระบบ {n}\n    team: team-{n % 20}\n"
        + (f"    depends_on: [sys-{n - 1}]\n" if n % 10 else "")
        for n in range(1000)
    )
    monitors = "monitors:\n" + "".join(
        f"  - id: mon-{n}\n    system: sys-{n}\n    interval: {30 + n % 5}s\n"
        f"    check: {{type: tcp, host: 127.0.0.{1 + n % 200}, port: {1000 + n}}}\n"
        for n in range(1000)
    )
    for name, text in (("teams", teams), ("systems", systems), ("monitors", monitors)):
        (source / f"{name}.yaml").write_text(text, encoding="utf-8")
    out = round_trip(source, tmp_path)
    assert len(load_inventory(out).systems) == 1000


def test_export_refuses_a_folder_with_yaml_files_and_says_when_nothing_is_applied(
    env: None, tmp_path: Path
) -> None:
    empty = fao("export", str(tmp_path / "nothing"))
    assert empty.exit_code == 1
    assert "nothing to export" in empty.output
    occupied = tmp_path / "occupied"
    shutil.copytree(EXAMPLES, occupied)
    refused = fao("export", str(occupied))
    assert refused.exit_code == 1
    assert "export into an empty folder" in refused.output
    assert "Traceback" not in refused.output
    # a folder that cannot be made is said as such (was: "cannot reach MongoDB (FileNotFoundError)")
    (tmp_path / "a-file").write_text("x")
    unwritable = fao("export", str(tmp_path / "a-file" / "out"))
    assert unwritable.exit_code == 1
    assert f"cannot write {tmp_path / 'a-file' / 'out'}: Not a directory" in unwritable.output
    assert "MongoDB" not in unwritable.output
