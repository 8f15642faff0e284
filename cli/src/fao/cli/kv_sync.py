"""Bring a config KV bucket to what ``fao apply`` wants: one read, concurrent writes, undoable.

``bucket_values`` reads every live value of a bucket in one pass (an ordered consumer on the last
message of each key) instead of one ``get`` per key. ``sync_bucket`` then writes only what
differs: the puts and deletes go out concurrently, ``IN_FLIGHT`` at a time (each is one JetStream
publish the server answers; many can be in flight on one connection). Each write is recorded in
the undo list (the key and its value before) before it is sent, and a batch is waited for whole
(every write answered or failed) before its first error is raised, so ``restore`` never races a
write still in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from fao.runtime.bus import DELETED_OPERATIONS, KEYS_TIMEOUT

# Writes in flight at once: a few hundred keep the connection and the server busy without queueing
# thousands of pending requests in the client.
IN_FLIGHT = 256

# A key and its value before a write (None: the key did not exist), in the bucket ``KeyValue``.
KvUndo = list[tuple[KeyValue, str, bytes | None]]


async def bucket_values(js: JetStreamContext, bucket: str) -> dict[str, bytes]:
    """Every live key of ``bucket`` with its value (deleted and purged keys left out). Read as
    ``fao.runtime.bus.kv_keys`` reads the keys (until the server says no message is pending, not
    until nats-py's watcher says it is done), with the values."""
    stream = f"KV_{bucket}"
    if (await js.stream_info(stream)).state.messages == 0:
        return {}
    prefix = f"$KV.{bucket}."
    sub = await js.subscribe(
        f"{prefix}>", ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
    )
    values: dict[str, bytes] = {}
    try:
        while True:
            msg = await sub.next_msg(timeout=KEYS_TIMEOUT)
            key = msg.subject.removeprefix(prefix)
            if (msg.headers or {}).get("KV-Operation") in DELETED_OPERATIONS:
                values.pop(key, None)
            else:
                values[key] = msg.data
            if msg.metadata.num_pending == 0:
                return values
    finally:
        await sub.unsubscribe()


async def _write(kv: KeyValue, key: str, value: bytes | None) -> None:
    if value is None:
        await kv.delete(key)
    else:
        await kv.put(key, value)


async def write_concurrently(
    writes: Sequence[tuple[KeyValue, str, bytes | None]],
    before: dict[str, bytes],
    undo: KvUndo | None = None,
) -> None:
    """Put (a value) or delete (None) each key, ``IN_FLIGHT`` at a time, recording each in ``undo``
    with its value ``before`` just before its batch is sent. The first failure is raised once the
    whole batch is answered (nothing after it is sent)."""
    for start in range(0, len(writes), IN_FLIGHT):
        batch = writes[start : start + IN_FLIGHT]
        if undo is not None:
            undo.extend((kv, key, before.get(key)) for kv, key, _ in batch)
        results = await asyncio.gather(
            *(_write(kv, key, value) for kv, key, value in batch), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def sync_bucket(
    js: JetStreamContext, bucket: str, kv: KeyValue, desired: dict[str, bytes], undo: KvUndo | None = None
) -> int:
    """Make ``bucket`` (``kv``) hold exactly ``desired`` (key → value); return how many keys were
    written or deleted. Each write is recorded in ``undo`` (the key's value before it) first; the
    first failure is raised once no write is in flight any more."""
    existing = await bucket_values(js, bucket)
    writes: list[tuple[KeyValue, str, bytes | None]] = [
        (kv, key, value) for key, value in desired.items() if existing.get(key) != value
    ]
    writes.extend((kv, key, None) for key in sorted(existing.keys() - desired.keys()))
    await write_concurrently(writes, existing, undo)
    return len(writes)


async def restore(undo: KvUndo, report: Callable[[str, BaseException], None]) -> None:
    """Put back every value in ``undo`` (best effort: a key that cannot be restored is reported
    with ``report(key, error)`` and the others are still restored)."""
    # Each key is written once per apply, so the order of the restores does not matter.
    for start in range(0, len(undo), IN_FLIGHT):
        batch = undo[start : start + IN_FLIGHT]
        results = await asyncio.gather(
            *(_write(kv, key, value) for kv, key, value in batch), return_exceptions=True
        )
        for (_, key, _), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                report(key, result)
