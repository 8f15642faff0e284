"""``fao apply``: validate the inventory, show the diff, write it to MongoDB and the KV bucket.

Validation of every file happens before anything is written, so a bad file changes nothing.
The CLI is the only writer of ``teams``, ``systems``, ``monitors``, ``maintenance`` and ``audit``.

Maintenance windows from the config files are stored with ``source: config``; apply adds, changes
and removes only those. Windows made with ``fao maintenance add`` (``source: cli``) are never
removed by apply, and stay in the KV bucket. A config window ended early with ``fao maintenance
end`` keeps its ``ended_at`` across re-applies while its schedule is unchanged.
"""

from __future__ import annotations

import getpass
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pymongo.asynchronous.database import AsyncDatabase

from fao.runtime.bus import ensure_bus, maintenance_bucket, monitors_bucket
from fao.runtime.inventory import (
    AUDIT,
    MAINTENANCE,
    MONITORS,
    PEOPLE,
    SYSTEMS,
    TEAMS,
    maintenance_from_doc,
    maintenance_to_doc,
    to_doc,
)
from fao.runtime.store import Document, connect
from fao.schemas import MaintenanceWindow, Monitor, Person, System, Team
from fao.schemas.loader import Inventory, load_inventory
from fao.schemas.subjects import maintenance_key, monitor_key

SINGULAR = {
    TEAMS: "team",
    PEOPLE: "person",
    SYSTEMS: "system",
    MONITORS: "monitor",
    MAINTENANCE: "maintenance",
}


@dataclass
class Change:
    collection: str
    key: str
    kind: str  # "add" | "change" | "remove"

    def __str__(self) -> str:
        sign = {"add": "+", "change": "~", "remove": "-"}[self.kind]
        return f"{sign} {SINGULAR.get(self.collection, self.collection)} {self.key}"


@dataclass
class Plan:
    inventory: Inventory
    changes: list[Change] = field(default_factory=list)
    desired: dict[str, dict[str, Document]] = field(default_factory=dict)
    # What the maintenance bucket must hold: the config's windows and those made with the CLI.
    windows: list[MaintenanceWindow] = field(default_factory=list)


def _docs(models: Sequence[Team | Person | System | Monitor]) -> dict[str, Document]:
    return {m.id: to_doc(m, m.id) for m in models}


def _stored_window(doc: Document | None) -> tuple[MaintenanceWindow, str] | None:
    if doc is None:
        return None
    try:
        return maintenance_from_doc(doc)
    except ValueError:  # not one of ours (edited by hand): the config or nothing replaces it
        return None


def _keep_ended(window: MaintenanceWindow, stored: MaintenanceWindow | None) -> MaintenanceWindow:
    """``window`` with the ``ended_at`` that ``fao maintenance end`` gave its stored copy, as long
    as the schedule is the same (a new schedule is a new plan: it starts afresh)."""
    if window.ended_at is not None or stored is None or stored.ended_at is None:
        return window
    if (stored.start, stored.end, stored.weekly) != (window.start, window.end, window.weekly):
        return window
    return window.model_copy(update={"ended_at": stored.ended_at})


async def _plan_maintenance(db: AsyncDatabase[Document], inventory: Inventory, result: Plan) -> None:
    current = {doc["_id"]: doc async for doc in db[MAINTENANCE].find({})}
    stored = {key: _stored_window(doc) for key, doc in current.items()}
    desired: dict[str, Document] = {}
    for window in inventory.maintenance:
        mine = stored.get(window.id)
        kept = _keep_ended(window, mine[0] if mine is not None and mine[1] == "config" else None)
        desired[window.id] = maintenance_to_doc(kept, "config")
        result.windows.append(kept)
    result.desired[MAINTENANCE] = desired
    for key, doc in sorted(desired.items()):
        if key not in current:
            result.changes.append(Change(MAINTENANCE, key, "add"))
        elif current[key] != doc:  # also a CLI window whose id the config now claims
            result.changes.append(Change(MAINTENANCE, key, "change"))
    for key in sorted(set(current) - set(desired)):
        if current[key].get("source") == "config":
            result.changes.append(Change(MAINTENANCE, key, "remove"))
        elif (entry := stored[key]) is not None:
            result.windows.append(entry[0])


async def plan(db: AsyncDatabase[Document], inventory: Inventory) -> Plan:
    """Compare the validated inventory with what MongoDB holds now."""
    result = Plan(inventory)
    for collection, models in (
        (TEAMS, inventory.teams),
        (PEOPLE, inventory.people),
        (SYSTEMS, inventory.systems),
        (MONITORS, inventory.monitors),
    ):
        desired = _docs(models)
        result.desired[collection] = desired
        current = {doc["_id"]: doc async for doc in db[collection].find({})}
        for key, doc in sorted(desired.items()):
            if key not in current:
                result.changes.append(Change(collection, key, "add"))
            elif current[key] != doc:
                result.changes.append(Change(collection, key, "change"))
        result.changes.extend(
            Change(collection, key, "remove") for key in sorted(set(current) - set(desired))
        )
    await _plan_maintenance(db, inventory, result)
    return result


def _git_revision(directory: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


async def sync_bucket(kv: KeyValue, desired: dict[str, bytes]) -> int:
    """Make the bucket hold exactly ``desired`` (key → value); return how many keys were written
    or deleted."""
    try:
        existing = set(await kv.keys())
    except NoKeysError:
        existing = set()
    touched = 0
    for key, value in desired.items():
        if key in existing:
            try:
                if (await kv.get(key)).value == value:
                    continue
            except KeyNotFoundError:
                pass
        await kv.put(key, value)
        touched += 1
    for key in existing - set(desired):
        await kv.delete(key)
        touched += 1
    return touched


async def sync_monitors(kv: KeyValue, monitors: list[Monitor]) -> int:
    """Make the bucket hold exactly ``monitors``; return how many keys were written or deleted."""
    return await sync_bucket(kv, {monitor_key(m.id): m.model_dump_json().encode() for m in monitors})


async def sync_maintenance(kv: KeyValue, windows: list[MaintenanceWindow]) -> int:
    """Make the bucket hold exactly ``windows``; return how many keys were written or deleted."""
    return await sync_bucket(kv, {maintenance_key(w.id): w.model_dump_json().encode() for w in windows})


async def execute(db: AsyncDatabase[Document], nats_url: str, the_plan: Plan, source: Path) -> None:
    """Write the plan: KV first (probers follow it), then collections, then the audit entry.

    The KV bucket is compared with the config itself, not with MongoDB, so a re-apply also
    repairs a bucket that was lost or edited by hand.
    """
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        js = nc.jetstream()
        await ensure_bus(js)
        await sync_monitors(await monitors_bucket(js), the_plan.inventory.monitors)
        await sync_maintenance(await maintenance_bucket(js), the_plan.windows)
    finally:
        await nc.close()
    for change in the_plan.changes:
        if change.kind == "remove":
            await db[change.collection].delete_one({"_id": change.key})
        else:
            doc = the_plan.desired[change.collection][change.key]
            await db[change.collection].replace_one({"_id": change.key}, doc, upsert=True)
    if not the_plan.changes:
        return
    await db[AUDIT].insert_one(
        {
            "at": datetime.now(UTC),
            "actor": getpass.getuser(),
            "action": "apply",
            "source": str(source),
            "git_revision": _git_revision(source),
            "changes": [{"collection": c.collection, "key": c.key, "kind": c.kind} for c in the_plan.changes],
        }
    )


async def apply(directory: Path, mongo_url: str, mongo_db: str, nats_url: str, *, dry_run: bool) -> Plan:
    """Validate (raises ``ConfigError`` before touching anything), plan, and unless dry-run, write."""
    inventory = load_inventory(directory)
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        the_plan = await plan(db, inventory)
        if not dry_run:
            await execute(db, nats_url, the_plan, directory)
        return the_plan
    finally:
        await client.close()
