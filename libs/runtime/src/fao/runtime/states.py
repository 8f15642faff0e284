"""The monitor states in the ``fao-monitor-state`` KV bucket: how they are encoded and read.

The correlator is their only writer (``fao.correlator.store``); the gateway follows them
(``StateCatalog``) and ``fao doctor`` reads them once (``state_docs``). A value is the state's
document — the ``MonitorState`` model's Python-mode dump plus ``_id`` — in BSON, so datetimes
keep their type (to the millisecond, as MongoDB kept them when the states lived there).

Why a KV bucket and not a MongoDB collection: a storm changes thousands of states within seconds,
and FerretDB's SQLite backend rewrites a changed document in time proportional to its collection
(≈65 ms a write at 10,000 monitors, measured), while a KV put is one JetStream publish.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, Final

import bson
import structlog
from bson.codec_options import CodecOptions
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from fao.runtime.bus import kv_values, state_bucket
from fao.runtime.inventory import KvCatalog
from fao.runtime.store import Document
from fao.schemas.subjects import STATE_BUCKET, state_key

log = structlog.get_logger()

_CODEC: Final[CodecOptions[dict[str, Any]]] = CodecOptions(tz_aware=True, tzinfo=UTC)
PREFIX: Final = state_key("")


def encode(doc: Document) -> bytes:
    return bson.encode(doc)


def decode(data: bytes) -> Document:
    doc: dict[str, Any] = bson.decode(data, codec_options=_CODEC)
    return doc


async def state_docs(js: JetStreamContext) -> dict[str, Document]:
    """Every monitor's state document, by monitor id (a value that cannot be read is logged and
    left out)."""
    await state_bucket(js)
    docs: dict[str, Document] = {}
    for key, data in (await kv_values(js, STATE_BUCKET)).items():
        if not key.startswith(PREFIX):
            continue
        try:
            docs[key.removeprefix(PREFIX)] = decode(data)
        except Exception as exc:  # not BSON: say so, never fail the whole read
            log.error("monitor_state_unreadable", key=key, error=f"{type(exc).__name__}: {exc}")
    return docs


async def state_doc(js: JetStreamContext, monitor_id: str) -> Document | None:
    """One monitor's state document (None: none stored yet)."""
    try:
        kv = await js.key_value(STATE_BUCKET)
        entry = await kv.get(state_key(monitor_id))
    except (BucketNotFoundError, KeyNotFoundError):
        return None
    return decode(entry.value) if entry.value else None


class StateCatalog(KvCatalog[Document]):
    """Live view of the monitor states (the gateway's dashboard and status page)."""

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(
            js, bucket=STATE_BUCKET, open_bucket=state_bucket, key=state_key, decode=decode, name="state"
        )

    @property
    def states(self) -> dict[str, Document]:
        return self.entries
