"""Load the inventory (teams, people, systems, monitors, maintenance windows) from YAML files,
with ``path:line: field: message`` errors.

Each ``*.yaml``/``*.yml`` file in the directory may hold any of the top-level lists ``teams``,
``people``, ``systems``, ``monitors`` and ``maintenance``. Loading either returns a complete, cross-checked
``Inventory`` or raises ``ConfigError`` listing every problem; it never returns a partial result.
Reading is strict: a duplicate key in a YAML mapping is an error (YAML would keep the last one
silently), and so is a file over ``MAX_FILE_BYTES``. Hidden files and folders, links to folders, links to
files outside the folder and files that are not ``.yaml``/``.yml`` are not read; each is named in
``Inventory.notes`` so the operator sees what was left out.
Cross-checks: unique ids per section, every reference exists (``system.team``,
``system.depends_on``, ``monitor.system``, a window's ``systems`` and ``teams``, a person's
``teams``, an escalation step's ``people`` and ``teams``), and no
``depends_on`` cycle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fao.schemas.config import Monitor, System, Team
from fao.schemas.maintenance import MaintenanceWindow
from fao.schemas.people import Person

SECTIONS: dict[str, type[BaseModel]] = {
    "teams": Team,
    "people": Person,
    "systems": System,
    "monitors": Monitor,
    "maintenance": MaintenanceWindow,
}
MAX_FILE_BYTES = 5 * 1024 * 1024
YAML_SUFFIXES = frozenset({".yaml", ".yml"})
NOUNS = {"teams": "team", "people": "person", "systems": "system", "monitors": "monitor"}
ConfigModel = Team | Person | System | Monitor | MaintenanceWindow
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class ConfigError(Exception):
    """The config is invalid; ``problems`` lists each one with its file and line."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Inventory:
    """A validated, cross-referenced configuration."""

    teams: list[Team] = field(default_factory=list)
    systems: list[System] = field(default_factory=list)
    monitors: list[Monitor] = field(default_factory=list)
    maintenance: list[MaintenanceWindow] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Files and folders that were not read, and why."""


@dataclass
class _Located:
    model: ConfigModel
    path: str
    line: int


def _without_tags(item: Any, loc: Sequence[int | str]) -> list[int | str]:
    """Drop discriminated-union tags (``check.http.url`` → ``check.url``) from a pydantic location."""
    out: list[int | str] = []
    for part in loc:
        if isinstance(item, dict) and isinstance(part, str) and part not in item and item.get("type") == part:
            continue
        out.append(part)
        if isinstance(item, dict):
            item = item.get(part)
        elif isinstance(item, list) and isinstance(part, int) and part < len(item):
            item = item[part]
        else:
            item = None
    return out


def _node_at(node: yaml.Node, loc: Sequence[int | str]) -> yaml.Node:
    """Follow a pydantic error location into the YAML node tree, as deep as it goes."""
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            nxt = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node


def _field_name(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(document)"


def _duplicate_keys(node: yaml.Node, name: str, problems: list[ConfigProblem]) -> None:
    """Every mapping key that appears twice in one mapping (YAML itself keeps the last one)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in seen:
                    problems.append(
                        ConfigProblem(
                            name, line, str(key.value), f"duplicate key (first at line {seen[key.value]})"
                        )
                    )
                else:
                    seen[key.value] = line
            _duplicate_keys(value, name, problems)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _duplicate_keys(item, name, problems)


# libyaml (PyYAML's C extension, in every PyYAML wheel) parses ~10x faster than the pure-Python
# parser; both give the same nodes, with the marks the errors' lines come from.
LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)
_TAG = "tag:yaml.org,2002:"
_STR, _INT, _NULL, _SEQ, _MAP, _MERGE = (
    f"{_TAG}{name}" for name in ("str", "int", "null", "seq", "map", "merge")
)


class _AliasedError(Exception):
    """A node met twice (a YAML alias): left to PyYAML's constructor, which shares and recurses."""


def construct(root: yaml.Node, loader: yaml.SafeLoader | yaml.CSafeLoader) -> Any:
    """What ``yaml.safe_load`` returns for the composed document ``root``.

    Plain mappings, lists, strings, decimal integers and nulls are built here in one pass (PyYAML's
    constructor costs several times the parse); every other scalar (booleans, floats, timestamps,
    octal and sexagesimal integers), merge keys and anything unusual go to the loader's own
    constructor, and a document with aliases is built by it whole, so the result is the same."""
    seen: set[int] = set()

    def build(node: yaml.Node) -> Any:
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            value = node.value
            if tag == _STR:
                return value
            if tag == _INT and value.isdigit() and (value[0] != "0" or len(value) == 1):
                return int(value)
            if tag == _NULL:
                return None
            return loader.construct_object(node, deep=True)
        if id(node) in seen:
            raise _AliasedError
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
            return [build(item) for item in node.value]
        if (
            isinstance(node, yaml.MappingNode)
            and tag == _MAP
            and all(isinstance(k, yaml.ScalarNode) and k.tag != _MERGE for k, _ in node.value)
        ):
            return {build(key): build(value) for key, value in node.value}
        return loader.construct_object(node, deep=True)

    try:
        return build(root)
    except _AliasedError:
        return loader.construct_document(root)


def _parse_file(path: Path, problems: list[ConfigProblem]) -> Iterator[tuple[str, _Located]]:
    name = str(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        problems.append(
            ConfigProblem(
                name, 1, "(file)", f"file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,} (split it up)"
            )
        )
        return
    try:
        text = path.read_text(encoding="utf-8")
        loader = LOADER(text)
        try:
            root = loader.get_single_node()
            data: Any = None if root is None else construct(root, loader)
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        problems.append(ConfigProblem(name, 1, "(file)", f"not UTF-8 text: {exc.reason}"))
        return
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        problems.append(ConfigProblem(name, line, "(yaml)", str(exc.problem or exc)))
        return
    if root is None or data is None:
        return
    before = len(problems)
    _duplicate_keys(root, name, problems)
    if len(problems) > before:
        return
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        problems.append(ConfigProblem(name, root.start_mark.line + 1, "(document)", "expected a mapping"))
        return
    for key, items in data.items():
        if key not in SECTIONS:
            node = _node_at(root, [key])
            allowed = ", ".join(SECTIONS)
            problems.append(
                ConfigProblem(name, node.start_mark.line + 1, str(key), f"unknown section (use {allowed})")
            )
            continue
        section_node = _node_at(root, [key])
        if not isinstance(items, list):
            problems.append(ConfigProblem(name, section_node.start_mark.line + 1, key, "expected a list"))
            continue
        for index, item in enumerate(items):
            item_node = _node_at(root, [key, index])
            try:
                model = SECTIONS[key].model_validate(item)
                assert isinstance(model, ConfigModel)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = [key, index, *_without_tags(item, err["loc"])]
                    node = _node_at(root, loc)
                    message = err["msg"].removeprefix("Value error, ")
                    problems.append(ConfigProblem(name, node.start_mark.line + 1, _field_name(loc), message))
                continue
            yield key, _Located(model, name, item_node.start_mark.line + 1)


def _check_references(located: dict[str, list[_Located]], problems: list[ConfigProblem]) -> None:
    ids: dict[str, set[str]] = {}
    for section, items in located.items():
        seen: dict[str, _Located] = {}
        for item in items:
            item_id = str(item.model.id)
            if item_id in seen:
                first = seen[item_id]
                problems.append(
                    ConfigProblem(
                        item.path,
                        item.line,
                        f"{section}.id",
                        f"duplicate id {item_id!r} (first defined at {first.path}:{first.line})",
                    )
                )
            seen[item_id] = item
        ids[section] = set(seen)

    def missing(item: _Located, fld: str, ref: str, section: str) -> None:
        if ref not in ids[section]:
            problems.append(ConfigProblem(item.path, item.line, fld, f"unknown {NOUNS[section]} {ref!r}"))

    for item in located["people"]:
        person = item.model
        assert isinstance(person, Person)
        for team_id in person.teams:
            missing(item, "people.teams", team_id, "teams")
    for item in located["teams"]:
        team = item.model
        assert isinstance(team, Team)
        for step in team.escalation.steps if team.escalation else []:
            for person_id in step.people:
                missing(item, "teams.escalation.steps.people", person_id, "people")
            for team_id in step.teams:
                missing(item, "teams.escalation.steps.teams", team_id, "teams")
    for item in located["systems"]:
        system = item.model
        assert isinstance(system, System)
        missing(item, "systems.team", system.team, "teams")
        for parent in system.depends_on:
            missing(item, "systems.depends_on", parent, "systems")
            if parent == system.id:
                problems.append(
                    ConfigProblem(item.path, item.line, "systems.depends_on", "depends on itself")
                )
    for item in located["monitors"]:
        monitor = item.model
        assert isinstance(monitor, Monitor)
        missing(item, "monitors.system", monitor.system, "systems")
    for item in located["maintenance"]:
        window = item.model
        assert isinstance(window, MaintenanceWindow)
        for system_id in window.systems:
            missing(item, "maintenance.systems", system_id, "systems")
        for team_id in window.teams:
            missing(item, "maintenance.teams", team_id, "teams")
    _check_cycles(located["systems"], problems)


def _check_cycles(systems: list[_Located], problems: list[ConfigProblem]) -> None:
    """Report each ``depends_on`` cycle once, as ``a -> b -> a`` starting at its smallest id, at
    the line of that system. Self-dependencies and unknown parents are reported elsewhere."""
    where: dict[str, _Located] = {}
    parents: dict[str, list[str]] = {}
    for item in systems:
        system = item.model
        assert isinstance(system, System)
        if system.id not in where:  # a duplicate id is reported elsewhere; follow the first
            where[system.id] = item
            parents[system.id] = system.depends_on
    graph = {
        sid: [p for p in dict.fromkeys(deps) if p in parents and p != sid] for sid, deps in parents.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: set[tuple[str, ...]] = set()
    for root in sorted(graph):
        if root in state:
            continue
        path: list[str] = [root]
        todo: list[Iterator[str]] = [iter(graph[root])]
        state[root] = 1
        while todo:  # iterative depth-first search: a long chain must not hit the recursion limit
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(graph[nxt]))
            elif state[nxt] == 1:  # back edge: the path from ``nxt`` to here is a cycle
                cycle = path[path.index(nxt) :]
                first = cycle.index(min(cycle))
                found.add(tuple(cycle[first:] + cycle[:first]))
    for names in sorted(found):
        item = where[names[0]]
        text = " -> ".join([*names, names[0]])
        problems.append(
            ConfigProblem(item.path, item.line, "systems.depends_on", f"dependency cycle: {text}")
        )


def _models(items: list[_Located], kind: type[M]) -> list[M]:
    return [item.model for item in items if isinstance(item.model, kind)]


def config_files(directory: Path) -> tuple[list[Path], list[str]]:
    """The YAML files under ``directory`` to read, and a note for each thing left out."""
    root = directory.resolve()
    files: list[Path] = []
    notes: list[str] = []
    for folder, subfolders, names in os.walk(directory):
        here = Path(folder)
        for sub in sorted(subfolders):
            if sub.startswith("."):
                notes.append(f"{here / sub}: hidden folder, not read")
            elif (here / sub).is_symlink():  # os.walk does not follow it: say so
                notes.append(f"{here / sub}: link to a folder, not read (link the files instead)")
        subfolders[:] = sorted(sub for sub in subfolders if not sub.startswith("."))
        for file_name in sorted(names):
            path = here / file_name
            if file_name.startswith("."):
                notes.append(f"{path}: hidden file, not read")
            elif path.suffix not in YAML_SUFFIXES:
                notes.append(f"{path}: not a .yaml/.yml file, not read")
            elif path.is_symlink() and not path.resolve().is_relative_to(root):
                notes.append(f"{path}: link to a file outside {directory}, not read")
            elif not path.is_file():
                notes.append(f"{path}: not a regular file, not read")
            else:
                files.append(path)
    read: dict[Path, Path] = {}
    for path in sorted(files):
        real = path.resolve()
        if real in read:
            notes.append(f"{path}: the same file as {read[real]}, read once")
        else:
            read[real] = path
    return sorted(read.values()), notes


def load_inventory(directory: Path) -> Inventory:
    """Validate every YAML file under ``directory``; raise ``ConfigError`` with all problems found."""
    if not directory.is_dir():
        raise ConfigError([ConfigProblem(str(directory), 0, "(directory)", "not a directory")])
    files, notes = config_files(directory)
    if not files:
        raise ConfigError([ConfigProblem(str(directory), 0, "(directory)", "no .yaml files found")])
    problems: list[ConfigProblem] = []
    located: dict[str, list[_Located]] = {section: [] for section in SECTIONS}
    for path in files:
        for section, item in _parse_file(path, problems):
            located[section].append(item)
    _check_references(located, problems)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.path, p.line)))
    return Inventory(
        teams=_models(located["teams"], Team),
        systems=_models(located["systems"], System),
        monitors=_models(located["monitors"], Monitor),
        maintenance=_models(located["maintenance"], MaintenanceWindow),
        people=_models(located["people"], Person),
        notes=notes,
    )
