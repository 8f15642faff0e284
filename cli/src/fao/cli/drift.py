"""``fao apply --check``: find drift between the places an inventory lives.

An applied inventory lives in three places: the config files, MongoDB (``teams``, ``systems``,
``monitors``, ``maintenance``: what ``fao apply`` wrote, and ``fao maintenance`` for ``source:
cli`` windows) and the NATS KV buckets ``fao-monitors`` / ``fao-maintenance`` that the probers
and the correlator follow. Anyone who can write KV can make the probers run a monitor nobody
applied, or stop one; anyone who can write MongoDB changes what the reports and the correlator's
inventory say. This module reads all three (writing nothing, creating no bucket) and lists every
difference:

- MongoDB ↔ KV, always: every valid monitor document must be in ``fao-monitors`` under
  ``monitor.<id>`` with the same value, every valid maintenance document (config and CLI windows)
  in ``fao-maintenance`` under ``window.<id>``, and nothing else may be in either bucket.
- config files ↔ MongoDB, when a folder is given: what ``fao apply <dir>`` would change
  (``fao.cli.apply.plan``), with the fields that differ. Windows made with ``fao maintenance add``
  are not in the files and are not drift; a config window ended early keeps its ``ended_at``.

Values are compared as the services read them (parsed into the models), so a KV value that is
only formatted differently is not drift; the differing top-level fields are named.

Every monitor document is read, not ``fao apply``'s record of them (``fao.cli.applied_record``):
a document edited by hand is drift even when the record cannot tell. When the record is trusted
yet differs from the documents, the check names each such monitor and says to repair with
``fao apply --rescan`` (a plain apply plans against the record and would not see the edit).
The files, MongoDB and the buckets are read at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js.errors import BucketNotFoundError
from pydantic import BaseModel, ValidationError
from pymongo.errors import PyMongoError

from fao.cli.applied_record import read_record
from fao.cli.apply import SINGULAR, gc_paused, plan, read_current
from fao.cli.kv_sync import bucket_values
from fao.cli.nats_errors import quiet
from fao.runtime.inventory import MAINTENANCE, MONITORS, from_doc, maintenance_from_doc
from fao.runtime.store import Document, connect
from fao.schemas import MaintenanceWindow, Monitor
from fao.schemas.loader import Inventory, load_inventory
from fao.schemas.subjects import MAINTENANCE_BUCKET, MONITORS_BUCKET, maintenance_key, monitor_key

# Order of the report: the kinds as ``fao apply`` lists them.
KIND_ORDER = ("team", "system", "monitor", "maintenance")


class UnreachableError(Exception):
    """NATS or MongoDB could not be read; the message is one line naming which."""


@dataclass(frozen=True)
class Difference:
    kind: str  # "team" | "system" | "monitor" | "maintenance" | "<bucket> key" (a foreign key)
    key: str
    what: str

    def __str__(self) -> str:
        return f"{self.kind} {self.key}: {self.what}"


@dataclass
class DriftReport:
    differences: list[Difference] = field(default_factory=list)
    # Monitor documents differ from apply's record of them: only ``fao apply --rescan`` sees that.
    rescan: bool = False

    @property
    def clean(self) -> bool:
        return not self.differences

    def lines(self) -> list[str]:
        order = {kind: i for i, kind in enumerate(KIND_ORDER)}
        ordered = sorted(self.differences, key=lambda d: (order.get(d.kind, len(order)), d.key, d.what))
        return [str(d) for d in ordered]


def differing_fields(
    a: Mapping[str, Any], b: Mapping[str, Any], ignore: tuple[str, ...] = ("_id",)
) -> list[str]:
    """Top-level fields whose values differ (a field missing on one side differs)."""
    missing = object()
    keys = (set(a) | set(b)) - set(ignore)
    return sorted(k for k in keys if a.get(k, missing) != b.get(k, missing))


def _fields_text(fields: list[str]) -> str:
    return f" ({', '.join(fields)})" if fields else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 160:
        first = first[:157] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# --- MongoDB ------------------------------------------------------------------------------------


@dataclass
class Stored:
    """One collection's documents: the valid ones as models, the invalid ones by id."""

    models: dict[str, BaseModel] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)


def _read_monitors(docs: Iterable[Document]) -> Stored:
    stored = Stored()
    for doc in docs:
        key = str(doc["_id"])
        try:
            stored.models[key] = from_doc(Monitor, doc)
        except ValidationError:
            stored.invalid.add(key)
    return stored


def _read_windows(docs: Iterable[Document]) -> Stored:
    stored = Stored()
    for doc in docs:
        key = str(doc["_id"])
        try:
            stored.models[key] = maintenance_from_doc(doc)[0]
        except ValueError:  # ValidationError is a ValueError too
            stored.invalid.add(key)
    return stored


# --- NATS KV ------------------------------------------------------------------------------------


@dataclass
class Bucket:
    """One bucket's keys: values parsed by id, keys whose value is not valid, foreign keys."""

    models: dict[str, BaseModel] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)
    foreign: set[str] = field(default_factory=set)  # keys without the bucket's prefix


async def _read_bucket(nc: NatsClient, bucket: str, prefix: str, kind: type[BaseModel]) -> Bucket:
    result = Bucket()
    js = nc.jetstream()
    try:
        await js.key_value(bucket)
    except BucketNotFoundError:  # never applied: an empty bucket
        return result
    for key, value in sorted((await bucket_values(js, bucket)).items()):
        if not key.startswith(prefix):
            result.foreign.add(key)
            continue
        item_id = key.removeprefix(prefix)
        try:
            result.models[item_id] = kind.model_validate_json(value or b"")
        except ValidationError:
            result.invalid.add(item_id)
    return result


async def _read_kv(nats_url: str) -> tuple[Bucket, Bucket]:
    # nats-py waits for ever on a refused first connect unless it may retry at least once.
    try:
        nc = await nats.connect(
            nats_url,
            connect_timeout=5,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            error_cb=quiet,
        )
    except Exception as exc:  # nats-py raises OSError, NoServersError, TimeoutError...
        raise UnreachableError(f"cannot reach NATS ({_one_line(exc)})") from exc
    try:
        monitors = await _read_bucket(nc, MONITORS_BUCKET, monitor_key(""), Monitor)
        windows = await _read_bucket(nc, MAINTENANCE_BUCKET, maintenance_key(""), MaintenanceWindow)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise UnreachableError(f"cannot read the KV buckets from NATS ({_one_line(exc)})") from exc
    finally:
        await nc.close()
    return monitors, windows


# --- comparisons --------------------------------------------------------------------------------


def compare_store_with_kv(kind: str, stored: Stored, bucket: Bucket, bucket_name: str) -> list[Difference]:
    """Every valid document must be in the bucket with the same value; nothing else may be."""
    found: list[Difference] = []
    for key in sorted(stored.invalid):
        found.append(Difference(kind, key, f"MongoDB document is not a valid {kind}"))
    for key, model in sorted(stored.models.items()):
        if key in bucket.invalid:
            found.append(Difference(kind, key, f"KV value is not a valid {kind} (MongoDB has one)"))
        elif key not in bucket.models:
            found.append(Difference(kind, key, "in MongoDB, missing from KV"))
        elif (theirs := bucket.models[key]) != model:
            fields = differing_fields(model.model_dump(mode="json"), theirs.model_dump(mode="json"))
            found.append(Difference(kind, key, f"KV differs from MongoDB{_fields_text(fields)}"))
    for key in sorted((set(bucket.models) | bucket.invalid) - set(stored.models) - stored.invalid):
        found.append(Difference(kind, key, "in KV only"))
    for key in sorted(bucket.foreign):
        found.append(Difference(f"{bucket_name} key", key, f"not a {kind} key (nothing reads it)"))
    return found


def compare_config_with_store(
    inventory: Inventory, current: dict[str, dict[str, Document]]
) -> list[Difference]:
    """What ``fao apply`` of ``inventory`` would change in MongoDB (``current``, read with
    ``read_current``), with the differing fields."""
    the_plan = plan(inventory, current)
    found: list[Difference] = []
    for change in the_plan.changes:
        kind = SINGULAR.get(change.collection, change.collection)
        if change.kind == "add":
            found.append(Difference(kind, change.key, "in the config, missing from MongoDB"))
        elif change.kind == "remove":
            found.append(Difference(kind, change.key, "in MongoDB, not in the config"))
        else:
            stored = current[change.collection].get(change.key, {})
            fields = differing_fields(the_plan.desired[change.collection][change.key], stored)
            found.append(
                Difference(kind, change.key, f"MongoDB differs from the config{_fields_text(fields)}")
            )
    return found


def compare_record_with_store(record: dict[str, Document], stored: dict[str, Document]) -> list[Difference]:
    """Monitor documents that differ from apply's (trusted) record of them: edited by hand."""
    return [
        Difference("monitor", key, "MongoDB differs from what fao apply wrote (edited by hand?)")
        for key in sorted(set(record) | set(stored))
        if record.get(key) != stored.get(key)
    ]


async def _read_store(
    mongo_url: str, mongo_db: str
) -> tuple[dict[str, dict[str, Document]], dict[str, Document] | None]:
    """Every document of every kind, and apply's record of the monitors (None: not trusted)."""
    client = connect(mongo_url)
    try:
        db = client[mongo_db]
        try:
            (current, _), record = await asyncio.gather(read_current(db), read_record(db, MONITORS))
        except PyMongoError as exc:
            raise UnreachableError(f"cannot reach MongoDB ({_one_line(exc)})") from exc
    finally:
        await client.close()
    return current, record


async def check_drift(
    mongo_url: str, mongo_db: str, nats_url: str, directory: Path | None = None
) -> DriftReport:
    """Compare MongoDB with the KV buckets and, given ``directory``, the config files with MongoDB.

    Raises ``ConfigError`` for invalid files (and ``UnreachableError`` when NATS or MongoDB cannot
    be read). The servers are read while the files are (in a worker thread); a bad file is still
    the error reported."""
    with gc_paused():
        return await _check_drift(mongo_url, mongo_db, nats_url, directory)


async def _check_drift(mongo_url: str, mongo_db: str, nats_url: str, directory: Path | None) -> DriftReport:
    store = asyncio.create_task(_read_store(mongo_url, mongo_db))
    kv = asyncio.create_task(_read_kv(nats_url))
    try:
        inventory = await asyncio.to_thread(load_inventory, directory) if directory is not None else None
        current, record = await store
        kv_monitors, kv_windows = await kv
    finally:
        for task in (store, kv):
            task.cancel()  # not needed after a config error: its own error is not the one to report
        await asyncio.gather(store, kv, return_exceptions=True)
    report = DriftReport()
    if inventory is not None:
        report.differences.extend(compare_config_with_store(inventory, current))
    if record is not None:
        edited = compare_record_with_store(record, current[MONITORS])
        report.differences.extend(edited)
        report.rescan = bool(edited)
    monitors, windows = (
        _read_monitors(current[MONITORS].values()),
        _read_windows(current[MAINTENANCE].values()),
    )
    report.differences.extend(compare_store_with_kv("monitor", monitors, kv_monitors, MONITORS_BUCKET))
    report.differences.extend(compare_store_with_kv("maintenance", windows, kv_windows, MAINTENANCE_BUCKET))
    return report
