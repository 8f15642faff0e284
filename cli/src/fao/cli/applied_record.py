"""``fao apply``'s record of the monitor documents it wrote: read with two ``_id`` look-ups.

FerretDB v1 (SQLite) decodes every document of a collection for any ``find`` that is not one
``_id``: at 10,000 monitors reading them all takes 4-7 s (measured), most of an apply that
changes nothing. So apply keeps, beside the ``monitors`` collection (whose documents stay exactly
as the services, ``fao export`` and ``fao doctor`` read them), a copy of what it left there: in
the ``applied`` collection, a head document ``_id: "monitors"`` and the copy itself, the
documents' BSON one after another, zlib-compressed (≈0.26 MB for 10,000 monitors) in chunk
documents ``monitors.0``, ``monitors.1``... of at most ``CHUNK_BYTES``.

The copy is trusted only when all of this holds, else apply reads every document as before:

- the head says ``written`` (apply marks it ``writing`` before it writes a monitor document and
  writes the new copy and then the head after its documents and its audit entry, so a process
  killed in between leaves ``writing``);
- the chunks hash to the head's ``sha256``;
- the ``monitors`` collection still has the document count and size (``collStats``) the head
  recorded right after apply's writes: a document inserted or deleted by someone else changes
  them.

A document changed in place by hand can keep both; ``fao apply --check`` reads every document
and names it, and ``fao apply --rescan`` plans against the documents themselves.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping

import bson
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from fao.runtime.store import Document

RECORD = "applied"
CHUNK_BYTES = 4 * 1024 * 1024
WRITTEN = "written"


async def fingerprint(db: AsyncDatabase[Document], collection: str) -> tuple[int, int]:
    """The document count and size of ``collection`` (``collStats``: no document is decoded)."""
    stats = await db.command("collStats", collection)
    return int(stats.get("count", 0)), int(stats.get("size", 0))


async def read_record(db: AsyncDatabase[Document], collection: str) -> dict[str, Document] | None:
    """What apply last wrote to ``collection`` by ``_id``, or None when the record is missing,
    marked ``writing``, damaged, or the collection's count or size changed since."""
    head = await db[RECORD].find_one({"_id": collection})
    if head is None or head.get("state") != WRITTEN:
        return None
    try:
        if await fingerprint(db, collection) != (head["count"], head["size"]):
            return None
        parts: list[bytes] = []
        for n in range(int(head["chunks"])):
            chunk = await db[RECORD].find_one({"_id": f"{collection}.{n}"})
            if chunk is None:
                return None
            parts.append(bytes(chunk["data"]))
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() != head["sha256"]:
            return None
        docs = bson.decode_all(zlib.decompress(data))
    except (KeyError, TypeError, ValueError, zlib.error, bson.errors.BSONError, PyMongoError):
        return None  # not one apply wrote: every document is read instead
    return {str(doc["_id"]): doc for doc in docs}


async def mark_writing(db: AsyncDatabase[Document], collection: str) -> None:
    """Distrust the record until ``write_record`` (called before apply writes ``collection``)."""
    await db[RECORD].replace_one({"_id": collection}, {"_id": collection, "state": "writing"}, upsert=True)


async def write_record(db: AsyncDatabase[Document], collection: str, docs: Mapping[str, Document]) -> None:
    """Record ``docs`` as what ``collection`` holds now: the chunks first, then the head with the
    collection's count and size as they are now."""
    data = zlib.compress(b"".join(bson.encode(docs[key]) for key in sorted(docs)), 6)
    chunks = [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)]
    for n, chunk in enumerate(chunks):
        await db[RECORD].replace_one(
            {"_id": f"{collection}.{n}"},
            {"_id": f"{collection}.{n}", "data": bson.Binary(chunk)},
            upsert=True,
        )
    count, size = await fingerprint(db, collection)
    head: Document = {
        "_id": collection,
        "state": WRITTEN,
        "count": count,
        "size": size,
        "chunks": len(chunks),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    await db[RECORD].replace_one({"_id": collection}, head, upsert=True)
