"""``load_inventory``: the maintenance section and the cross-checks, as ``path:line: field: message``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from fao.schemas.loader import MAX_FILE_BYTES, ConfigError, Inventory, load_inventory
from fao.schemas.maintenance import BANGKOK

TEAMS = """\
teams:
  - id: noc
    name: NOC
  - id: apps
    name: Apps
"""

SYSTEMS = """\
systems:
  - id: core
    name: Core network
    team: noc
  - id: portal
    name: Portal
    team: apps
    depends_on: [core]
"""

MAINTENANCE = """\
maintenance:
  - id: core-upgrade
    reason: Core switch firmware
    systems: [core]
    start: 2026-12-01 22:00
    end: 2026-12-02 02:00
  - id: weekly-backup
    reason: Weekly backup
    teams: [apps]
    tags: [db]
    weekly: {days: [sun], at: 23:00, duration: 2h}
"""


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_inventory(folder)
    return [str(p) for p in caught.value.problems]


def test_maintenance_section_is_loaded(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path / "c", teams=TEAMS, systems=SYSTEMS, maintenance=MAINTENANCE))
    assert isinstance(inv, Inventory)
    assert [w.id for w in inv.maintenance] == ["core-upgrade", "weekly-backup"]
    one_off, weekly = inv.maintenance
    assert one_off.start == datetime(2026, 12, 1, 22, 0, tzinfo=BANGKOK)
    assert weekly.weekly is not None
    assert weekly.weekly.at == "23:00", "unquoted 23:00 (a YAML 1.1 base-60 number) still works"
    assert weekly.weekly.duration == 7200.0


def test_a_config_without_maintenance_has_none(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path / "c", teams=TEAMS, systems=SYSTEMS))
    assert inv.maintenance == []
    assert [s.id for s in inv.systems] == ["core", "portal"]


def test_window_referencing_unknown_system_and_team(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "c",
        teams=TEAMS,
        systems=SYSTEMS,
        maintenance=MAINTENANCE.replace("systems: [core]", "systems: [core, mail]").replace(
            "teams: [apps]", "teams: [dba]"
        ),
    )
    path = folder / "maintenance.yaml"
    assert problems(folder) == [
        f"{path}:2: maintenance.systems: unknown system 'mail'",
        f"{path}:7: maintenance.teams: unknown team 'dba'",
    ]


def test_duplicate_window_ids(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "c",
        teams=TEAMS,
        systems=SYSTEMS,
        maintenance=MAINTENANCE.replace("id: weekly-backup", "id: core-upgrade"),
    )
    path = folder / "maintenance.yaml"
    assert problems(folder) == [
        f"{path}:7: maintenance.id: duplicate id 'core-upgrade' (first defined at {path}:2)"
    ]


def test_invalid_window_points_at_its_field(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "c",
        teams=TEAMS,
        systems=SYSTEMS,
        maintenance=MAINTENANCE.replace("at: 23:00", "at: '25:00'").replace(
            "end: 2026-12-02 02:00", "end: soon"
        ),
    )
    path = folder / "maintenance.yaml"
    found = problems(folder)
    assert len(found) == 2
    assert found[0].startswith(f"{path}:6: maintenance[0].end: Input should be a valid datetime")
    assert found[1] == (
        f"{path}:11: maintenance[1].weekly: at: '25:00' is not a time of day as HH:MM (24-hour, Bangkok)"
    )


CYCLES = """\
systems:
  - id: dns
    name: DNS
    team: noc
    depends_on: [portal]
  - id: core
    name: Core
    team: noc
    depends_on: [dns]
  - id: portal
    name: Portal
    team: apps
    depends_on: [core, mail]
  - id: mail
    name: Mail
    team: apps
    depends_on: [mail]
  - id: web
    name: Web
    team: apps
    depends_on: [portal, web2]
  - id: web2
    name: Web 2
    team: apps
    depends_on: [web]
"""


def test_dependency_cycles_are_reported_once_each_with_their_path(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", teams=TEAMS, systems=CYCLES)
    path = folder / "systems.yaml"
    assert problems(folder) == [
        f"{path}:6: systems.depends_on: dependency cycle: core -> dns -> portal -> core",
        f"{path}:14: systems.depends_on: depends on itself",
        f"{path}:18: systems.depends_on: dependency cycle: web -> web2 -> web",
    ]


def test_two_cycles_through_one_system(tmp_path: Path) -> None:
    text = """\
systems:
  - id: a
    name: A
    team: noc
    depends_on: [b, c]
  - id: b
    name: B
    team: noc
    depends_on: [a]
  - id: c
    name: C
    team: noc
    depends_on: [a]
"""
    folder = write(tmp_path / "c", teams=TEAMS, systems=text)
    path = folder / "systems.yaml"
    assert problems(folder) == [
        f"{path}:2: systems.depends_on: dependency cycle: a -> b -> a",
        f"{path}:2: systems.depends_on: dependency cycle: a -> c -> a",
    ]


def test_a_long_chain_is_no_cycle_and_no_recursion_error(tmp_path: Path) -> None:
    lines = ["systems:"]
    for i in range(1500):
        lines += [f"  - id: s{i}", f"    name: S{i}", "    team: noc"]
        if i:
            lines.append(f"    depends_on: [s{i - 1}]")
    inv = load_inventory(write(tmp_path / "c", teams=TEAMS, systems="\n".join(lines) + "\n"))
    assert len(inv.systems) == 1500


def test_unknown_section_names_maintenance_as_allowed(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", teams=TEAMS, extra="windows: []\n")
    assert problems(folder) == [
        f"{folder / 'extra.yaml'}:1: windows: unknown section (use teams, people, systems, monitors, maintenance)"
    ]


PEOPLE_AND_ESCALATION = """\
teams:
  - id: noc
    name: NOC
    email: [noc@example.go.th]
    escalation:
      steps:
        - after: 10m
          people: [somchai]
        - after: 30m
          teams: [directors]
          repeat_every: 15m
  - id: directors
    name: Directors
people:
  - id: somchai
    name: สมชาย ใจดี
    role: หัวหน้าทีม
    teams: [noc]
    line_user_id: U0123456789abcdef0123456789abcdef
"""


def test_people_and_escalation_are_loaded(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path / "c", config=PEOPLE_AND_ESCALATION))
    (person,) = inventory.people
    assert (person.id, person.teams, person.line_user_id) == (
        "somchai",
        ["noc"],
        "U0123456789abcdef0123456789abcdef",
    )
    noc = inventory.teams[0]
    assert noc.escalation is not None
    assert [step.after for step in noc.escalation.steps] == [600.0, 1800.0]
    assert noc.escalation.steps[1].repeat_every == 900.0
    assert noc.channels.primary == "line"
    assert noc.email == ["noc@example.go.th"]


def test_unknown_person_and_team_references_are_reported(tmp_path: Path) -> None:
    text = PEOPLE_AND_ESCALATION.replace("people: [somchai]", "people: [nobody]").replace(
        "teams: [noc]\n", "teams: [ghosts]\n"
    )
    folder = write(tmp_path / "c", config=text)
    found = problems(folder)
    assert f"{folder / 'config.yaml'}:2: teams.escalation.steps.people: unknown person 'nobody'" in found
    assert f"{folder / 'config.yaml'}:15: people.teams: unknown team 'ghosts'" in found


def test_escalation_steps_out_of_order_are_refused(tmp_path: Path) -> None:
    text = PEOPLE_AND_ESCALATION.replace("after: 30m", "after: 5m")
    folder = write(tmp_path / "c", config=text)
    assert (
        f"{folder / 'config.yaml'}:6: teams[0].escalation: escalation steps must be in order of 'after'"
        in problems(folder)
    )


def test_duplicate_keys_are_errors_with_their_lines(tmp_path: Path) -> None:
    text = "teams:\n  - id: noc\n    name: NOC\n    name: Network\nsystems: []\nsystems: []\n"
    folder = write(tmp_path / "c", teams=text)
    assert problems(folder) == [
        f"{folder / 'teams.yaml'}:4: name: duplicate key (first at line 3)",
        f"{folder / 'teams.yaml'}:6: systems: duplicate key (first at line 5)",
    ]


def test_hidden_foreign_and_outside_files_are_left_out_with_a_note(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", teams=TEAMS)
    (folder / ".planted.yaml").write_text("teams:\n  - id: rogue\n    name: Rogue\n", encoding="utf-8")
    (folder / ".git").mkdir()
    (folder / ".git" / "x.yaml").write_text("teams: [", encoding="utf-8")
    (folder / "notes.txt").write_text("not config", encoding="utf-8")
    outside = write(tmp_path / "elsewhere", stray=TEAMS.replace("noc", "stray"))
    (folder / "linked.yaml").symlink_to(outside / "stray.yaml")
    (folder / "sub").symlink_to(outside, target_is_directory=True)
    inventory = load_inventory(folder)
    assert [team.id for team in inventory.teams] == ["noc", "apps"]
    assert inventory.notes == [
        f"{folder / '.git'}: hidden folder, not read",
        f"{folder / 'sub'}: link to a folder, not read (link the files instead)",
        f"{folder / '.planted.yaml'}: hidden file, not read",
        f"{folder / 'linked.yaml'}: link to a file outside {folder}, not read",
        f"{folder / 'notes.txt'}: not a .yaml/.yml file, not read",
    ]


def test_a_link_to_a_file_inside_the_folder_is_read_once(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", teams=TEAMS)
    (folder / "shared").mkdir()
    (folder / "shared" / "people.yml").write_text(
        "people:\n  - id: somchai\n    name: Somchai\n", encoding="utf-8"
    )
    (folder / "people.yaml").symlink_to(folder / "shared" / "people.yml")
    inventory = load_inventory(folder)
    assert [person.id for person in inventory.people] == ["somchai"]
    assert inventory.notes == [
        f"{folder / 'shared' / 'people.yml'}: the same file as {folder / 'people.yaml'}, read once"
    ]


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", teams=TEAMS)
    (folder / "huge.yaml").write_text("# " + "x" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    (found,) = problems(folder)
    assert found.startswith(f"{folder / 'huge.yaml'}:1: (file): file is ")
    assert found.endswith("bytes; the limit is 5,242,880 (split it up)")


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 0\nc: 0755\nd: 1:30\ne: 0x1f\nf: +3\ng: 1_000\n",
        "a: yes\nb: off\nc: ~\nd: null\ne: 1.5\nf: .inf\ng: 1e3\nh: ''\ni: '12'\n",
        "a: 2026-12-01\nb: 2026-12-01 22:00:00+07:00\nc: !!str 12\nd: !!int '7'\n",
        "base: &base {interval: 30s, zones: [dc1]}\nuse:\n  <<: *base\n  timeout: 5s\nlist: &l [1, 2]\nagain: *l\n",
        "? !!str 1\n: pair\n",
        "- a\n- {b: [c, {d: e}]}\n- []\n- {}\n",
    ],
)
def test_documents_are_read_as_yaml_safe_load_reads_them(text: str) -> None:
    """The loader's own construction (libyaml's nodes, built in one pass) gives what
    ``yaml.safe_load`` gives: integers in every YAML 1.1 form, booleans, timestamps, tags, merge
    keys and aliases included."""
    import yaml

    from fao.schemas.loader import LOADER, construct

    loader = LOADER(text)
    try:
        root = loader.get_single_node()
        assert root is not None
        value = construct(root, loader)
    finally:
        loader.dispose()
    assert value == yaml.safe_load(text)


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", teams="teams:\n  - id: noc\n    name: [NOC\n")
    (found,) = problems(folder)
    assert found.startswith(f"{folder / 'teams.yaml'}:4: (yaml): ")
