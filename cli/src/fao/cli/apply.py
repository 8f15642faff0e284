"""``fao apply``: validate the inventory, show the plan, write it to MongoDB and the KV buckets.

Validation of every file happens before anything is written, so a bad file changes nothing.
The CLI is the only writer of ``teams``, ``people``, ``systems``, ``monitors``, ``maintenance``
and ``audit``.

Safety, as Terraform and kubectl users expect it:

- the plan (added / changed / removed, per kind) is shown first; the CLI writes only with
  ``--yes`` or after a confirmation on a terminal;
- objects missing from the files are removed only with ``--prune`` (otherwise they are kept, in
  MongoDB and in the KV buckets, and the plan says so), and removing more than
  ``MASS_REMOVAL`` of any kind also needs ``--force``: a folder holding one empty file no longer
  empties the inventory;
- all or nothing: every KV value is checked against the server's message size before the first
  write; a write that fails undoes the writes before it (KV values and documents are restored
  from what the plan read). A process killed half-way leaves the difference that ``fao apply
  --check`` reports and the next ``fao apply`` of the same folder completes (the plan is made
  against MongoDB; the buckets are compared with the files themselves).

The monitors are planned against apply's record of what it last wrote (``fao.cli.applied_record``:
two ``_id`` look-ups instead of decoding every document), whenever that record can be trusted;
otherwise, and always with ``--rescan``, against every stored document.

Maintenance windows from the config files are stored with ``source: config``; apply adds, changes
and removes only those. Windows made with ``fao maintenance add`` (``source: cli``) are never
removed by apply, and stay in the KV bucket. A config window ended early with ``fao maintenance
end`` keeps its ``ended_at`` across re-applies while its schedule is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import bson
import nats
from pymongo import DeleteOne, InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from fao.cli.applied_record import mark_writing, read_record, write_record
from fao.cli.kv_sync import KvUndo, restore, sync_bucket
from fao.cli.nats_errors import quiet
from fao.runtime import audit
from fao.runtime.bus import (
    PAYLOAD_HEADROOM,
    ensure_bus,
    maintenance_bucket,
    monitors_bucket,
    server_max_payload,
)
from fao.runtime.inventory import (
    MAINTENANCE,
    MONITORS,
    PEOPLE,
    SYSTEMS,
    TEAMS,
    from_doc,
    maintenance_from_doc,
    maintenance_to_doc,
    to_doc,
)
from fao.runtime.store import Document, connect
from fao.schemas import MaintenanceWindow, Monitor, Person, System, Team
from fao.schemas.loader import Inventory, load_inventory
from fao.schemas.subjects import MAINTENANCE_BUCKET, MONITORS_BUCKET, maintenance_key, monitor_key

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

    def describe(self, prune: bool) -> str:
        """The plan line; a removal that is not pruned says it is kept."""
        if self.kind == "remove" and not prune:
            return f"= {SINGULAR.get(self.collection, self.collection)} {self.key} (not in the files: kept; --prune removes it)"
        return str(self)


# Ids of people erased with `fao people forget` (written there; apply refuses to bring them back).
FORGOTTEN = "people_forgotten"
# People removed from the config, kept until their retention ends (``fao people forget``).
DEPARTED = "people_departed"
# Removing more than this share of the stored objects of one kind needs --force (with --prune).
MASS_REMOVAL = 0.2
KINDS = (TEAMS, PEOPLE, SYSTEMS, MONITORS, MAINTENANCE)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector off while an inventory is read, planned and written: it rescans
    the hundreds of thousands of objects made (YAML nodes, models, documents) again and again and
    finds almost nothing (231 objects after reading 10,000 monitors), and reading them took twice
    as long (1.5 s instead of 0.7 s, measured); reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ApplyRefusedError(Exception):
    """The plan may not be written as asked (what to do instead is in the message)."""


@dataclass
class Plan:
    inventory: Inventory
    changes: list[Change] = field(default_factory=list)
    desired: dict[str, dict[str, Document]] = field(default_factory=dict)
    # What the maintenance bucket must hold: the config's windows and those made with the CLI.
    windows: list[MaintenanceWindow] = field(default_factory=list)
    # What MongoDB held when the plan was made (to undo a failed write, and to keep what is not
    # pruned).
    current: dict[str, dict[str, Document]] = field(default_factory=dict)
    # The monitors in ``current`` came from apply's record (``fao.cli.applied_record``), which is
    # then rewritten only when a monitor changes.
    recorded: bool = False

    def removals(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "remove"]

    def summary(self, prune: bool) -> list[str]:
        """One line per kind with changes: ``monitors: 2 to add, 1 to change, 3 to remove``."""
        lines: list[str] = []
        for kind in KINDS:
            count = {
                k: sum(1 for c in self.changes if (c.collection, c.kind) == (kind, k))
                for k in KINDS_OF_CHANGE
            }
            if not any(count.values()):
                continue
            line = f"{kind}: {count['add']} to add, {count['change']} to change"
            if count["remove"]:
                line += f", {count['remove']} " + (
                    "to remove" if prune else "kept (not in the files; --prune removes)"
                )
            lines.append(line)
        return lines

    def mass_removals(self) -> list[str]:
        """Kinds of which the plan removes more than ``MASS_REMOVAL`` of what is stored."""
        found: list[str] = []
        for kind in KINDS:
            stored = len(self.current.get(kind, {}))
            removed = sum(1 for c in self.removals() if c.collection == kind)
            if stored and removed / stored > MASS_REMOVAL:
                found.append(f"{removed} of {stored} {kind}")
        return found

    def without_removals(self) -> Plan:
        """This plan with what it would remove kept instead: in MongoDB and in the buckets."""
        kept = {(c.collection, c.key) for c in self.removals()}
        inventory = self.inventory
        kept_monitors = [
            from_doc(Monitor, self.current[MONITORS][key]) for (kind, key) in sorted(kept) if kind == MONITORS
        ]
        kept_windows = [
            maintenance_from_doc(self.current[MAINTENANCE][key])[0]
            for (kind, key) in sorted(kept)
            if kind == MAINTENANCE
        ]
        return Plan(
            inventory=Inventory(
                teams=inventory.teams,
                systems=inventory.systems,
                monitors=[*inventory.monitors, *kept_monitors],
                maintenance=inventory.maintenance,
                people=inventory.people,
                notes=inventory.notes,
            ),
            changes=[c for c in self.changes if c.kind != "remove"],
            desired=self.desired,
            windows=[*self.windows, *kept_windows],
            current=self.current,
            recorded=self.recorded,
        )


KINDS_OF_CHANGE = ("add", "change", "remove")


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


# Documents per reply of a ``find`` of a whole collection: FerretDB answers a large batch sooner
# than many of 101 (10,000 monitors: 5.5 s instead of 7.5 s, measured).
READ_BATCH = 10_000


async def read_collection(db: AsyncDatabase[Document], collection: str) -> dict[str, Document]:
    return {doc["_id"]: doc async for doc in db[collection].find({}, batch_size=READ_BATCH)}


async def read_current(
    db: AsyncDatabase[Document], *, recorded: bool = False
) -> tuple[dict[str, dict[str, Document]], bool]:
    """What MongoDB holds of every kind: one ``find`` per collection, all in flight at once; with
    ``recorded``, the monitors from apply's record when it can be trusted. Returns the documents
    and whether the monitors came from the record."""

    async def read(collection: str) -> tuple[str, dict[str, Document]]:
        return collection, await read_collection(db, collection)

    record = await read_record(db, MONITORS) if recorded else None
    kinds = [kind for kind in KINDS if record is None or kind != MONITORS]
    current = dict(await asyncio.gather(*(read(collection) for collection in kinds)))
    if record is not None:
        current[MONITORS] = record
    return current, record is not None


def _plan_maintenance(current: dict[str, Document], inventory: Inventory, result: Plan) -> None:
    result.current[MAINTENANCE] = current
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


def plan(inventory: Inventory, current: dict[str, dict[str, Document]], *, recorded: bool = False) -> Plan:
    """Compare the validated inventory with what MongoDB holds (``current``, read with
    ``read_current``; ``recorded``: its monitors are apply's record)."""
    result = Plan(inventory, recorded=recorded)
    for collection, models in (
        (TEAMS, inventory.teams),
        (PEOPLE, inventory.people),
        (SYSTEMS, inventory.systems),
        (MONITORS, inventory.monitors),
    ):
        desired = _docs(models)
        result.desired[collection] = desired
        stored = current[collection]
        result.current[collection] = stored
        for key, doc in sorted(desired.items()):
            if key not in stored:
                result.changes.append(Change(collection, key, "add"))
            elif stored[key] != doc:
                result.changes.append(Change(collection, key, "change"))
        result.changes.extend(Change(collection, key, "remove") for key in sorted(set(stored) - set(desired)))
    _plan_maintenance(current[MAINTENANCE], inventory, result)
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


def monitor_values(monitors: list[Monitor]) -> dict[str, bytes]:
    return {monitor_key(m.id): m.model_dump_json().encode() for m in monitors}


def window_values(windows: list[MaintenanceWindow]) -> dict[str, bytes]:
    return {maintenance_key(w.id): w.model_dump_json().encode() for w in windows}


def check_value_sizes(values: dict[str, bytes], max_payload: int) -> None:
    """Refuse (before anything is written) a value NATS would not carry."""
    limit = max_payload - PAYLOAD_HEADROOM
    too_big = [f"{key} ({len(value):,} bytes)" for key, value in values.items() if len(value) > limit]
    if too_big:
        raise ApplyRefusedError(
            f"too large for the NATS server (at most {limit:,} bytes each): {', '.join(too_big[:5])}; "
            "nothing was changed"
        )


# Documents per MongoDB write command. FerretDB v1 hangs on one ``update`` command replacing more
# than about 100 existing documents (``fao.correlator.store.BULK_CHUNK``): well below that.
BULK_CHUNK = 50
# Additions per ``insert`` command (no such limit): FerretDB inserts 10,000 monitors in 1.7 s in
# large commands, 3.0 s in commands of 50 (measured).
INSERT_CHUNK = 1000
# From this many changed or removed documents of one kind, they are deleted at once and inserted
# again instead of replaced one by one (``_replace_in_bulk``).
BULK_REPLACE_FROM = 30
# From this many changed or removed monitors, the collection is written anew (``_rebuild``): one
# changed replace or delete costs what inserting about five of all the monitors does (measured).
REBUILD_FROM = 5
# Changes per audit entry are bounded by size: an apply of many objects is recorded as several
# entries (``part`` n of ``parts``), each well below MongoDB's 16 MiB document limit.
AUDIT_ENTRY_BYTES = 8 * 1024 * 1024

DUPLICATE_KEY = 11000

DocUndo = list[tuple[str, str, Document | None]]


def _restore_operation(key: str, before: Document | None) -> DeleteOne | ReplaceOne[Document]:
    return DeleteOne({"_id": key}) if before is None else ReplaceOne({"_id": key}, before, upsert=True)


async def _undo(db: AsyncDatabase[Document], kv_undo: KvUndo, doc_undo: DocUndo, rebuilt: list[str]) -> None:
    """Put back what a failed apply wrote (best effort: a chunk that cannot be put back is retried
    one document at a time, and each failure reported)."""
    for collection in rebuilt:
        try:
            await _unbuild(db, collection)
        except Exception as exc:  # reported; --check shows what is left
            log_undo_failure(collection, exc)
    # Each document is written once per apply, so each collection is put back in one go: the
    # additions deleted with one ``delete_many`` (FerretDB decodes the collection once for it, and
    # scans it for every single delete: 0.2-0.4 s each at 10,000 monitors, measured), the
    # documents before put back ``BULK_CHUNK`` at a time.
    by_collection: dict[str, list[tuple[str, Document | None]]] = {}
    for collection, key, before in reversed(doc_undo):
        by_collection.setdefault(collection, []).append((key, before))
    for collection, entries in by_collection.items():
        added = [key for key, before in entries if before is None]
        if added:
            try:
                await delete_documents(db, collection, added)
            except Exception:  # one by one then, to report each document that cannot be removed
                await _restore_documents(db, collection, [(key, None) for key in added])
        kept = [(key, before) for key, before in entries if before is not None]
        for start in range(0, len(kept), BULK_CHUNK):
            await _restore_documents(db, collection, kept[start : start + BULK_CHUNK])
    await restore(kv_undo, lambda key, exc: log_undo_failure(key, exc))


async def _restore_documents(
    db: AsyncDatabase[Document], collection: str, entries: Sequence[tuple[str, Document | None]]
) -> None:
    try:
        await db[collection].bulk_write([_restore_operation(k, b) for k, b in entries], ordered=True)
    except Exception:  # one by one then, to report each document that cannot be put back
        for key, before in entries:
            try:
                await db[collection].bulk_write([_restore_operation(key, before)])
            except Exception as exc:  # reported; --check shows what is left
                log_undo_failure(f"{collection}/{key}", exc)


def log_undo_failure(what: str, exc: BaseException) -> None:
    print(f"could not undo {what}: {type(exc).__name__}: {exc}", file=sys.stderr)


async def _record_departure(
    db: AsyncDatabase[Document],
    change: Change,
    before: Document,
    doc_undo: DocUndo,
) -> None:
    """A person removed from the config is kept in ``people_departed`` (with when) until the
    retention ends and ``fao people forget`` erases them; one who comes back is no longer departed."""
    was = await db[DEPARTED].find_one({"_id": change.key})
    doc_undo.append((DEPARTED, change.key, was))
    if change.kind == "remove":
        await db[DEPARTED].replace_one(
            {"_id": change.key}, {**before, "departed_at": datetime.now(UTC)}, upsert=True
        )
    elif was is not None:
        await db[DEPARTED].delete_one({"_id": change.key})


def _operation(
    change: Change, doc: Document | None
) -> InsertOne[Document] | DeleteOne | ReplaceOne[Document]:
    if doc is None:
        return DeleteOne({"_id": change.key})
    if change.kind == "add":
        # An insert, not an upsert: FerretDB answers an upsert of a new document after scanning the
        # whole collection. A document that appeared since the plan was read fails the apply.
        return InsertOne(doc)
    return ReplaceOne({"_id": change.key}, doc, upsert=True)


async def write_documents(
    db: AsyncDatabase[Document], collection: str, writes: Sequence[tuple[Change, Document | None]]
) -> None:
    """One chunk (``_chunks``) of a plan's writes to ``collection`` as one bulk write:
    a removal (``None``), an addition or a change with the desired document."""
    await db[collection].bulk_write([_operation(change, doc) for change, doc in writes], ordered=False)


async def _write_plan(
    db: AsyncDatabase[Document], the_plan: Plan, doc_undo: DocUndo, rebuilt: list[str]
) -> None:
    """Every document change of the plan, kind by kind, in chunks (``_chunks``); each recorded in
    ``doc_undo`` (its document before) before its chunk is written. The monitors, when at least
    ``REBUILD_FROM`` of them change or go, are written whole into a new collection that then takes
    the place of the old (``_rebuild``, recorded in ``rebuilt``). Another kind with at least
    ``BULK_REPLACE_FROM`` changed or removed documents has them all deleted at once first and the
    changed ones inserted again (``_replace_in_bulk``)."""
    for collection in KINDS:
        changes = [c for c in the_plan.changes if c.collection == collection]
        replaced = [c for c in changes if c.kind != "add"]
        if collection == MONITORS and len(replaced) >= REBUILD_FROM:
            await _rebuild(db, collection, monitors_after(the_plan), rebuilt)
            continue
        if collection != PEOPLE and len(replaced) >= BULK_REPLACE_FROM:
            await _replace_in_bulk(db, the_plan, collection, replaced, doc_undo)
            changes = [
                c if c.kind == "add" else Change(collection, c.key, "add")
                for c in changes
                if c.kind != "remove"
            ]
        current = the_plan.current.get(collection, {})
        for chunk in _chunks(changes):
            recorded = len(doc_undo)
            for change in chunk:
                before = current.get(change.key)
                if change.kind == "add" and before is not None:
                    continue  # deleted by _replace_in_bulk: recorded there
                doc_undo.append((collection, change.key, before))
                if collection == PEOPLE and before is not None:
                    await _record_departure(db, change, before, doc_undo)
            writes = [(c, None if c.kind == "remove" else the_plan.desired[collection][c.key]) for c in chunk]
            try:
                await write_documents(db, collection, writes)
            except BulkWriteError as exc:
                # A document someone else inserted meanwhile is theirs: the undo must not delete it.
                theirs = {
                    chunk[error["index"]].key
                    for error in exc.details.get("writeErrors", [])
                    if error.get("code") == DUPLICATE_KEY and chunk[error["index"]].kind == "add"
                }
                doc_undo[recorded:] = [
                    u for u in doc_undo[recorded:] if not (u[0] == collection and u[1] in theirs)
                ]
                raise


def _chunks(changes: list[Change]) -> list[list[Change]]:
    """Removals and changes ``BULK_CHUNK`` at a time, then additions ``INSERT_CHUNK`` at a time."""
    others = [c for c in changes if c.kind != "add"]
    adds = [c for c in changes if c.kind == "add"]
    return [
        *(others[start : start + BULK_CHUNK] for start in range(0, len(others), BULK_CHUNK)),
        *(adds[start : start + INSERT_CHUNK] for start in range(0, len(adds), INSERT_CHUNK)),
    ]


async def _replace_in_bulk(
    db: AsyncDatabase[Document], the_plan: Plan, collection: str, replaced: list[Change], doc_undo: DocUndo
) -> None:
    """Delete every changed or removed document of ``collection`` with one ``delete_many`` (each
    recorded in ``doc_undo`` first); ``_write_plan`` then inserts the changed ones. FerretDB's
    SQLite backend scans the collection for every replace and every delete, however many documents
    it names: at 10,000 monitors one replace took 0.15 s and one ``delete_many`` 4.4 s, whether it
    named 1 or 200 (measured), so 1,000 changed monitors took ≈6 minutes one by one. Between the
    delete and the inserts a reader may miss those documents for a moment; a failure is undone
    like any other (the documents before are put back)."""
    current = the_plan.current.get(collection, {})
    doc_undo.extend((collection, c.key, current.get(c.key)) for c in replaced)
    await delete_documents(db, collection, [c.key for c in replaced])


def _next(collection: str) -> str:
    return f"{collection}_next"


def _previous(collection: str) -> str:
    return f"{collection}_previous"


async def _rebuild(
    db: AsyncDatabase[Document], collection: str, docs: dict[str, Document], rebuilt: list[str]
) -> None:
    """Write ``docs`` into ``<collection>_next``, ``INSERT_CHUNK`` at a time, then rename the
    collection to ``<collection>_previous`` and ``<collection>_next`` to it (each ≈5 ms); the
    previous one is dropped once the apply is complete (``_finish``), or renamed back by the undo.

    FerretDB's SQLite backend scans the collection for every changed replace and every delete
    (0.15-0.3 s each at 10,000 monitors) and decodes every document for a ``delete_many`` (3-5 s),
    while it inserts 10,000 monitors in 1.7 s (measured). Readers see the old documents or the new,
    never a mix; a read in progress goes on with the old (tried), one started between the two
    renames finds no document. The collection has no index but ``_id`` (none is made for it)."""
    await db.drop_collection(_next(collection))  # left by a process killed half-way
    await db.drop_collection(_previous(collection))
    rebuilt.append(collection)
    await db.create_collection(_next(collection))  # made even when it stays empty
    adds = [(Change(collection, key, "add"), docs[key]) for key in sorted(docs)]
    for start in range(0, len(adds), INSERT_CHUNK):
        await write_documents(db, _next(collection), adds[start : start + INSERT_CHUNK])
    await db[collection].rename(_previous(collection))
    await db[_next(collection)].rename(collection)


async def interrupted_swap(db: AsyncDatabase[Document], collection: str) -> bool:
    """``collection`` is missing and ``<collection>_previous`` holds it: a process killed between
    the two renames of ``_rebuild`` (planning against the missing collection would add it all)."""
    names = set(await db.list_collection_names())
    return collection not in names and _previous(collection) in names


async def _unbuild(db: AsyncDatabase[Document], collection: str) -> None:
    """Undo ``_rebuild`` of ``collection`` wherever it stopped: the previous documents take their
    place again."""
    names = set(await db.list_collection_names())
    if _previous(collection) in names:
        await db.drop_collection(collection)
        await db[_previous(collection)].rename(collection)
    await db.drop_collection(_next(collection))


async def delete_documents(db: AsyncDatabase[Document], collection: str, keys: list[str]) -> None:
    await db[collection].delete_many({"_id": {"$in": keys}})


async def execute(db: AsyncDatabase[Document], nats_url: str, the_plan: Plan, source: Path) -> None:
    """Write the plan: the KV buckets (probers follow them) and the documents at once (one waits on
    NATS, the other on MongoDB), then the audit entry; a failure undoes what was written and raises
    once both are done.

    The KV buckets are compared with the plan's inventory (the files, plus what is kept without
    ``--prune``), not with MongoDB, so a re-apply also repairs a bucket lost or edited by hand.
    Each bucket is read in one pass and written concurrently (``fao.cli.kv_sync``); documents go
    in chunks (``_chunks``).
    """
    kv_undo: KvUndo = []
    doc_undo: DocUndo = []
    rebuilt: list[str] = []
    monitors_change = any(c.collection == MONITORS for c in the_plan.changes)
    monitors = monitor_values(the_plan.inventory.monitors)
    windows = window_values(the_plan.windows)
    # Made before anything is written: an entry that could not be stored would undo the apply.
    entries = _audit_entries(the_plan, source) if the_plan.changes else []
    try:
        nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=2, error_cb=quiet)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise ApplyRefusedError(
            f"cannot reach NATS ({type(exc).__name__}: {exc}); nothing was changed"
        ) from exc
    try:
        check_value_sizes({**monitors, **windows}, server_max_payload(nc.jetstream()))
        js = nc.jetstream()
        await ensure_bus(js)

        async def buckets() -> None:
            await sync_bucket(js, MONITORS_BUCKET, await monitors_bucket(js), monitors, kv_undo)
            await sync_bucket(js, MAINTENANCE_BUCKET, await maintenance_bucket(js), windows, kv_undo)

        async def documents() -> None:
            if monitors_change:
                await mark_writing(db, MONITORS)
            await _write_plan(db, the_plan, doc_undo, rebuilt)

        try:
            for result in await asyncio.gather(buckets(), documents(), return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result
            for entry in entries:
                await audit.record(db, entry)
        except BaseException:
            await _undo(db, kv_undo, doc_undo, rebuilt)
            raise
    finally:
        await nc.close()
    await _finish(db, the_plan, rebuilt)


def monitors_after(the_plan: Plan) -> dict[str, Document]:
    """The monitor documents MongoDB holds once ``the_plan`` is written."""
    after = dict(the_plan.current.get(MONITORS, {}))
    for change in the_plan.changes:
        if change.collection != MONITORS:
            continue
        if change.kind == "remove":
            del after[change.key]
        else:
            after[change.key] = the_plan.desired[MONITORS][change.key]
    return after


async def _finish(db: AsyncDatabase[Document], the_plan: Plan, rebuilt: list[str]) -> None:
    """Once the apply is complete: drop the collections ``_rebuild`` replaced, and rewrite apply's
    record of the monitors if they changed or were not planned from it. Neither is part of the
    apply: a failure here is a note (a collection left is dropped by the next rebuild; a record
    left marked ``writing`` makes the next apply read every monitor document)."""
    try:
        for collection in rebuilt:
            await db.drop_collection(_previous(collection))
        if not the_plan.recorded or any(c.collection == MONITORS for c in the_plan.changes):
            await write_record(db, MONITORS, monitors_after(the_plan))
    except PyMongoError as exc:
        print(
            f"note: apply's record of the monitors was not written ({type(exc).__name__}: {exc});"
            " the next apply reads every monitor document",
            file=sys.stderr,
        )


def _audit_entries(the_plan: Plan, source: Path) -> list[Document]:
    """The audit entry of the apply: one, or for a large apply several of at most
    ``AUDIT_ENTRY_BYTES`` each, marked ``part`` (1, 2...) of ``parts``, with the same ``at``."""
    changes = [
        audit.Change(
            c.collection,
            c.key,
            "remove" if c.kind == "remove" else "add" if c.kind == "add" else "change",
            before=the_plan.current.get(c.collection, {}).get(c.key),
            after=None if c.kind == "remove" else the_plan.desired[c.collection][c.key],
        )
        for c in the_plan.changes
    ]
    parts: list[list[audit.Change]] = [[]]
    size = 0
    for change in changes:
        change_size = len(bson.encode(change.doc()))
        if parts[-1] and size + change_size > AUDIT_ENTRY_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(change)
        size += change_size
    at, actor, revision = datetime.now(UTC), getpass.getuser(), _git_revision(source)
    details: dict[str, object] = {"folder": str(source), "git_revision": revision}
    return [
        audit.entry(
            at=at,
            actor=actor,
            source="apply",
            action="apply",
            changes=part,
            **details,
            **({"part": n, "parts": len(parts)} if len(parts) > 1 else {}),
        )
        for n, part in enumerate(parts, start=1)
    ]


async def prepare(directory: Path, mongo_url: str, mongo_db: str, *, rescan: bool = False) -> Plan:
    """Validate (raises ``ConfigError`` before touching anything) and plan against MongoDB: the
    monitors against apply's record of them unless ``rescan`` or the record cannot be trusted.

    MongoDB is read while the files are (in a worker thread): the reads wait on the database
    server, not on this process. A config error still comes first, and nothing is written before
    the plan is made."""
    client = connect(mongo_url)
    reading: asyncio.Task[tuple[dict[str, dict[str, Document]], bool]] | None = None
    try:
        db = client[mongo_db]
        with gc_paused():
            reading = asyncio.create_task(read_current(db, recorded=not rescan))
            inventory = await asyncio.to_thread(load_inventory, directory)
            wanted = [person.id for person in inventory.people]
            if wanted:
                gone = await db[FORGOTTEN].find({"_id": {"$in": wanted}}).to_list()
                if gone:
                    names = ", ".join(f"{doc['_id']} (on {doc['at']:%Y-%m-%d})" for doc in gone)
                    raise ApplyRefusedError(
                        f"people erased at their request (PDPA) are still in the files: {names}; "
                        "remove them from the config; nothing was changed"
                    )
            current, recorded = await reading
            if await interrupted_swap(db, MONITORS):
                raise ApplyRefusedError(
                    f"an apply stopped between the two renames of its rebuild: the monitors are in"
                    f" `{_previous(MONITORS)}` and `{MONITORS}` is missing; rename it back (mongosh:"
                    f" db.{_previous(MONITORS)}.renameCollection('{MONITORS}')) and apply again;"
                    " nothing was changed"
                )
            return plan(inventory, current, recorded=recorded)
    finally:
        if reading is not None:
            reading.cancel()  # not needed any more (a config error): its own error is not the one to report
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
        await client.close()


def decide(the_plan: Plan, *, prune: bool, force: bool) -> Plan:
    """The plan to write: without its removals unless ``prune``; refused (``ApplyRefusedError``) when
    it removes more than ``MASS_REMOVAL`` of a kind without ``force``."""
    if not prune:
        return the_plan.without_removals()
    mass = the_plan.mass_removals()
    if mass and not force:
        raise ApplyRefusedError(
            f"this would remove {', '.join(mass)} (more than {MASS_REMOVAL:.0%}); "
            "add --force if that is really meant; nothing was changed"
        )
    return the_plan


async def write(the_plan: Plan, mongo_url: str, mongo_db: str, nats_url: str, source: Path) -> None:
    client = connect(mongo_url)
    try:
        with gc_paused():
            await execute(client[mongo_db], nats_url, the_plan, source)
    finally:
        await client.close()


async def apply(
    directory: Path,
    mongo_url: str,
    mongo_db: str,
    nats_url: str,
    *,
    dry_run: bool,
    prune: bool = False,
    force: bool = False,
    rescan: bool = False,
    confirm: Callable[[Plan], bool] | None = None,
) -> Plan:
    """Validate, plan, decide (``decide``) and unless ``dry_run`` or ``confirm`` says no, write.
    Returns the plan that was (or would be) written."""
    the_plan = decide(await prepare(directory, mongo_url, mongo_db, rescan=rescan), prune=prune, force=force)
    if dry_run or (confirm is not None and not confirm(the_plan)):
        return the_plan
    await write(the_plan, mongo_url, mongo_db, nats_url, directory)
    return the_plan
