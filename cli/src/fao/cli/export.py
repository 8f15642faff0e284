"""``fao export DIR``: the applied inventory written back as YAML files.

For a team that changed things through the CLI (or, later, the API) and wants to return to files:
``fao apply`` of the exported folder changes nothing (tested over the example config and a
generated one of 1,000 systems). The output is stable: one file per kind, objects sorted by id,
fields in the models' order, defaults left out (the check's ``type`` always kept: it says which
kind of check the rest describes), Thai text as text. Maintenance windows made with ``fao
maintenance add`` are not config and are not exported (they are listed as notes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.inventory import (
    MAINTENANCE,
    MONITORS,
    PEOPLE,
    SYSTEMS,
    TEAMS,
    from_doc,
    maintenance_from_doc,
)
from fao.runtime.store import Document, connect
from fao.schemas import Monitor, Person, System, Team

HEADER: Final = "# Exported by `fao export`: edit, then `fao apply` this folder.\n"
FILES: Final[dict[str, str]] = {
    TEAMS: "teams.yaml",
    PEOPLE: "people.yaml",
    SYSTEMS: "systems.yaml",
    MONITORS: "monitors.yaml",
    MAINTENANCE: "maintenance.yaml",
}
MODELS: Final[dict[str, type[BaseModel]]] = {TEAMS: Team, PEOPLE: Person, SYSTEMS: System, MONITORS: Monitor}


class ExportError(Exception):
    """The export cannot be written (the message says why)."""


@dataclass
class Exported:
    files: dict[str, int] = field(default_factory=dict)
    """File name → number of objects written."""
    notes: list[str] = field(default_factory=list)


def plain(model: BaseModel) -> dict[str, Any]:
    """A model as the config files write it: without defaults, the check type kept."""
    data: dict[str, Any] = model.model_dump(mode="json", exclude_defaults=True)
    data.pop("schema_version", None)
    if isinstance(model, Monitor):
        data["check"] = {"type": model.check.type, **data.get("check", {})}
    return data


def render(section: str, items: list[dict[str, Any]]) -> str:
    body = yaml.safe_dump({section: items}, allow_unicode=True, sort_keys=False, width=100)
    return HEADER + body


async def collect(db: AsyncDatabase[Document]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every applied object by kind (as plain dicts, sorted by id), and notes on what was left out."""
    sections: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for collection, kind in MODELS.items():
        items: list[dict[str, Any]] = []
        async for doc in db[collection].find({}):
            try:
                items.append(plain(from_doc(kind, doc)))
            except ValidationError as exc:
                notes.append(
                    f"{collection} {doc.get('_id')!r}: not a valid {kind.__name__} ({exc.error_count()} problem(s)), left out"
                )
        sections[collection] = sorted(items, key=lambda item: str(item["id"]))
    windows: list[dict[str, Any]] = []
    async for doc in db[MAINTENANCE].find({}):
        try:
            window, source = maintenance_from_doc(doc)
        except ValueError as exc:
            notes.append(f"maintenance {doc.get('_id')!r}: {exc}, left out")
            continue
        if source != "config":
            notes.append(f"maintenance {window.id}: made with `fao maintenance add`, not config: left out")
            continue
        windows.append(plain(window))
    sections[MAINTENANCE] = sorted(windows, key=lambda item: str(item["id"]))
    return sections, notes


async def read_inventory(mongo_url: str, mongo_db: str) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    client = connect(mongo_url)
    try:
        return await collect(client[mongo_db])
    finally:
        await client.close()


def export(mongo_url: str, mongo_db: str, directory: Path) -> Exported:
    """Write the inventory to ``directory`` (created if missing; refuses to overwrite YAML files)."""
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} is not a folder")
    existing = sorted(p.name for p in directory.glob("*.y*ml")) if directory.exists() else []
    if existing:
        raise ExportError(f"{directory} already holds {', '.join(existing)}: export into an empty folder")
    sections, notes = asyncio.run(read_inventory(mongo_url, mongo_db))
    result = Exported(notes=notes)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for collection, items in sections.items():
            if not items:
                continue
            name = FILES[collection]
            (directory / name).write_text(render(collection, items), encoding="utf-8")
            result.files[name] = len(items)
    except OSError as exc:  # not MongoDB's fault: the folder cannot be written
        raise ExportError(f"cannot write {exc.filename or directory}: {exc.strerror or exc}") from None
    return result
