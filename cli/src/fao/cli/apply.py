"""``fao apply``: validate the inventory, show the diff, write it to MongoDB and the KV bucket.

Validation of every file happens before anything is written, so a bad file changes nothing.
The CLI is the only writer of ``teams``, ``systems``, ``monitors`` and ``audit``.
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

from fao.runtime.bus import ensure_bus, monitors_bucket
from fao.runtime.inventory import AUDIT, MONITORS, SYSTEMS, TEAMS, to_doc
from fao.runtime.store import Document, connect
from fao.schemas import Monitor, System, Team
from fao.schemas.loader import Inventory, load_inventory
from fao.schemas.subjects import monitor_key


@dataclass
class Change:
    collection: str
    key: str
    kind: str  # "add" | "change" | "remove"

    def __str__(self) -> str:
        sign = {"add": "+", "change": "~", "remove": "-"}[self.kind]
        return f"{sign} {self.collection[:-1]} {self.key}"


@dataclass
class Plan:
    inventory: Inventory
    changes: list[Change] = field(default_factory=list)
    desired: dict[str, dict[str, Document]] = field(default_factory=dict)


def _docs(models: Sequence[Team | System | Monitor]) -> dict[str, Document]:
    return {m.id: to_doc(m, m.id) for m in models}


async def plan(db: AsyncDatabase[Document], inventory: Inventory) -> Plan:
    """Compare the validated inventory with what MongoDB holds now."""
    result = Plan(inventory)
    for collection, models in (
        (TEAMS, inventory.teams),
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


async def sync_monitors(kv: KeyValue, monitors: list[Monitor]) -> int:
    """Make the bucket hold exactly ``monitors``; return how many keys were written or deleted."""
    try:
        existing = set(await kv.keys())
    except NoKeysError:
        existing = set()
    touched = 0
    for monitor in monitors:
        key, value = monitor_key(monitor.id), monitor.model_dump_json().encode()
        if key in existing:
            try:
                if (await kv.get(key)).value == value:
                    continue
            except KeyNotFoundError:
                pass
        await kv.put(key, value)
        touched += 1
    for key in existing - {monitor_key(m.id) for m in monitors}:
        await kv.delete(key)
        touched += 1
    return touched


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
